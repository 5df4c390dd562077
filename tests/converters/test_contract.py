"""The format contract (converters.contract): every registered format keeps it, `auto`
picks the best score and says each format's reason when none fits, `cas formats` lists them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cas.errors import InvalidInput
from converters import FORMATS, WRITABLE, images
from converters.contract import SHAPES, Detection, dataset_names
from converters.ingest import MEDIA_FOLDERS, detect_format, detections
from tests.conftest import jpeg_bytes, run_cas


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_keeps_the_contract(name: str, tmp_path: Path) -> None:
    module = FORMATS[name]
    assert callable(module.read) and isinstance(module.LAYOUTS, str) and module.LAYOUTS
    assert module.READS and set(module.READS) <= set(SHAPES)
    assert hasattr(module, "write") == hasattr(module, "WRITES") == (name in WRITABLE)
    assert set(getattr(module, "WRITES", ())) <= set(SHAPES)
    found = module.detect(tmp_path)
    assert isinstance(found, Detection) and found.score == 0 and found.reason


def test_nothing_fits_gives_every_formats_reason(tmp_path: Path) -> None:
    (tmp_path / "notes.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(InvalidInput) as e:
        detect_format(tmp_path)
    for name, found in detections(tmp_path).items():
        if name in MEDIA_FOLDERS:  # looked for deeper, once nothing fits
            assert f"{name}: no {name[:-1]} files here or {images.DEEP} folders below" in str(e.value)
        else:
            assert f"{name}: {found.reason}" in str(e.value)


def test_the_best_score_wins(tmp_path: Path) -> None:
    """A YOLO export is a folder of images too: the layout beats the generic fit."""
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(jpeg_bytes(8, 8))
    (tmp_path / "data.yaml").write_text("names: [car]\ntrain: images\n")
    found = detections(tmp_path)
    assert found["images"].score > 0 and found["yolo"].score > found["images"].score
    assert detect_format(tmp_path) == "yolo"


def test_cas_formats_lists_each_format_and_scores_a_path(tmp_path: Path) -> None:
    store = tmp_path / "store"
    listing = run_cas(store, "formats").stdout.decode()
    for name, module in FORMATS.items():
        assert f"{name} " in listing and module.LAYOUTS in listing
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(jpeg_bytes(8, 8))
    scored = run_cas(store, "formats", str(tmp_path / "photos")).stdout.decode().splitlines()
    assert len(scored) == len(FORMATS)
    assert any(line.startswith("images") and "a.jpg" in line for line in scored)


@pytest.mark.parametrize(("dataset", "parts", "expected"), [
    (None, ["", "a", "a/b"], {"": "top", "a": "a", "a/b": "a/b"}),
    ("D", ["", "a", "a/b"], {"": "D", "a": "D/a", "a/b": "D/a/b"}),
    ("D", ["train"], {"train": "D"}),  # the only split, folder or dataset is renamed, not nested
    ("2024", ["2024"], {"2024": "2024"}),
    ("D", ["train", "val"], {"train": "D/train", "val": "D/val"}),
    ("D", ["2024/a", "2024/b"], {"2024/a": "D/a", "2024/b": "D/b"}),  # the folder holding them is D
    ("D", ["train", "train/night"], {"train": "D", "train/night": "D/night"}),
])
def test_the_dataset_option_replaces_the_name_of_the_folder_holding_every_part(dataset, parts, expected):
    assert dataset_names(dataset, parts, "top") == expected
