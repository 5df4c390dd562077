"""Containment: an import reads only under its source folder (and allowed roots). Symlinks
leading out are skipped and counted, paths in annotation files leading out are refused,
and folder walks survive nesting deeper than Python's recursion limit."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cas import Store
from cas.errors import InvalidInput
from cas.units import counted_phrase
from converters.ingest import import_source
from converters.walk import SKIPPED_LINKS
from tests.conftest import assert_user_error, jpeg_bytes, png_bytes, run_cas
from tests.converters import samples


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the source with images and a secret an import must never open."""
    folder = tmp_path / "outside"
    (folder / "pics").mkdir(parents=True)
    for i in range(3):
        (folder / "pics" / f"o{i}.png").write_bytes(png_bytes(10 + i, 10))
    (folder / "secret.png").write_bytes(png_bytes(7, 7))
    return folder


def item_names(store: Store, project: str) -> set[str]:
    return {f"{d}/{n}" for d in store.ns.datasets(project) for n, _ in store.ns.items(project, d)}


def test_symlinks_leading_out_are_skipped_and_counted(store: Store, tmp_path: Path, outside: Path) -> None:
    src = tmp_path / "src"
    (src / "inner").mkdir(parents=True)
    (src / "a.png").write_bytes(png_bytes())
    (src / "linked").symlink_to(outside / "pics")        # a directory out
    (src / "passwd.png").symlink_to(outside / "secret.png")  # a file out
    (src / "inner" / "again.png").symlink_to(src / "a.png")  # stays inside: read
    (src / "loop").symlink_to(src)                       # stays inside, and a loop
    report, extra = import_source(store, src, "p", "images")
    assert item_names(store, "p") == {"src/a.png", "inner/again.png"}
    assert extra[SKIPPED_LINKS] == 2


def test_follow_symlinks_reads_them(store: Store, tmp_path: Path, outside: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(png_bytes())
    (src / "linked").symlink_to(outside / "pics")
    (src / "loop").symlink_to(src)
    _report, extra = import_source(store, src, "p", "images", follow_symlinks=True)
    assert item_names(store, "p") == {"src/a.png", "linked/o0.png", "linked/o1.png", "linked/o2.png"}
    assert SKIPPED_LINKS not in extra


def test_cli_reports_skipped_symlinks(tmp_path: Path, outside: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(png_bytes())
    (src / "linked").symlink_to(outside / "pics")
    out = run_cas(tmp_path / "store", "import", str(src), "-p", "p").stdout.decode()
    assert f"note: {counted_phrase(1, SKIPPED_LINKS)}" in out
    assert "note: 1 symlink leading outside" in out


def coco_with_file_name(root: Path, file_name: str) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "images" / "in.jpg").write_bytes(jpeg_bytes(20, 10))
    doc = {"images": [{"id": 1, "file_name": "in.jpg", "width": 20, "height": 10},
                      {"id": 2, "file_name": file_name, "width": 12, "height": 10}],
           "annotations": [], "categories": [{"id": 1, "name": "thing"}]}
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_val.json").write_text(json.dumps(doc))
    return root


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_annotation_paths_leading_out_are_refused(store: Store, tmp_path: Path, outside: Path, how: str) -> None:
    (outside / "x.jpg").write_bytes(jpeg_bytes(12, 10))
    name = {"dotdot": "../../../outside/x.jpg", "absolute": str(outside / "x.jpg"), "symlink": "out.jpg"}[how]
    src = coco_with_file_name(tmp_path / "coco", name)
    (src / "images" / "out.jpg").symlink_to(outside / "x.jpg")
    with pytest.raises(InvalidInput, match=r"images\[1\].file_name: path .* leads outside the source folder"):
        import_source(store, src, "p", "coco")
    assert "p" not in store.ns.projects()
    import_source(store, src, "p", "coco", skip_invalid=True)
    assert item_names(store, "p") == {"val/in.jpg"}


def test_allow_root_admits_an_outside_folder(tmp_path: Path, outside: Path) -> None:
    (outside / "x.jpg").write_bytes(jpeg_bytes(12, 10))
    src = coco_with_file_name(tmp_path / "coco", str(outside / "x.jpg"))
    store = tmp_path / "store"
    assert_user_error(run_cas(store, "import", str(src), "-p", "p", check=False), "leads outside the source folder")
    run_cas(store, "import", str(src), "-p", "p", "--allow-root", str(outside))
    assert "x.jpg" in run_cas(store, "ls", "p/val").stdout.decode()


@pytest.mark.parametrize("line", ["path: /\ntrain: outside/pics", "train: ../../..", "path: ..\ntrain: outside/pics"])
def test_yolo_data_yaml_leading_out_is_refused(store: Store, tmp_path: Path, outside: Path, line: str) -> None:
    src = samples.yolo_sample(tmp_path / "y")
    doc = [ln for ln in (src / "data.yaml").read_text().splitlines() if not ln.startswith(("path:", "train:"))]
    (src / "data.yaml").write_text("\n".join([*line.split("\n"), *doc]) + "\n")
    with pytest.raises(InvalidInput, match="data.yaml: (path|train): path .* leads outside the source folder"):
        import_source(store, src, "p", "yolo")


def test_yolo_path_of_another_machine_reads_the_config_folder(store: Store, tmp_path: Path, outside: Path) -> None:
    """FiftyOne and cas write `path` absolute: a moved export's splits are found beside the
    config, and nothing outside is read."""
    src = samples.yolo_sample(tmp_path / "y")
    text = (src / "data.yaml").read_text().replace("path: .", f"path: {outside}")
    (src / "data.yaml").write_text(text)
    report, _ = import_source(store, src, "p", "yolo")
    assert report.items_added == 5


def test_labelme_image_path_leading_out_is_refused(store: Store, tmp_path: Path, outside: Path) -> None:
    src = samples.labelme_sample(tmp_path / "lm")
    doc = json.loads((src / "pet0.json").read_text())
    doc["imagePath"] = "../outside/secret.png"
    (src / "pet0.json").write_text(json.dumps(doc))
    with pytest.raises(InvalidInput, match="pet0.json: imagePath: path .* leads outside"):
        import_source(store, src, "p", "labelme")


def test_voc_image_list_cannot_name_paths(store: Store, tmp_path: Path) -> None:
    src = samples.voc_sample(tmp_path / "voc")
    (src / "ImageSets/Main/val.txt").write_text("../../../etc/passwd\n")
    with pytest.raises(InvalidInput, match=r"ImageSets/Main/val.txt: line 1: expected an image id"):
        import_source(store, src, "p", "voc")


def make_deep(top: Path, depth: int) -> None:
    """`depth` nested folders (deeper than PATH_MAX: built with directory descriptors)."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)


def remove_deep(top: Path) -> None:
    """Remove what make_deep made, without recursion (shutil.rmtree recurses per level)."""
    fds = [os.open(top, os.O_RDONLY)]
    while True:
        try:
            fds.append(os.open("d", os.O_RDONLY, dir_fd=fds[-1]))
        except FileNotFoundError:
            break
    os.close(fds.pop())
    while fds:
        fd = fds.pop()
        os.rmdir("d", dir_fd=fd)
        os.close(fd)
    shutil.rmtree(top)


def test_folder_nested_10000_deep_is_one_line(tmp_path: Path) -> None:
    src = tmp_path / "deep"
    make_deep(src, 10_000)
    try:
        (src / "a.png").write_bytes(png_bytes())
        with Store.init(tmp_path / "store") as store:
            with pytest.raises(InvalidInput, match="cannot read this folder"):
                import_source(store, src, "p", "images")
        for how in (["--format", "images"], []):  # detection walks too
            assert_user_error(run_cas(tmp_path / "store", "import", str(src), "-p", "p", *how, check=False),
                              "cannot read this folder (File name too long)")
    finally:
        remove_deep(src)


def test_link_list_without_slashes_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("file:/etc/shadow\n")
    line = assert_user_error(run_cas(tmp_path / "store", "import", str(tmp_path / "list.txt"), "-p", "p",
                                     "--format", "links", check=False), "list.txt:1")
    assert "Could not determine delimiter" not in line
