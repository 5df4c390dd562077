"""CVAT for images 1.1, Label Studio JSON, KITTI and classification folders, from fixtures
written line by line after each format's public spec (docs.cvat.ai "CVAT for images";
labelstud.io "Export formats: JSON"; the KITTI devkit's readme_object.txt; torchvision's
ImageFolder). The fixtures written by the tools themselves are in test_interop.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cas import Store
from cas.errors import InvalidInput
from converters import FORMATS, cvat, kitti, labelstudio
from converters.ingest import detect_format, import_source
from tests.conftest import jpeg_bytes, png_bytes


def annotation(store: Store, project: str, dataset: str, name: str) -> dict:
    return store.read_json(store.ns.item(project, dataset, name).ann, name)


# -- CVAT ------------------------------------------------------------------------------------------
CVAT_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><name>street</name><labels>
    <label><name>car</name><type>rectangle</type><attributes><attribute><name>model</name>
      <input_type>text</input_type></attribute></attributes></label>
    <label><name>road</name><type>polygon</type><attributes></attributes></label>
    <label><name>unused</name><type>any</type><attributes></attributes></label>
  </labels></task></meta>
  <image id="0" name="a b.jpg" width="40" height="30">
    <box label="car" source="manual" occluded="1" xtl="2.5" ytl="3" xbr="20" ybr="12" z_order="0">
      <attribute name="model">sedan</attribute><attribute name="speed">12.5</attribute>
    </box>
    <polygon label="road" occluded="0" points="1,1;30,2;15,25"/>
    <polyline label="lane" occluded="0" points="0,29;39,0"/>
    <points label="light" occluded="0" points="5,5"/>
    <mask label="puddle" occluded="0" rle="2, 3, 1, 3" left="10" top="20" width="3" height="3"/>
    <tag label="daytime" source="manual"/>
  </image>
</annotations>
"""


def test_cvat_every_shape(store: Store, tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a b.jpg").write_bytes(jpeg_bytes(40, 30))
    (tmp_path / "annotations.xml").write_text(CVAT_XML)
    assert detect_format(tmp_path) == "cvat"
    import_source(store, tmp_path, "p", "cvat")
    ann = annotation(store, "p", tmp_path.name, "a b.jpg")
    kinds = {o["classTitle"]: o["geometryType"] for o in ann["objects"]}
    assert kinds == {"car": "rectangle", "road": "polygon", "lane": "line", "light": "point", "puddle": "bitmap"}
    car = next(o for o in ann["objects"] if o["classTitle"] == "car")
    assert {t["name"]: t["value"] for t in car["tags"]} == {"occluded": None, "model": "sedan", "speed": 12.5}
    assert [t["name"] for t in ann["tags"]] == ["daytime"]
    puddle = next(o for o in ann["objects"] if o["classTitle"] == "puddle")
    assert puddle["bitmap"]["origin"] == [10, 20]  # the runs 2 off, 3 on, 1 off, 3 on: rows 0-2 of the box
    classes = {c["title"] for c in store.ns.project("p").meta["classes"]}
    assert "unused" in classes  # the labels of <meta> are classes even where unused


def test_cvat_rle_round_trip() -> None:
    rng = np.random.default_rng(1)
    mask = np.zeros((30, 40), bool)
    mask[5:20, 7:30] = rng.random((15, 23)) > 0.5
    runs, box = cvat.encode_rle(mask)
    assert np.array_equal(cvat.decode_rle(runs, list(box), 40, 30, "x", "y"), mask)


def test_cvat_bad_rle_names_the_element(store: Store, tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a b.jpg").write_bytes(jpeg_bytes(40, 30))
    (tmp_path / "annotations.xml").write_text(CVAT_XML.replace('rle="2, 3, 1, 3"', 'rle="2, 3, 1, 30"'))
    with pytest.raises(InvalidInput, match=r"annotations.xml: annotations/image\[1\]/mask\[5\]/@rle: mask rle covers"):
        import_source(store, tmp_path, "p", "cvat")
    assert store.ns.projects() == []


# -- Label Studio -----------------------------------------------------------------------------------
def test_label_studio_paths_and_results(store: Store, tmp_path: Path) -> None:
    """Uploaded files keep Label Studio's 8-hex prefix in the reference, not always on disk."""
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "street.jpg").write_bytes(jpeg_bytes(200, 100))
    (tmp_path / "media" / "upload" / "3").mkdir(parents=True)
    (tmp_path / "media" / "upload" / "3" / "1a2b3c4d-park.png").write_bytes(png_bytes(200, 100))
    rgba = np.zeros((100, 200, 4), np.uint8)
    rgba[10:20, 30:50] = 255
    size = {"original_width": 200, "original_height": 100}
    tasks = [
        {"id": 1, "data": {"image": "/data/local-files/?d=data/photos/street.jpg"}, "annotations": [
            {"was_cancelled": True, "result": []},
            {"result": [
                {"type": "rectanglelabels", "from_name": "label", "to_name": "image", **size,
                 "value": {"x": 10, "y": 20, "width": 50, "height": 30, "rotation": 0, "rectanglelabels": ["car"]}},
                {"type": "polygonlabels", **size,
                 "value": {"points": [[0, 0], [50, 0], [25, 50]], "polygonlabels": ["road"]}},
                {"type": "keypointlabels", **size, "value": {"x": 50, "y": 50, "width": 1, "keypointlabels": ["eye"]}},
                {"type": "rectanglelabels", **size,
                 "value": {"x": 10, "y": 20, "width": 10, "height": 10, "rotation": 90, "rectanglelabels": ["sign"]}},
                {"type": "choices", "value": {"choices": ["sunny", "city"]}},
                {"type": "textarea", "from_name": "caption", "value": {"text": ["a red car"]}}]}]},
        {"id": 2, "data": {"image": "/data/upload/3/1a2b3c4d-park.png"}, "predictions": [{"result": [
            {"type": "brushlabels", **size,
             "value": {"format": "rle", "rle": labelstudio.encode_rle(rgba), "brushlabels": ["tree"]}}]}]},
    ]
    (tmp_path / "project-3-at-2026.json").write_text(json.dumps(tasks))
    assert detect_format(tmp_path) == "labelstudio"
    import_source(store, tmp_path, "p", "labelstudio")
    ann = annotation(store, "p", tmp_path.name, "street.jpg")
    car = next(o for o in ann["objects"] if o["classTitle"] == "car")
    assert car["points"]["exterior"] == [[20.0, 20.0], [120.0, 50.0]]  # percent of 200 x 100
    assert {o["classTitle"]: o["geometryType"] for o in ann["objects"]} == {"car": "rectangle", "road": "polygon",
                                                                            "eye": "point", "sign": "polygon"}
    sign = next(o for o in ann["objects"] if o["classTitle"] == "sign")  # 20 x 10 px turned a quarter clockwise
    assert sign["points"]["exterior"] == [[20.0, 20.0], [20.0, 40.0], [10.0, 40.0], [10.0, 20.0]]
    assert {t["name"]: t["value"] for t in ann["tags"]} == {"sunny": None, "city": None, "caption": "a red car"}
    tree = annotation(store, "p", tmp_path.name, "1a2b3c4d-park.png")["objects"][0]
    assert tree["geometryType"] == "bitmap" and tree["bitmap"]["origin"] == [30, 10]


def test_label_studio_rle_decodes_literals_and_runs() -> None:
    """A literal block (flag 0) then a run (flag 1), bit by bit as rle-pack writes them."""
    bits = f"{5:032b}{7:05b}" + "".join(f"{s - 1:04b}" for s in (3, 4, 8, 16))
    bits += "0" + "00" + f"{1:03b}" + f"{7:08b}{9:08b}"  # 2 literal words: 7, 9
    bits += "1" + "00" + f"{2:03b}" + f"{255:08b}"  # a run of 3 x 255
    bits += "0" * (-len(bits) % 8)
    data = [int(bits[k:k + 8], 2) for k in range(0, len(bits), 8)]
    assert labelstudio.decode_rle(data, "x", "y").tolist() == [7, 9, 255, 255, 255]
    values = np.array([0] * 70000 + [255] * 5 + [3], np.uint8)
    assert np.array_equal(labelstudio.decode_rle(labelstudio.encode_rle(values), "x", "y"), values)


def test_label_studio_missing_image_names_the_task(store: Store, tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes(8, 8))
    tasks = [{"data": {"image": "/data/upload/1/deadbeef-gone.jpg"}, "annotations": [{"result": []}]}]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    with pytest.raises(InvalidInput, match=r"export.json: \[0\].data.image: image .*gone.jpg' not found"):
        import_source(store, tmp_path, "p", "labelstudio")


# -- KITTI ---------------------------------------------------------------------------------------------
def test_kitti_fields_dontcare_and_3d(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "training"
    (root / "image_2").mkdir(parents=True)
    (root / "label_2").mkdir()
    (root / "image_2" / "000000.png").write_bytes(png_bytes(100, 50))
    (root / "label_2" / "000000.txt").write_text(
        "Car 0.00 0 -1.58 10.00 5.00 40.00 30.00 1.48 1.60 3.69 1.84 1.47 8.41 -1.56\n"
        "Pedestrian 0.50 2 -10 50.5 10 60 45 -1 -1 -1 -1000 -1000 -1000 -10 0.87\n"
        "DontCare -1 -1 -10 70 0 99 20 -1 -1 -1 -1000 -1000 -1000 -10\n")
    assert detect_format(tmp_path) == "kitti"
    _report, _extra = import_source(store, tmp_path, "k", "kitti")
    ann = annotation(store, "k", "training", "000000.png")
    by_class = {o["classTitle"]: {t["name"]: t["value"] for t in o["tags"]} for o in ann["objects"]}
    assert by_class["Car"] == {"kitti_3d": "-1.58 1.48 1.6 3.69 1.84 1.47 8.41 -1.56"}
    assert by_class["Pedestrian"] == {"truncated": 0.5, "occluded": 2, "score": 0.87}
    assert "DontCare" in by_class
    out = tmp_path / "out"
    kitti.write(store, "k", out)
    assert (out / "training" / "label_2" / "000000.txt").read_text().splitlines()[0] == \
        "Car 0 0 -1.58 10.00 5.00 40.00 30.00 1.48 1.6 3.69 1.84 1.47 8.41 -1.56"


def test_kitti_line_of_14_fields_is_refused_by_line(store: Store, tmp_path: Path) -> None:
    (tmp_path / "image_2").mkdir()
    (tmp_path / "label_2").mkdir()
    (tmp_path / "image_2" / "1.png").write_bytes(png_bytes(10, 10))
    (tmp_path / "label_2" / "1.txt").write_text("Car 0 0 0 1 1 5 5 1 1 1 1 1 1\n")
    with pytest.raises(InvalidInput, match=r"label_2/1.txt: line 1: expected 15 fields"):
        import_source(store, tmp_path, "k", "kitti")


# -- classification folders ------------------------------------------------------------------------------
def test_class_folders_with_and_without_splits(store: Store, tmp_path: Path) -> None:
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (tmp_path / "split" / split / cls).mkdir(parents=True)
            (tmp_path / "split" / split / cls / f"{cls}1.jpg").write_bytes(jpeg_bytes(8, 8, (len(split), 1, 2)))
    for cls in ("cat", "dog"):
        (tmp_path / "flat" / cls).mkdir(parents=True)
        (tmp_path / "flat" / cls / "1.jpg").write_bytes(jpeg_bytes(8, 8, (len(cls), 5, 5)))
    assert detect_format(tmp_path / "split") == "imagenet"
    assert detect_format(tmp_path / "flat") == "images"  # photos sorted into folders stay datasets
    for event in ("beach", "city"):  # photos by year and event: folders of folders, not splits of classes
        (tmp_path / "photos" / "2024" / event).mkdir(parents=True)
        (tmp_path / "photos" / "2024" / event / "1.jpg").write_bytes(jpeg_bytes(8, 8, (len(event), 7, 7)))
    assert detect_format(tmp_path / "photos") == "images"
    import_source(store, tmp_path / "split", "s", "imagenet")
    assert store.ns.datasets("s") == ["train", "val"]
    assert [t["name"] for t in annotation(store, "s", "val", "dog1.jpg")["tags"]] == ["dog"]
    import_source(store, tmp_path / "flat", "f", "imagenet")
    assert [n for n, _ in store.ns.items("f", "flat")] == ["1.jpg", "dog_1.jpg"]  # one name in two classes
    (tmp_path / "flat" / "cat" / "notes.txt").write_text("trip")  # a file not an image: not a class folder
    assert not FORMATS["imagenet"].detect(tmp_path / "flat").score
