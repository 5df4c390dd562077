"""LabelMe 5.x, Cityscapes gtFine and mask folders (binary per class, machine masks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cas import Store
from cas.errors import InvalidInput
from converters.ingest import detect_format, import_source
from tests.converters.samples import assert_reimport_same, cityscapes_sample, labelme_sample, masks_sample


def kinds(store: Store, project: str, dataset: str, name: str) -> list[tuple[str, str]]:
    ann = store.read_json(store.ns.item(project, dataset, name).ann, name)
    return sorted((o["classTitle"], o["geometryType"]) for o in ann["objects"])


def test_labelme(store: Store, tmp_path: Path) -> None:
    src = labelme_sample(tmp_path / "lm")
    assert detect_format(src) == "labelme"
    report, extra = import_source(store, src, "l", "labelme")
    assert report.items_added == 2 and extra["images taken from embedded imageData"] == 1
    assert report.notes["circles written as 32-gons"] == 2
    assert kinds(store, "l", "lm", "pet1.jpg") == [("ball", "polygon"), ("cat", "polygon"), ("dog", "rectangle"),
                                                     ("eye", "point"), ("tail", "line")]
    ann = store.read_json(store.ns.item("l", "lm", "pet0.jpg").ann, "ann")
    assert ann["tags"] == [{"name": "indoor", "value": None}]
    dog = next(o for o in ann["objects"] if o["classTitle"] == "dog")
    assert dog["points"]["exterior"] == [[20.0, 5.0], [50.0, 40.0]]  # corners in any order
    assert next(o for o in ann["objects"] if o["classTitle"] == "cat")["tags"] == [{"name": "occluded", "value": None}]


def test_labelme_bad_shape_is_named(store: Store, tmp_path: Path) -> None:
    src = labelme_sample(tmp_path / "lm")
    doc = json.loads((src / "pet0.json").read_text())
    doc["shapes"][2]["shape_type"] = "spline"
    (src / "pet0.json").write_text(json.dumps(doc))
    with pytest.raises(InvalidInput, match=r"pet0.json: shapes\[2\].shape_type: unknown shape_type 'spline'"):
        import_source(store, src, "l", "labelme")


def test_cityscapes(store: Store, tmp_path: Path) -> None:
    src = cityscapes_sample(tmp_path / "cs")
    assert detect_format(src) == "cityscapes"
    report, _ = import_source(store, src, "c", "cityscapes")
    assert store.ns.datasets("c") == ["train", "train/aachen", "val", "val/frankfurt"]
    assert report.items_added == 3 and report.notes["deleted objects skipped"] == 3
    assert kinds(store, "c", "train/aachen", "aachen_000001_000019_leftImg8bit.png") == [
        ("car", "polygon"), ("cargroup", "polygon"), ("road", "polygon")]


@pytest.mark.parametrize("machine", [False, True])
def test_masks(store: Store, tmp_path: Path, machine: bool) -> None:
    src = masks_sample(tmp_path / "ms", machine)  # machine: gray indices, in the labelmap's line order
    assert detect_format(src) == "masks"
    import_source(store, src, "m", "masks")
    assert kinds(store, "m", "ms", "m0.jpg") == [("leaf", "bitmap"), ("stem", "bitmap")]
    assert kinds(store, "m", "ms", "m1.jpg") == [("leaf", "bitmap")]
    ann = store.read_json(store.ns.item("m", "ms", "m0.jpg").ann, "ann")
    leaf = next(o for o in ann["objects"] if o["classTitle"] == "leaf")
    assert leaf["bitmap"]["origin"] == [5, 5]


def test_mask_of_the_wrong_size(store: Store, tmp_path: Path) -> None:
    from PIL import Image
    src = masks_sample(tmp_path / "ms", True)
    Image.new("L", (10, 10)).save(src / "masks" / "m2.png")
    with pytest.raises(InvalidInput, match=r"m2.png: mask is 10x10, the image 40x30"):
        import_source(store, src, "m", "masks")


@pytest.mark.parametrize("fmt,make", [
    ("labelme", lambda p: labelme_sample(p)),
    ("cityscapes", lambda p: cityscapes_sample(p)),
    ("masks", lambda p: masks_sample(p, machine=True)),
])
def test_round_trip_through_supervisely(store: Store, tmp_path: Path, fmt: str, make) -> None:
    """These formats are import-only: their export is the Supervisely layout, and it must
    come back with the same objects."""
    from converters import supervisely
    import_source(store, make(tmp_path / "src"), "p", fmt)
    supervisely.write(store, "p", tmp_path / "out")
    assert_reimport_same(store, "p", tmp_path / "out", "sly", tolerance=0)
