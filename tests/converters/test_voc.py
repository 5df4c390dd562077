"""Pascal VOC in the VOC2012 layout: boxes, flags, splits, segmentation PNGs; round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from cas import Store
from cas.errors import InvalidInput
from converters import voc
from converters.ingest import detect_format, import_source
from tests.converters.samples import assert_reimport_same, voc_sample


def test_import(store: Store, tmp_path: Path) -> None:
    src = voc_sample(tmp_path / "VOC2012")
    assert detect_format(src) == "voc"
    report, _ = import_source(store, src, "v", "voc")
    assert store.ns.datasets("v") == ["train", "val"]  # trainval is their union; per-class lists ignored
    assert report.items_added == 4
    ann = store.read_json(store.ns.item("v", "train", "2007_000000.jpg").ann, "ann")
    # A segmented object is one object: its mask, with the XML's tags (not a box and a bitmap).
    assert sorted((o["classTitle"], o["geometryType"]) for o in ann["objects"]) == [("dog", "bitmap"),
                                                                                     ("person", "bitmap")]
    person = next(o for o in ann["objects"] if o["classTitle"] == "person")
    assert person["bitmap"]["origin"] == [11, 6]
    assert {t["name"]: t["value"] for t in person["tags"]} == {"truncated": None, "pose": "Frontal"}
    plain = store.read_json(store.ns.item("v", "train", "2007_000001.jpg").ann, "ann")
    assert [o["geometryType"] for o in plain["objects"]] == ["rectangle", "rectangle"]


def test_round_trip(store: Store, tmp_path: Path) -> None:
    import_source(store, voc_sample(tmp_path / "VOC2012"), "v", "voc")
    counts = voc.write(store, "v", tmp_path / "out")
    assert counts["images"] == 4 and counts["segmentation masks"] == 2
    assert_reimport_same(store, "v", tmp_path / "out", "voc")


def test_malformed_xml_names_the_element(store: Store, tmp_path: Path) -> None:
    src = voc_sample(tmp_path / "VOC2012")
    xml = src / "Annotations" / "2007_000002.xml"
    xml.write_text(xml.read_text().replace("<xmin>41</xmin>", "<xmin>forty</xmin>"))
    message = r"Annotations/2007_000002.xml: annotation/object\[2\]/bndbox: expected numbers"
    with pytest.raises(InvalidInput, match=message):
        import_source(store, src, "v", "voc")
    xml.write_text("<annotation><object>")
    with pytest.raises(InvalidInput, match=r"Annotations/2007_000002.xml: malformed XML"):
        import_source(store, src, "v", "voc")
    report, _ = import_source(store, src, "v", "voc", skip_invalid=True)
    assert report.items_invalid == 1 and report.items_added == 3
