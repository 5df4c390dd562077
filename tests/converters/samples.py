"""Sample datasets written the way each format's public specification lays them out (and,
for COCO's RLE, encoded by pycocotools), plus the comparison the round-trip tests use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cas import Store
from converters import geometry as geo
from tests.conftest import jpeg_bytes


def coco_sample(root: Path, n: int = 4) -> Path:
    from pycocotools import mask as mask_utils
    (root / "images" / "val2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, anns = [], []
    for i in range(n):
        w, h = 64 + i, 48
        (root / "images" / "val2017" / f"{i:012d}.jpg").write_bytes(jpeg_bytes(w, h, (i * 40, 100, 50)))
        images.append({"id": i + 1, "file_name": f"{i:012d}.jpg", "width": w, "height": h,
                       "coco_url": f"http://images.cocodataset.org/val2017/{i:012d}.jpg"})
        anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "bbox": [5, 5, 20, 10], "area": 200,
                     "iscrowd": 0, "segmentation": [[5, 5, 25, 5, 25, 15, 5, 15], [30, 30, 40, 30, 35, 40]]})
        m = np.zeros((h, w), np.uint8)
        m[10:20, 30:50] = 1
        compressed = mask_utils.encode(np.asfortranarray(m))
        compressed["counts"] = compressed["counts"].decode()
        anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 2, "bbox": [30, 10, 20, 10],
                     "area": 200, "iscrowd": 0, "segmentation": compressed})
        flat = m.flatten(order="F")  # uncompressed RLE, as COCO writes crowd regions
        runs, value, length = [], 0, 0
        for v in flat:
            if v == value:
                length += 1
            else:
                runs.append(length)
                value, length = v, 1
        runs.append(length)
        anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 2, "bbox": [30, 10, 20, 10],
                     "area": 200, "iscrowd": 1, "segmentation": {"size": [h, w], "counts": runs}})
        anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "bbox": [1, 2, 30, 30], "area": 450,
                     "iscrowd": 0, "num_keypoints": 2, "keypoints": [10, 10, 2, 20, 20, 1, 0, 0, 0],
                     "segmentation": [[1, 2, 31, 2, 31, 32]]})
        anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 3, "bbox": [40, 30, 100, 30],
                     "area": 0, "iscrowd": 0})  # a box only, reaching past the image
    cats = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": ["nose", "left_eye", "right_eye"],
             "skeleton": [[1, 2], [1, 3]]},
            {"id": 2, "name": "car", "supercategory": "vehicle"},
            {"id": 3, "name": "sign", "supercategory": "outdoor"}]
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(
        {"info": {}, "licenses": [], "images": images, "annotations": anns, "categories": cats}))
    return root


def yolo_sample(root: Path, task: str = "detect") -> Path:
    names = ["person", "car"]
    doc = ["path: .", "train: images/train", "val: images/val", "names:", "  0: person", "  1: car"]
    if task == "pose":
        doc.append("kpt_shape: [3, 3]")
    (root).mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text("\n".join(doc) + "\n")
    for split, n in (("train", 3), ("val", 2)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            (root / "images" / split / f"{split}{i}.jpg").write_bytes(jpeg_bytes(100, 80, (i * 50, 20, 200)))
            if task == "detect":
                lines = ["0 0.5 0.5 0.2 0.25", "1 0.25 0.3 0.1 0.1", "1 0.95 0.95 0.2 0.2"]  # the last one is clipped
            elif task == "segment":
                lines = ["0 0.1 0.1 0.4 0.1 0.4 0.5 0.1 0.5", "1 0.5 0.5 0.9 0.6 0.7 0.9"]
            else:
                lines = ["0 0.5 0.5 0.4 0.5 0.45 0.4 2 0.55 0.4 2 0 0 0"]
            (root / "labels" / split / f"{split}{i}.txt").write_text("\n".join(lines) + "\n")
    assert names
    return root


VOC_XML = """<annotation>
	<folder>VOC2012</folder>
	<filename>{stem}.jpg</filename>
	<source><database>The VOC2007 Database</database><annotation>PASCAL VOC2007</annotation></source>
	<size><width>{w}</width><height>{h}</height><depth>3</depth></size>
	<segmented>1</segmented>
	<object>
		<name>person</name><pose>Frontal</pose><truncated>1</truncated><difficult>0</difficult>
		<bndbox><xmin>11</xmin><ymin>6</ymin><xmax>30</xmax><ymax>25</ymax></bndbox>
	</object>
	<object>
		<name>dog</name><pose>Unspecified</pose><truncated>0</truncated><difficult>1</difficult>
		<bndbox><xmin>41</xmin><ymin>21</ymin><xmax>60</xmax><ymax>40</ymax></bndbox>
	</object>
</annotation>
"""


def voc_sample(root: Path) -> Path:
    from converters.voc import VOC_CLASSES, voc_palette
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main", "SegmentationObject", "SegmentationClass"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    stems = [f"2007_00{i:04d}" for i in range(4)]
    for i, stem in enumerate(stems):
        w, h = 80, 60
        (root / "JPEGImages" / f"{stem}.jpg").write_bytes(jpeg_bytes(w, h, (i * 30, 90, 10)))
        (root / "Annotations" / f"{stem}.xml").write_text(VOC_XML.format(stem=stem, w=w, h=h))
        if i % 2 == 0:  # half the images are segmented
            obj = np.zeros((h, w), np.uint8)
            obj[6:25, 11:30] = 1
            obj[21:40, 41:60] = 2
            obj[5, 10:31] = 255  # boundary pixels
            cls = np.where(obj == 1, VOC_CLASSES.index("person"), np.where(obj == 2, VOC_CLASSES.index("dog"), obj))
            for folder, arr in (("SegmentationObject", obj), ("SegmentationClass", cls.astype(np.uint8))):
                png = Image.fromarray(arr, mode="L").convert("P")
                png.putpalette(voc_palette())
                png.save(root / folder / f"{stem}.png")
    (root / "ImageSets/Main/train.txt").write_text("\n".join(stems[:3]) + "\n")
    (root / "ImageSets/Main/val.txt").write_text(stems[3] + "\n")
    (root / "ImageSets/Main/trainval.txt").write_text("\n".join(stems) + "\n")
    (root / "ImageSets/Main/person_train.txt").write_text(f"{stems[0]}  1\n")
    return root


def objects_of(store: Store, project: str) -> dict[str, list[tuple[str, str, tuple[float, ...]]]]:
    """item name -> sorted (class, geometry, box) of its objects."""
    out = {}
    for dataset in store.ns.datasets(project):
        for name, item in store.ns.items(project, dataset):
            ann = store.read_json(item.ann, name)
            out[name] = sorted((o["classTitle"], o["geometryType"], tuple(round(v, 1) for v in geo.bbox(o) or ()))
                               for o in ann["objects"])
    return out


def assert_reimport_same(store: Store, project: str, export: Path, fmt: str, tolerance: float = 1.0) -> None:
    """Import an export into a fresh store beside it: the same objects as `project` here."""
    from converters.ingest import import_source
    again = Store.init(export.parent / "again")
    try:
        import_source(again, export, project, fmt)
        assert_same_objects(objects_of(store, project), objects_of(again, project), tolerance)
    finally:
        again.close()


def assert_same_objects(a: dict[str, Any], b: dict[str, Any], tolerance: float = 1.0) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert len(a[name]) == len(b[name]), (name, a[name], b[name])
        for (ca, ga, ba), (cb, gb, bb) in zip(a[name], b[name]):
            assert (ca, ga) == (cb, gb), (name, a[name], b[name])
            assert all(abs(x - y) <= tolerance for x, y in zip(ba, bb)), (name, ba, bb)


def labelme_sample(root: Path) -> Path:
    """LabelMe 5.x files: one with its image beside it, one with the image embedded only."""
    import base64
    root.mkdir(parents=True)
    shapes = [
        {"label": "cat", "points": [[10, 10], [40, 10], [40, 30], [10, 30]], "group_id": None,
         "description": "", "shape_type": "polygon", "flags": {"occluded": True}, "mask": None},
        {"label": "dog", "points": [[50, 40], [20, 5]], "group_id": None, "description": "",
         "shape_type": "rectangle", "flags": {}, "mask": None},
        {"label": "eye", "points": [[15, 15]], "group_id": None, "description": "", "shape_type": "point",
         "flags": {}, "mask": None},
        {"label": "tail", "points": [[40, 30], [55, 35], [70, 30]], "group_id": None, "description": "",
         "shape_type": "linestrip", "flags": {}, "mask": None},
        {"label": "ball", "points": [[60, 15], [65, 15]], "group_id": None, "description": "",
         "shape_type": "circle", "flags": {}, "mask": None},
    ]
    for i, embedded in enumerate((False, True)):
        data = jpeg_bytes(80, 50, (i * 90, 60, 120))
        doc = {"version": "5.4.1", "flags": {"indoor": True, "blurry": False}, "shapes": shapes,
               "imagePath": f"pet{i}.jpg", "imageData": base64.b64encode(data).decode() if embedded else None,
               "imageHeight": 50, "imageWidth": 80}
        if not embedded:
            (root / f"pet{i}.jpg").write_bytes(data)
        (root / f"pet{i}.json").write_text(json.dumps(doc, indent=2))
    return root


def cityscapes_sample(root: Path) -> Path:
    for split, city, n in (("train", "aachen", 2), ("val", "frankfurt", 1)):
        (root / "gtFine" / split / city).mkdir(parents=True)
        (root / "leftImg8bit" / split / city).mkdir(parents=True)
        for i in range(n):
            stem = f"{city}_{i:06d}_000019"
            img = Image.new("RGB", (128, 64), (70, 130, 180))
            img.save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
            doc = {"imgHeight": 64, "imgWidth": 128, "objects": [
                {"label": "road", "polygon": [[0, 40], [127, 40], [127, 63], [0, 63]]},
                {"label": "car", "polygon": [[10, 30], [40, 30], [40, 45], [10, 45]]},
                {"label": "cargroup", "polygon": [[60, 30], [90, 28], [95, 45]]},
                {"label": "person", "polygon": [[100, 20], [105, 20], [105, 40]], "deleted": 1},
            ]}
            (root / "gtFine" / split / city / f"{stem}_gtFine_polygons.json").write_text(json.dumps(doc))
    return root


def masks_sample(root: Path, machine: bool) -> Path:
    (root / "images").mkdir(parents=True)
    for i in range(3):
        (root / "images" / f"m{i}.jpg").write_bytes(jpeg_bytes(40, 30, (20, 20 * i, 90)))
        index = np.zeros((30, 40), np.uint8)
        index[5:15, 5:20] = 1
        index[18:28, 22:38] = 2 if i != 1 else 0
        if machine:
            (root / "masks").mkdir(exist_ok=True)
            Image.fromarray(index, mode="L").save(root / "masks" / f"m{i}.png")
        else:
            for value, name in ((1, "leaf"), (2, "stem")):
                (root / "masks" / name).mkdir(parents=True, exist_ok=True)
                mask = ((index == value) * 255).astype(np.uint8)
                Image.fromarray(mask, mode="L").save(root / "masks" / name / f"m{i}.png")
    if machine:
        (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\nleaf:0,255,0::\n"
                                           "stem:128,64,0::\n")
    return root
