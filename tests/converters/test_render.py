"""`cas render`: annotations drawn over the image, and contact sheets."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from cas import Store
from converters.ingest import import_source
from converters.render import render_item
from tests.conftest import run_cas
from tests.converters.samples import coco_sample


def test_render_draws_masks_boxes_and_labels(store: Store, tmp_path: Path) -> None:
    import_source(store, coco_sample(tmp_path / "coco"), "c", "coco")
    item = store.ns.item("c", "val2017", "000000000000.jpg")
    original = np.array(Image.open(io.BytesIO(store.read_bytes(item.media))).convert("RGB")).astype(int)
    drawn = np.array(render_item(store, "c", "val2017", "000000000000.jpg")).astype(int)
    assert drawn.shape == original.shape
    car = next(c for c in store.ns.project("c").meta["classes"] if c["title"] == "car")
    tint = np.array([int(car["color"][i:i + 2], 16) for i in (1, 3, 5)])
    inside = drawn[15, 45] - original[15, 45]  # in the car mask (rows 10-19, columns 30-49), below the label
    assert np.dot(inside, tint - original[15, 45]) > 0, "the mask is tinted toward its class color"
    assert (drawn[45, 2] == original[45, 2]).all(), "pixels away from every object are untouched"


def test_cli_render_and_contact_sheet(tmp_path: Path) -> None:
    store = tmp_path / "store"
    run_cas(store, "import", str(coco_sample(tmp_path / "coco")), "--project", "c")
    out = run_cas(store, "render", "c/val2017/000000000002.jpg", "-o", str(tmp_path / "one.png")).stdout.decode()
    assert "rendered c/val2017/000000000002.jpg" in out
    assert Image.open(tmp_path / "one.png").size == (66, 48)
    run_cas(store, "render", "c/val2017", "--grid", "4", "-o", str(tmp_path / "sheet.png"))
    assert Image.open(tmp_path / "sheet.png").size[0] >= 2 * 66


def test_render_of_a_video_item_is_a_clear_error(tmp_path: Path) -> None:
    from tests.conftest import assert_user_error
    from tests.converters.test_videos import write_video
    write_video(tmp_path / "clips" / "a.mp4", 5)
    store = tmp_path / "store"
    run_cas(store, "import", str(tmp_path / "clips"), "--project", "v")
    assert_user_error(run_cas(store, "render", "v/clips/a.mp4", check=False), "v/clips/a.mp4", "video project")


def test_render_never_overwrites_a_file_it_was_not_given_and_writes_the_format_asked(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT, assert_user_error

    store = tmp_path / "store"
    run_cas(store, "import", str(coco_sample(tmp_path / "coco")), "--project", "c")
    work = tmp_path / "work"
    work.mkdir()
    (work / "000000000002.jpg").write_bytes(b"the user's own file")

    def render(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cas", "--store", str(store), "render", *args], cwd=work,
                              capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)

    proc = render("c/val2017/000000000002.jpg")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip().endswith("to 000000000002.jpg.render.png")
    assert (work / "000000000002.jpg").read_bytes() == b"the user's own file"
    assert Image.open(work / "000000000002.jpg.render.png").format == "PNG"
    assert_user_error(render("c/val2017/000000000002.jpg"), "000000000002.jpg.render.png exists", "--force")
    assert render("c/val2017/000000000002.jpg", "--force").returncode == 0
    assert render("c/val2017", "--grid", "2").returncode == 0 and (work / "val2017.sheet.png").exists()
    for name, fmt in (("out.jpg", "JPEG"), ("out.JPEG", "JPEG"), ("out.webp", "WEBP"), ("out.png", "PNG")):
        assert render("c/val2017/000000000002.jpg", "-o", name).returncode == 0
        assert Image.open(work / name).format == fmt, name
    assert_user_error(render("c/val2017/000000000002.jpg", "-o", "out.xyz"), "out.xyz", "image format")
    assert_user_error(render("c/val2017/000000000002.jpg", "-o", "own.jpg", "-o", "000000000002.jpg"),
                      "000000000002.jpg exists")
    assert (work / "000000000002.jpg").read_bytes() == b"the user's own file"
