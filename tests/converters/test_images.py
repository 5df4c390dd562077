"""Plain image folders through the real `cas` command: one dataset per folder, nested folders nest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cas import Store
from tests.conftest import ROOT, assert_user_error, png_bytes, run_cas, write_images


def layout(store: Path, project: str) -> dict[str, int]:
    """{dataset path: item count} of a project."""
    with Store(store) as s:
        return {d: s.ns.count_items(project, d) for d in s.ns.datasets(project)}


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """photos/ {2 jpg, README.txt, .DS_Store}, photos/a/ {3 jpg, .DS_Store, .thumbs/1 jpg}, photos/a/b/ {1 png}."""
    root = tmp_path_factory.mktemp("images") / "photos"
    write_images(root, 2)
    write_images(root / "a", 3, prefix="a")
    write_images(root / "a" / ".thumbs", 1, prefix="thumb")  # hidden folder: skipped
    (root / "a" / "b").mkdir()
    (root / "a" / "b" / "x.png").write_bytes(png_bytes())
    (root / "README.txt").write_text("not an image\n")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "a" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return root


def test_folders_become_nested_datasets_and_non_images_are_noted(photos, tmp_path):
    proc = run_cas(tmp_path / "store", "import", str(photos), "--project", "p", "--format", "images")
    out = proc.stdout.decode()
    assert "imported p: 6 items (6 added, 0 unchanged, 0 replaced)" in out
    assert "note: 1 other file skipped" in out  # README.txt; hidden files are not counted
    assert layout(tmp_path / "store", "p") == {"a": 3, "a/b": 1, "photos": 2}
    with Store.init(tmp_path / "store") as store:
        assert store.ns.children("p", None) == ["a", "photos"]
        assert store.ns.children("p", "a") == ["b"]
        assert store.ns.item("p", "a/b", "x.png").mime == "image/png"


def test_dataset_option_nests_everything_under_it(photos, tmp_path):
    proc = run_cas(tmp_path / "store", "import", str(photos), "--project", "p", "--dataset", "D")
    assert proc.stderr.decode() == ""  # --quiet: no "format:" line, no progress bar
    assert layout(tmp_path / "store", "p") == {"D": 2, "D/a": 3, "D/a/b": 1}


def test_auto_format_picks_images_and_says_so_when_not_quiet(photos, tmp_path):
    run_cas(tmp_path / "store", "init")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "cas", "--store", str(tmp_path / "store"), "import", str(photos),
                           "--project", "p"], capture_output=True, env=env, timeout=120)
    stderr = proc.stderr.decode()
    assert proc.returncode == 0, stderr
    assert re.search(r"^format: images$", stderr, re.MULTILINE), stderr
    assert layout(tmp_path / "store", "p") == {"a": 3, "a/b": 1, "photos": 2}


def test_folder_with_nothing_importable_fails_with_one_line(tmp_path):
    empty = tmp_path / "docs"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("hello")
    (empty / "sub" / "more.md").write_text("hello")
    (empty / ".hidden.jpg").write_bytes(png_bytes())  # hidden: does not count
    proc = run_cas(tmp_path / "store", "import", str(empty), "--project", "p", check=False)
    assert_user_error(proc, str(empty), "no known format fits")
    with Store.init(tmp_path / "store") as store:
        assert store.ns.projects() == []


def test_images_format_on_a_file_is_a_one_line_error(tmp_path):
    image = tmp_path / "one.png"
    image.write_bytes(png_bytes())
    proc = run_cas(tmp_path / "store", "import", str(image), "--project", "p", "--format", "images", check=False)
    assert_user_error(proc, str(image), "not a directory")
    with Store.init(tmp_path / "store") as store:
        assert store.ns.projects() == []


def test_dataset_option_names_the_only_folder_never_nesting_it_under_itself(tmp_path):
    write_images(tmp_path / "photos" / "2024", 2)
    write_images(tmp_path / "trip" / "2024" / "a", 1)
    write_images(tmp_path / "trip" / "2024" / "b", 1)
    store = tmp_path / "store"
    run_cas(store, "import", str(tmp_path / "photos"), "-p", "above", "--dataset", "2024")
    run_cas(store, "import", str(tmp_path / "photos" / "2024"), "-p", "itself", "--dataset", "2024")
    run_cas(store, "import", str(tmp_path / "trip"), "-p", "folders", "--dataset", "2024", "--format", "images")
    assert layout(store, "above") == layout(store, "itself") == {"2024": 2}  # was 2024/2024 for `above`
    assert layout(store, "folders") == {"2024": 0, "2024/a": 1, "2024/b": 1}


def test_an_unreadable_image_is_named_with_the_reason_in_words(tmp_path):
    write_images(tmp_path / "photos", 1)
    (tmp_path / "photos" / "bad.jpg").write_bytes(b"not a jpeg at all")
    line = assert_user_error(run_cas(tmp_path / "store", "import", str(tmp_path / "photos"), "-p", "p",
                                     check=False), "bad.jpg", "not a readable image (cannot identify image file)")
    assert "Error" not in line and "0x" not in line, line  # was "(UnidentifiedImageError: ... object at 0x...>)"
