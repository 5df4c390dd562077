"""COCO: a sample with pycocotools-encoded RLE, crowd regions and keypoints; round trip;
exports checked by loading them with pycocotools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cas import Store
from cas.errors import InvalidInput
from converters import coco
from converters.ingest import detect_format, import_source
from tests.conftest import run_cas
from tests.converters.samples import assert_reimport_same, coco_sample


def test_import_maps_every_geometry(store: Store, tmp_path: Path) -> None:
    src = coco_sample(tmp_path / "coco")
    assert detect_format(src) == "coco"
    report, _ = import_source(store, src, "c", "coco")
    assert report.items_added == 4
    assert report.notes["objects clipped to the image"] == 4
    meta = {c["title"]: c for c in store.ns.project("c").meta["classes"]}
    assert meta["person"]["shape"] == "polygon" and meta["car"]["shape"] == "bitmap"
    assert meta["sign"]["shape"] == "rectangle"
    assert list(meta["person_keypoints"]["geometry_config"]["nodes"]) == ["0", "1", "2"]
    ann = store.read_json(store.ns.item("c", "val2017", "000000000000.jpg").ann, "ann")
    kinds = sorted((o["classTitle"], o["geometryType"]) for o in ann["objects"])
    assert kinds == [("car", "bitmap"), ("car", "bitmap"), ("person", "polygon"), ("person", "polygon"),
                     ("person", "polygon"), ("person_keypoints", "graph"), ("sign", "rectangle")]
    crowd = [o for o in ann["objects"] if o["tags"]]
    assert len(crowd) == 1 and crowd[0]["tags"] == [{"name": "iscrowd", "value": None}]
    graph = next(o for o in ann["objects"] if o["geometryType"] == "graph")
    assert graph["nodes"] == {"0": {"loc": [10, 10]}, "1": {"loc": [20, 20]}}  # invisible keypoint dropped
    bitmap = next(o for o in ann["objects"] if o["geometryType"] == "bitmap")
    assert bitmap["bitmap"]["origin"] == [30, 10]


@pytest.mark.parametrize("processes", [False, True])
def test_round_trip_and_pycocotools_reads_the_export(store: Store, tmp_path: Path, processes: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from pycocotools.coco import COCO
    if processes:  # the path large exports take: chunks converted by worker processes
        monkeypatch.setattr(coco, "EXPORT_PROCESS_THRESHOLD", 1)
        monkeypatch.setattr(coco, "EXPORT_CHUNK", 3)
    import_source(store, coco_sample(tmp_path / "coco"), "c", "coco")
    counts = coco.write(store, "c", tmp_path / "out")
    assert counts["images"] == 4
    api = COCO(str(tmp_path / "out" / "annotations" / "instances_val2017.json"))
    assert len(api.getImgIds()) == 4
    person = api.loadCats(api.getCatIds(catNms=["person"]))[0]
    assert person["keypoints"] == ["nose", "left_eye", "right_eye"] and person["skeleton"] == [[1, 2], [1, 3]]
    for ann in api.loadAnns(api.getAnnIds()):
        if "segmentation" in ann:
            assert api.annToMask(ann).sum() > 0
    assert_reimport_same(store, "c", tmp_path / "out", "coco")


def test_link_uses_coco_url(store: Store, tmp_path: Path) -> None:
    src = coco_sample(tmp_path / "coco")
    report, _ = import_source(store, src, "c", "coco", reader_options={"link": True})
    assert report.links == 4
    item = store.ns.item("c", "val2017", "000000000001.jpg")
    assert store.stat(item.media).url == "http://images.cocodataset.org/val2017/000000000001.jpg"
    assert (item.width, item.height) == (65, 48)
    assert len(store.read_json(item.ann, "ann")["objects"]) == 7


@pytest.mark.parametrize("field,value,message", [
    ("bbox", [1, 2, 3], r"instances_val2017.json: annotations\[3\].bbox: expected 4 numbers"),
    ("category_id", 99, r"annotations\[3\].category_id: unknown category_id 99"),
    ("segmentation", {"size": [48, 64], "counts": "@@@bad"}, r"annotations\[3\].segmentation.counts: bad RLE"),
])
def test_bad_fields_are_named(store: Store, tmp_path: Path, field: str, value: object, message: str) -> None:
    src = coco_sample(tmp_path / "coco")
    path = src / "annotations" / "instances_val2017.json"
    data = json.loads(path.read_text())
    data["annotations"][3][field] = value
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidInput, match=message):
        import_source(store, src, "c", "coco")
    assert not store.ns.has_project("c")
    report, _ = import_source(store, src, "c", "coco", skip_invalid=True)
    # a bad field of an annotation leaves that annotation out; a bad RLE, found as the item is built, its item
    assert report.rejected == ({"item": 1} if field == "segmentation" else {"annotation": 1})
    assert report.items_added == (3 if field == "segmentation" else 4)


def test_skip_invalid_says_an_annotation_was_left_out_not_its_item(tmp_path: Path) -> None:
    src = coco_sample(tmp_path / "coco")
    path = src / "annotations" / "instances_val2017.json"
    data = json.loads(path.read_text())
    data["annotations"][3]["bbox"] = [1, 2, 3]
    path.write_text(json.dumps(data))
    proc = run_cas(tmp_path / "store", "import", str(src), "-p", "c", "--skip-invalid")
    assert "imported c: 4 items (4 added" in proc.stdout.decode()
    assert "skipped 1 invalid annotation (left out of its item):" in proc.stderr.decode(), proc.stderr


def test_missing_image_and_size_mismatch(store: Store, tmp_path: Path) -> None:
    src = coco_sample(tmp_path / "coco")
    (src / "images" / "val2017" / "000000000002.jpg").unlink()
    with pytest.raises(InvalidInput, match=r"images\[2\].file_name: image '000000000002.jpg' not found"):
        import_source(store, src, "c", "coco")
    coco_sample(tmp_path / "coco2")
    path = tmp_path / "coco2" / "annotations" / "instances_val2017.json"
    data = json.loads(path.read_text())
    data["images"][1]["width"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidInput, match=r"images\[1\].width: says 99x48 but the image file is 65x48"):
        import_source(store, tmp_path / "coco2", "c", "coco")
