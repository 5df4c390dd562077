"""YOLO in the Ultralytics layout: detect, segment and pose samples; round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cas import Store
from cas.errors import InvalidInput
from converters import yolo
from converters.ingest import detect_format, import_source
from tests.converters.samples import assert_reimport_same, yolo_sample


def test_detect_scales_by_the_real_image_size_and_clips(store: Store, tmp_path: Path) -> None:
    src = yolo_sample(tmp_path / "y", "detect")
    assert detect_format(src) == "yolo"
    report, _ = import_source(store, src, "y", "yolo")
    assert report.items_added == 5 and report.notes["objects clipped to the image"] == 5
    assert [d for d in store.ns.datasets("y")] == ["train", "val"]
    ann = store.read_json(store.ns.item("y", "train", "train0.jpg").ann, "ann")
    person = next(o for o in ann["objects"] if o["classTitle"] == "person")
    assert person["points"]["exterior"] == [[40.0, 30.0], [60.0, 50.0]]  # 0.5 0.5 0.2 0.25 of 100x80
    clipped = ann["objects"][2]["points"]["exterior"]
    assert clipped[1] == [100.0, 80.0]


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_round_trip(store: Store, tmp_path: Path, task: str) -> None:
    import_source(store, yolo_sample(tmp_path / "y", task), "y", "yolo")
    counts = yolo.write(store, "y", tmp_path / "out", task=task)
    assert counts["images"] == 5
    doc = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())
    assert doc["names"] == {0: "person", 1: "car"} and doc["train"] == "images/train"
    assert_reimport_same(store, "y", tmp_path / "out", "yolo")


def test_pose_makes_boxes_and_graphs(store: Store, tmp_path: Path) -> None:
    import_source(store, yolo_sample(tmp_path / "y", "pose"), "y", "yolo")
    ann = store.read_json(store.ns.item("y", "val", "val1.jpg").ann, "ann")
    graph = next(o for o in ann["objects"] if o["geometryType"] == "graph")
    assert graph["classTitle"] == "person_keypoints"
    assert graph["nodes"] == {"0": {"loc": [45.0, 32.0]}, "1": {"loc": [55.0, 32.0]}}  # the third is not visible


def test_detect_export_counts_conversions(store: Store, tmp_path: Path) -> None:
    import_source(store, yolo_sample(tmp_path / "y", "segment"), "y", "yolo")
    counts = yolo.write(store, "y", tmp_path / "out", task="detect")
    assert counts["polygons written as boxes"] == 10


def test_bad_line_names_file_and_line(store: Store, tmp_path: Path) -> None:
    src = yolo_sample(tmp_path / "y", "detect")
    (src / "labels" / "val" / "val1.txt").write_text("0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.1 0.1\n")
    with pytest.raises(InvalidInput, match=r"labels/val/val1.txt: line 2: class id 7 is not in the 2 names"):
        import_source(store, src, "y", "yolo")
    (src / "labels" / "val" / "val1.txt").write_text("0 0.5 0.5 abc 0.2\n")
    with pytest.raises(InvalidInput, match=r"labels/val/val1.txt: line 1: expected a class id and numbers"):
        import_source(store, src, "y", "yolo")
    assert not store.ns.has_project("y")
