"""Interop both ways: the layouts real tools export import (found by `--format auto` from the
export's root or the folder above it), and our exports load in the readers users train with.

Fixtures come from the real tools where they install into a test venv in reasonable time
(the Supervisely SDK, Datumaro: see tests/tools.py); the others (CVAT, FiftyOne,
Roboflow, COCO 2017 as downloaded) are written to the layout their documents give, named
in each test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
import yaml
from PIL import Image

from cas import Store
from cas.errors import AlreadyExists
from converters import WRITABLE, coco, geometry, voc, yolo
from converters.ingest import detect_format, import_source
from tests.conftest import assert_user_error, jpeg_bytes, png_bytes, run_cas
from tests.converters.samples import objects_of
from tests.tools import run_tool


def object_count(store: Store, project: str) -> int:
    return sum(len(objs) for objs in objects_of(store, project).values())


def item_count(store: Store, project: str) -> int:
    return sum(store.ns.count_items(project, d) for d in store.ns.datasets(project))


def auto_import(store: Store, src: Path, project: str) -> str:
    fmt = detect_format(src)
    import_source(store, src, project, fmt)
    return fmt


# -- Supervisely SDK exports (the real SDK) -----------------------------------------------------
@pytest.mark.parametrize("where,fmt", [("coco", "coco"), ("yolo", "yolo"), ("voc", "voc"),
                                       ("voc/VOCdevkit/VOC", "voc")])
def test_supervisely_sdk_exports_import(sdk_exports: Path, tmp_path: Path, where: str, fmt: str) -> None:
    src = sdk_exports / where
    images = [p for p in src.rglob("*") if p.suffix in (".jpg", ".png") and "Segmentation" not in str(p)]
    with Store.init(tmp_path / "s") as store:
        assert auto_import(store, src, "p") == fmt
        assert item_count(store, "p") == len(images) > 0
        assert object_count(store, "p") > 0
        if fmt == "coco":  # one folder per dataset: the datasets come back by name
            assert store.ns.datasets("p") == ["train", "val"]
            expected = sum(len(json.loads(f.read_text())["annotations"]) for f in src.rglob("*.json"))
            assert object_count(store, "p") >= expected
            classes = {c["title"]: c["shape"] for c in store.ns.project("p").meta["classes"]}
            assert classes.get("person") == "graph", classes  # a keypoint category keeps its name


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_supervisely_sdk_exports_of_hard_names_import(sdk_names_exports: Path, tmp_path: Path, fmt: str) -> None:
    """Ids with spaces and non-ASCII letters, as the SDK writes them (its VOC lists:
    `train_street scene 02.jpg 1`), import whole; a keypoint category keeps its name."""
    with Store.init(tmp_path / "s") as mine:
        assert auto_import(mine, sdk_names_exports / fmt, "p") == fmt
        names = {n for d in mine.ns.datasets("p") for n, _item in mine.ns.items("p", d)}
        assert item_count(mine, "p") == 5  # the project less its nested dataset
        assert any(" " in n for n in names) and any("é" in n for n in names), names
        if fmt == "coco":
            titles = {c["title"] for c in mine.ns.project("p").meta["classes"]}
            assert "person" in titles and not any(t.endswith("_keypoints") for t in titles), titles


# -- Datumaro (the real tool): its exports import, and it reads ours ----------------------------
DATUMARO_READS = r"""
import json, sys, datumaro as dm
out = {}
for path, fmt in zip(sys.argv[1::2], sys.argv[2::2]):
    ds = dm.Dataset.import_from(path, fmt)
    out[fmt] = [len(ds), sum(len(item.annotations) for item in ds), sorted(ds.subsets())]
print(json.dumps(out))
"""


def test_datumaro_coco_imports(datumaro_exports: Path, tmp_path: Path) -> None:
    """image_info, panoptic and stuff files beside the instances are skipped and counted."""
    src = datumaro_exports / "coco"
    with Store.init(tmp_path / "s") as store:
        assert detect_format(src) == "coco"
        _report, extra = import_source(store, src, "p", "coco")
        assert item_count(store, "p") == 8
        instances = sum(len(json.loads(f.read_text())["annotations"]) for f in src.glob("annotations/instances_*"))
        assert object_count(store, "p") == instances
        assert extra["COCO image_info files skipped (not instances or keypoints)"] == 3
        assert extra["COCO panoptic files skipped (not instances or keypoints)"] == 3


def test_datumaro_voc_imports(datumaro_exports: Path, tmp_path: Path) -> None:
    """RGB masks in labelmap colours (left out: the VOC palette's), lists naming items without XML."""
    src = datumaro_exports / "voc"
    xml_objects = sum(len(ElementTree.parse(p).getroot().findall("object")) for p in src.glob("Annotations/*.xml"))
    with Store.init(tmp_path / "s") as store:
        assert auto_import(store, src, "p") == "voc"
        assert item_count(store, "p") == 8
        assert object_count(store, "p") >= xml_objects  # one per XML object, plus mask-only instances
        kinds = {g for objs in objects_of(store, "p").values() for _c, g, _b in objs}
        assert "bitmap" in kinds


def test_datumaro_yolo_ultralytics_imports(datumaro_exports: Path, tmp_path: Path) -> None:
    """data.yaml says `train: train.txt`, a list of image paths."""
    src = datumaro_exports / "yolo_ultralytics"
    labels = sum(len(p.read_text().splitlines()) for p in src.rglob("labels/**/*.txt"))
    with Store.init(tmp_path / "s") as store:
        assert auto_import(store, src, "p") == "yolo"
        assert item_count(store, "p") == 8
        assert object_count(store, "p") == labels > 0


@pytest.mark.parametrize("where,fmt,dm_format", [
    ("cvat", "cvat", "cvat"), ("kitti_detection", "kitti", "kitti_detection"), ("yolo", "yolo", "yolo"),
    ("imagenet", "imagenet", "imagenet"), ("imagenet_with_subset_dirs", "imagenet", "imagenet_with_subset_dirs")])
def test_datumaro_exports_of_other_formats_import(datumaro_exports: Path, tmp_path: Path, where: str, fmt: str,
                                                  dm_format: str) -> None:
    """Written by Datumaro's own exporters; counted by its own importers."""
    src = datumaro_exports / where
    items, annotations, subsets = json.loads(run_tool("datumaro", DATUMARO_READS, str(src), dm_format
                                                      ).strip().splitlines()[-1])[dm_format]
    with Store.init(tmp_path / "s") as store:
        if where == "imagenet":  # class folders alone: a folder of photos to `auto`
            import_source(store, src, "p", fmt)
        else:
            assert auto_import(store, src, "p") == fmt
        assert item_count(store, "p") == items == 8
        if fmt == "imagenet":  # a class per image, as image tags
            tags = [t["name"] for d in store.ns.datasets("p") for n, item in store.ns.items("p", d)
                    for t in store.read_json(item.ann, n)["tags"]]
            assert len(tags) == annotations == 8 and set(tags) == {"cat", "dog"}
            assert len(store.ns.datasets("p")) == len(subsets)
        else:  # CVAT points of several points (keypoints) come back as single points
            assert object_count(store, "p") >= annotations > 0
            assert sorted(store.ns.datasets("p")) == subsets


def test_datumaro_reads_our_exports(demo: tuple[Store, Path], tmp_path: Path) -> None:
    store, _root = demo
    coco.write(store, "demo", tmp_path / "coco")
    voc.write(store, "demo", tmp_path / "voc")
    seen = json.loads(run_tool("datumaro", DATUMARO_READS, str(tmp_path / "coco"), "coco", str(tmp_path / "voc"),
                               "voc").strip().splitlines()[-1])
    assert seen["coco"][0] == 8 and seen["voc"][0] == 8  # no 'Undeclared label' from our labelmap.txt
    assert seen["coco"][2] == ["train", "train_night", "val"]
    assert seen["voc"][2] == ["train", "train-night", "val"]
    assert seen["voc"][1] > 0


@pytest.mark.parametrize("fmt,dm_format", [("cvat", "cvat"), ("kitti", "kitti_detection"), ("imagenet", None),
                                           ("yolo", "yolo")])
def test_datumaro_reads_our_new_exports(names_project: tuple[Store, Path], tmp_path: Path, fmt: str,
                                        dm_format: str | None) -> None:
    """Our exports of the project of hard names, loaded by Datumaro's importers."""
    from converters import FORMATS
    store, _root = names_project
    counts = FORMATS[fmt].write(store, "names", tmp_path / "out")
    dm_format = dm_format or ("imagenet_with_subset_dirs" if len(store.ns.datasets("names")) > 1 else fmt)
    items, annotations, _subsets = json.loads(run_tool("datumaro", DATUMARO_READS, str(tmp_path / "out"), dm_format
                                                       ).strip().splitlines()[-1])[dm_format]
    assert items == item_count(store, "names") == 6
    if fmt != "imagenet":
        assert annotations == counts["objects"] + counts.get("image tags", 0) > 0


# -- our exports: re-imported with the same counts, and read by the clients' rules ---------------
@pytest.mark.parametrize("fmt", WRITABLE)
def test_every_export_reimports_with_the_same_counts(demo: tuple[Store, Path], tmp_path: Path, fmt: str) -> None:
    from converters import FORMATS
    store, _root = demo
    counts = FORMATS[fmt].write(store, "demo", tmp_path / "out")
    with Store.init(tmp_path / "s") as again:
        assert auto_import(again, tmp_path / "out", "back") == fmt
        assert item_count(again, "back") == item_count(store, "demo")
        # What a format cannot hold (keypoints in VOC and a detect-task YOLO) is counted as skipped.
        written = counts.get("objects", object_count(store, "demo"))
        assert written + sum(v for k, v in counts.items() if "skipped" in k) == object_count(store, "demo")
        assert object_count(again, "back") == written


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc", "kitti", "cvat", "labelstudio", "imagenet"])
def test_export_then_import_keeps_every_name(names_project: tuple[Store, Path], tmp_path: Path, fmt: str) -> None:
    """Spaces, non-ASCII letters, one item name in a dataset and in its child: the export
    writes names its readers take, and our import brings back every dataset and item name."""
    from converters import FORMATS
    store, _root = names_project
    FORMATS[fmt].write(store, "names", tmp_path / "out")
    written = [p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*") if p.is_file()]
    if fmt in ("voc", "kitti"):  # ids in lists split on whitespace: ASCII, no spaces
        assert all(p.as_posix().isascii() and " " not in p.as_posix() for p in written), written
    images = [p for p in written if p.suffix in (".jpg", ".png") and "Segmentation" not in str(p)]
    assert len(images) == 6
    if fmt not in ("coco", "imagenet", "labelstudio"):  # one label file per stem: unique over the export
        assert len({p.stem for p in images}) == 6, images
    with Store.init(tmp_path / "s") as again:
        auto_import(again, tmp_path / "out", "back")
        assert again.ns.datasets("back") == store.ns.datasets("names")
        for dataset in store.ns.datasets("names"):
            assert [n for n, _ in again.ns.items("back", dataset)] == [n for n, _ in store.ns.items("names", dataset)]


def test_coco_export_works_in_pycocotools(demo: tuple[Store, Path], tmp_path: Path) -> None:
    """annToMask on every annotation, and COCOeval segm of the ground truth against itself is 1.0."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    store, _root = demo
    coco.write(store, "demo", tmp_path / "out")
    for path in sorted((tmp_path / "out" / "annotations").glob("*.json")):
        gt = COCO(str(path))
        anns = gt.loadAnns(gt.getAnnIds())
        assert anns and all("segmentation" in a for a in anns)
        for ann in anns:
            assert gt.annToMask(ann).sum() > 0, ann
        dets = gt.loadRes([{**a, "score": 1.0} for a in anns])
        for iou_type in ("segm", "bbox"):
            ev = COCOeval(gt, dets, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            assert ev.stats[0] == pytest.approx(1.0), (path.name, iou_type)


def test_yolo_export_splits_by_name_and_loads_from_anywhere(demo: tuple[Store, Path], tmp_path: Path) -> None:
    """Ultralytics' check_det_dataset: `path` absolute (a relative one is taken from the working
    folder), each split's folders under it, labels where img2label_paths looks."""
    store, _root = demo
    counts = yolo.write(store, "demo", tmp_path / "out")
    doc = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())
    assert Path(doc["path"]).is_absolute() and Path(doc["path"]) == (tmp_path / "out").resolve()
    assert doc["train"] == ["images/train", "images/train_night"] and doc["val"] == "images/val"
    assert "test" not in doc and doc["names"] == dict(enumerate(doc["names"].values()))
    for split in ("train", "val"):
        for folder in doc[split] if isinstance(doc[split], list) else [doc[split]]:
            for image in (Path(doc["path"]) / folder).iterdir():
                label = Path(str(image).replace("/images/", "/labels/")).with_suffix(".txt")
                assert label.is_file(), label
    assert counts["images"] == 8
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~umask  # not the temp folder's 0700
    other = yolo.write(store, "demo", tmp_path / "other", other_split="none")
    assert other["images"] == 8  # train/night is train by its top-level name


def test_yolo_export_split_rule_and_stems(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for ds in ("Validation", "extra", "train"):
        (src / ds).mkdir(parents=True)
    (src / "Validation" / "a.jpg").write_bytes(jpeg_bytes(20, 10))
    (src / "Validation" / "a.png").write_bytes(png_bytes(20, 10))
    (src / "extra" / "b.jpg").write_bytes(jpeg_bytes(20, 10, (1, 2, 3)))
    (src / "train" / "c.jpg").write_bytes(jpeg_bytes(20, 10, (4, 5, 6)))
    import_source(store, src, "p", "images")
    counts = yolo.write(store, "p", tmp_path / "out", other_split="test")
    doc = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())
    assert (doc["train"], doc["val"], doc["test"]) == ("images/train", "images/Validation", "images/extra")
    assert counts["images renamed (a stem taken in another folder or by another image; cas_names.json keeps "
                  "the names)"] == 1
    assert sorted(p.name for p in (tmp_path / "out" / "labels" / "Validation").iterdir()) == ["Validation_a.txt",
                                                                                              "a.txt"]
    assert counts["datasets written to the test split (not named train, val or test)"] == 1


def test_voc_export_ids_unique_lists_and_masks(store: Store, tmp_path: Path) -> None:
    """torchvision's VOCDetection / VOCSegmentation open ImageSets/<task>/<split>.txt, then
    JPEGImages/<id>.jpg, Annotations/<id>.xml and SegmentationClass/<id>.png for each id."""
    src = tmp_path / "src"
    meta = {"classes": [{"title": "road", "shape": "polygon", "color": "#FF0000"},
                        {"title": "car", "shape": "rectangle", "color": "#00FF00"}], "tags": []}
    (src).mkdir()
    (src / "meta.json").write_text(json.dumps(meta))
    for ds in ("train", "val"):
        (src / ds / "img").mkdir(parents=True)
        (src / ds / "ann").mkdir()
        (src / ds / "img" / "x.png").write_bytes(png_bytes(40, 30, (10, 20, 30) if ds == "train" else (1, 1, 1)))
        objects = [{"classTitle": "road", "geometryType": "polygon",
                    "points": {"exterior": [[2, 2], [30, 4], [20, 25]], "interior": []}},
                   {"classTitle": "car", "geometryType": "rectangle", "points": {"exterior": [[1, 1], [9, 9]],
                                                                                "interior": []}}]
        (src / ds / "ann" / "x.png.json").write_text(json.dumps(
            {"size": {"width": 40, "height": 30}, "tags": [], "objects": objects}))
    import_source(store, src, "p", "sly")
    out = tmp_path / "out"
    counts = voc.write(store, "p", out)
    assert counts["items given other ids (not ASCII, a space, or an id taken; cas_names.json keeps the names)"] == 1
    assert counts["objects"] == 4  # one XML object per object: no box beside each mask
    assert sorted(p.name for p in (out / "JPEGImages").iterdir()) == ["val-x.jpg", "x.jpg"]
    for split in ("train", "val"):
        for task in ("Main", "Segmentation"):
            for item_id in (out / "ImageSets" / task / f"{split}.txt").read_text().split():
                assert Image.open(out / "JPEGImages" / f"{item_id}.jpg").format == "JPEG"
                assert (out / "Annotations" / f"{item_id}.xml").is_file()
                if task == "Segmentation":
                    assert Image.open(out / "SegmentationClass" / f"{item_id}.png").mode == "P"
    labelmap = (out / "labelmap.txt").read_text().splitlines()
    assert labelmap[1:] == ["background:0,0,0::", "road:128,0,0::", "car:0,128,0::"]
    cls = np.asarray(Image.open(out / "SegmentationClass" / "x.png"))
    assert set(np.unique(cls)) == {0, 1}  # road's index; the car is a box only


def test_export_error_leaves_no_folder(demo: tuple[Store, Path], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    store, _root = demo
    calls = []

    def failing(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise AlreadyExists("JPEGImages/x.jpg: File exists")
        return real(*args, **kwargs)
    real = geometry.export_image
    monkeypatch.setattr(geometry, "export_image", failing)
    for fmt, writer in (("voc", voc.write), ("yolo", yolo.write)):
        calls.clear()
        with pytest.raises(AlreadyExists):
            writer(store, "demo", tmp_path / fmt)
        assert list(tmp_path.iterdir()) == [], fmt


def test_our_voc_lists_are_never_taken_for_per_class_lists(store: Store, tmp_path: Path) -> None:
    """A nested dataset's list (train_night.txt) is a split; `aeroplane_train.txt` (`id  1` lines) is not."""
    from tests.converters.samples import voc_sample
    src = voc_sample(tmp_path / "VOC2012")
    (src / "ImageSets/Main/train_night.txt").write_text("2007_000001\n")
    import_source(store, src, "v", "voc")
    assert store.ns.datasets("v") == ["train", "train_night", "val"]


# -- EXIF orientation ---------------------------------------------------------------------------
def rotated_jpeg(width: int, height: int, orientation: int = 6) -> bytes:
    """A phone photo: `width` x `height` stored rows, shown turned a quarter."""
    import io
    img = Image.new("RGB", (width, height), (200, 10, 10))
    img.paste((10, 200, 10), (0, 0, width // 4, height // 4))  # a corner, to see where it goes
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif, quality=95)
    return buf.getvalue()


def test_exif_rotated_jpeg_has_its_shown_size_and_exports_upright(store: Store, tmp_path: Path) -> None:
    """The SDK (OpenCV), Ultralytics (exif_size) and browsers show it 48 wide, 64 high; its
    annotation from the SDK says so; exports write the pixels upright for PIL-based readers."""
    src = tmp_path / "sly"
    (src / "ds" / "img").mkdir(parents=True)
    (src / "ds" / "ann").mkdir()
    (src / "meta.json").write_text(json.dumps({"classes": [{"title": "c", "shape": "rectangle",
                                                            "color": "#FF0000"}], "tags": []}))
    (src / "ds" / "img" / "phone.jpg").write_bytes(rotated_jpeg(64, 48))
    box = {"classTitle": "c", "geometryType": "rectangle", "points": {"exterior": [[1, 1], [40, 60]], "interior": []}}
    (src / "ds" / "ann" / "phone.jpg.json").write_text(json.dumps(
        {"size": {"width": 48, "height": 64}, "tags": [], "objects": [box]}))
    import_source(store, src, "p", "sly")
    item = store.ns.item("p", "ds", "phone.jpg")
    assert (item.width, item.height) == (48, 64)
    counts = coco.write(store, "p", tmp_path / "coco")
    assert counts[geometry.ROTATED] == 1
    written = Image.open(tmp_path / "coco" / "images" / "ds" / "phone.jpg")
    assert written.size == (48, 64) and written.getexif().get(0x0112, 1) == 1


# -- documented layouts of tools that do not install here ---------------------------------------
def write_coco(path: Path, images: list[tuple[int, str, int, int]], anns: list[dict], cats: list[dict],
               **extra: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": [{"id": i, "file_name": n, "width": w, "height": h}
                                           for i, n, w, h in images], "annotations": anns,
                                "categories": cats, **extra}))


def box_ann(ann_id: int, image_id: int, cat: int = 1, **extra: object) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": cat, "bbox": [2, 2, 10, 8], "area": 80,
            "iscrowd": 0, **extra}


def test_coco_2017_as_downloaded(store: Store, tmp_path: Path) -> None:
    """cocodataset.org/#download: annotations_trainval2017.zip holds instances_, person_keypoints_
    and captions_ files of each split side by side (and panoptic_ in its own zip), images in
    val2017/."""
    root = tmp_path / "coco2017"
    (root / "val2017").mkdir(parents=True)
    images = [(i, f"{i:012d}.jpg", 40, 30) for i in (1, 2)]
    for _i, name, w, h in images:
        (root / "val2017" / name).write_bytes(jpeg_bytes(w, h))
    person = {"id": 1, "name": "person", "supercategory": "person"}
    write_coco(root / "annotations" / "instances_val2017.json", images,
               [box_ann(10, 1, segmentation=[[2, 2, 12, 2, 7, 10]]), box_ann(11, 2, cat=2)],
               [person, {"id": 2, "name": "dog", "supercategory": "animal"}])
    write_coco(root / "annotations" / "person_keypoints_val2017.json", images,
               [box_ann(10, 1, segmentation=[[2, 2, 12, 2, 7, 10]], keypoints=[3, 3, 2, 5, 5, 2], num_keypoints=2)],
               [{**person, "keypoints": ["nose", "eye"], "skeleton": [[1, 2]]}])
    write_coco(root / "annotations" / "captions_val2017.json", images,
               [{"id": 1, "image_id": 1, "caption": "a person"}], [])
    write_coco(root / "annotations" / "panoptic_val2017.json", images,
               [{"image_id": 1, "file_name": "000000000001.png", "segments_info": []}], [person])
    assert detect_format(root) == "coco"
    _report, extra = import_source(store, root, "p", "coco")
    assert store.ns.datasets("p") == ["val2017"] and item_count(store, "p") == 2
    kinds = sorted((c, g) for objs in objects_of(store, "p").values() for c, g, _b in objs)
    assert kinds == [("dog", "rectangle"), ("person", "polygon"), ("person_keypoints", "graph")]
    assert extra["COCO captions files skipped (not instances or keypoints)"] == 1
    assert extra["COCO panoptic files skipped (not instances or keypoints)"] == 1


def test_cvat_coco_and_fiftyone_coco(store: Store, tmp_path: Path) -> None:
    """CVAT COCO 1.0 (docs.cvat.ai, 'COCO'): annotations/instances_default.json, images/.
    FiftyOne COCODetectionDataset (docs.voxel51.com, 'COCODetectionDataset'): data/, labels.json."""
    cvat = tmp_path / "cvat"
    (cvat / "images").mkdir(parents=True)
    (cvat / "images" / "a.jpg").write_bytes(jpeg_bytes(40, 30))
    write_coco(cvat / "annotations" / "instances_default.json", [(1, "a.jpg", 40, 30)], [box_ann(1, 1)],
               [{"id": 1, "name": "car", "supercategory": ""}])
    fo = tmp_path / "fiftyone"
    (fo / "data").mkdir(parents=True)
    (fo / "data" / "b.jpg").write_bytes(jpeg_bytes(40, 30))
    write_coco(fo / "labels.json", [(1, "b.jpg", 40, 30)], [box_ann(1, 1)], [{"id": 1, "name": "car"}])
    for src, dataset in ((cvat, "default"), (fo, "fiftyone")):
        assert auto_import(store, src, dataset) == "coco"
        assert store.ns.datasets(dataset) == [dataset] and object_count(store, dataset) == 1


def test_cvat_yolo_1_1(store: Store, tmp_path: Path) -> None:
    """CVAT YOLO 1.1 (docs.cvat.ai, 'YOLO'): obj.data, obj.names, train.txt listing
    data/obj_train_data/<image>, labels beside the images."""
    root = tmp_path / "cvat-yolo"
    (root / "obj_train_data").mkdir(parents=True)
    (root / "obj.names").write_text("car\nperson\n")
    (root / "obj.data").write_text("classes = 2\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n")
    for name in ("a", "b"):
        (root / "obj_train_data" / f"{name}.jpg").write_bytes(jpeg_bytes(40, 30))
        (root / "obj_train_data" / f"{name}.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    (root / "train.txt").write_text("data/obj_train_data/a.jpg\ndata/obj_train_data/b.jpg\n")
    assert auto_import(store, root, "p") == "yolo"
    assert store.ns.datasets("p") == ["train"] and object_count(store, "p") == 2


@pytest.mark.parametrize("layout", ["roboflow", "ultralytics-lists", "fiftyone"])
def test_yolo_configs(store: Store, tmp_path: Path, layout: str) -> None:
    """Roboflow YOLOv8 export (docs.roboflow.com): data.yaml `train: ../train/images`,
    `val: ../valid/images`, names a list, <split>/images + <split>/labels.
    Ultralytics (docs.ultralytics.com/datasets/detect): splits as .txt lists of image
    paths (`./images/x.jpg`, relative to the list), names a mapping, `path` relative.
    FiftyOne YOLOv5Dataset (docs.voxel51.com): dataset.yaml with an absolute `path` of the
    machine that wrote it, `train: ./images/train/`."""
    root = tmp_path / layout
    if layout == "roboflow":
        folders, doc = {"train": "train", "valid": "val"}, {"train": "../train/images", "val": "../valid/images",
                                                            "nc": 2, "names": ["car", "person"]}
        paths = {split: (root / split / "images", root / split / "labels") for split in folders}
        config = "data.yaml"
    elif layout == "ultralytics-lists":
        folders, doc = {"train": "train", "val": "val"}, {"path": ".", "train": "train.txt", "val": "val.txt",
                                                          "names": {0: "car", 1: "person"}}
        paths = {split: (root / "images" / split, root / "labels" / split) for split in folders}
        config = "data.yaml"
    else:
        folders, doc = {"train": "train", "val": "val"}, {"path": "/home/someone/fiftyone/export",
                                                          "train": "./images/train/", "val": "./images/val/",
                                                          "names": {0: "car", 1: "person"}}
        paths = {split: (root / "images" / split, root / "labels" / split) for split in folders}
        config = "dataset.yaml"
    for split, (images, labels) in paths.items():
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        for i in range(2):
            (images / f"{split}{i}.jpg").write_bytes(jpeg_bytes(40, 30, (i, 9, 9)))
            (labels / f"{split}{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n")
        if layout == "ultralytics-lists":
            (root / f"{split}.txt").write_text("".join(f"./images/{split}/{split}{i}.jpg\n" for i in range(2)))
    (root / config).write_text(yaml.safe_dump(doc))
    assert auto_import(store, root, "p") == "yolo"
    assert store.ns.datasets("p") == ["train", "val"]
    assert item_count(store, "p") == 4 and object_count(store, "p") == 8


def cvat_voc(root: Path, with_xml: bool) -> Path:
    """CVAT Pascal VOC 1.1 / Segmentation mask 1.1 (docs.cvat.ai, 'Pascal VOC', 'Segmentation
    Mask'): labelmap.txt (`# label:color_rgb:parts:actions`, `name:r,g,b::`), ImageSets/
    {Main,Segmentation}/default.txt, RGB SegmentationClass in labelmap colours, and
    SegmentationObject with one colour per object."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "SegmentationObject").mkdir()
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\ncar:250,50,83::\n"
                                       "road:36,179,83::\n")
    (root / "JPEGImages" / "a.jpg").write_bytes(jpeg_bytes(40, 30))
    cls = np.zeros((30, 40, 3), np.uint8)
    cls[2:10, 2:12] = (250, 50, 83)
    cls[20:30, :] = (36, 179, 83)
    Image.fromarray(cls).save(root / "SegmentationClass" / "a.png")
    obj = np.zeros((30, 40, 3), np.uint8)
    obj[2:10, 2:12] = (128, 0, 0)  # VOC palette index 1
    obj[20:30, :] = (0, 128, 0)  # index 2
    Image.fromarray(obj).save(root / "SegmentationObject" / "a.png")
    sets = "Main" if with_xml else "Segmentation"
    (root / "ImageSets" / sets).mkdir(parents=True)
    (root / "ImageSets" / sets / "default.txt").write_text("a\n")
    if with_xml:
        (root / "Annotations").mkdir()
        objects = "".join(f"<object><name>{n}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>"
                          f"<ymax>{y1}</ymax></bndbox></object>" for n, x0, y0, x1, y1 in
                          (("car", 3, 3, 12, 10), ("road", 1, 21, 40, 30)))
        (root / "Annotations" / "a.xml").write_text(
            f"<annotation><filename>a.jpg</filename><size><width>40</width><height>30</height></size>"
            f"{objects}</annotation>")
    return root


@pytest.mark.parametrize("with_xml", [True, False], ids=["pascal-voc-1.1", "segmentation-mask-1.1"])
def test_cvat_voc_and_segmentation_masks(store: Store, tmp_path: Path, with_xml: bool) -> None:
    src = cvat_voc(tmp_path / "cvat", with_xml)
    assert auto_import(store, src, "p") == "voc"
    objs = objects_of(store, "p")["a.jpg"]
    assert [(c, g) for c, g, _b in objs] == [("car", "bitmap"), ("road", "bitmap")]
    assert objs[0][2] == (2, 2, 12, 10)


def test_fiftyone_voc(store: Store, tmp_path: Path) -> None:
    """FiftyOne VOCDetectionDataset (docs.voxel51.com): data/<image>, labels/<stem>.xml."""
    root = tmp_path / "fo-voc"
    (root / "data").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "data" / "a.jpg").write_bytes(jpeg_bytes(40, 30))
    (root / "labels" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>40</width><height>30</height><depth>3</depth></size>"
        "<object><name>cat</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>"
        "</object></annotation>")
    assert auto_import(store, root, "p") == "voc"
    assert object_count(store, "p") == 1


# -- no silent zero -----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["voc", "yolo", "coco", "images"])
def test_finding_nothing_is_an_error_naming_what_was_looked_for(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / "empty"
    (src / "VOCdevkit").mkdir(parents=True)
    (src / "notes.txt").write_text("nothing here\n")
    store = tmp_path / "store"
    run_cas(store, "init")
    line = assert_user_error(run_cas(store, "import", str(src), "--project", "p", "--format", fmt, check=False))
    assert "StopIteration" not in line and str(src) in line
    assert "found no" in line or "no " in line


def test_folder_of_several_voc_exports_is_one_project(store: Store, tmp_path: Path) -> None:
    """VOCdevkit/VOC2007 and VOCdevkit/VOC2012, found from the folder above: one dataset tree each."""
    from tests.converters.samples import voc_sample
    voc_sample(tmp_path / "VOCdevkit" / "VOC2007")
    voc_sample(tmp_path / "VOCdevkit" / "VOC2012")
    assert auto_import(store, tmp_path, "p") == "voc"
    assert item_count(store, "p") == 8
    assert {"VOCdevkit/VOC2007/train", "VOCdevkit/VOC2012/val"} <= set(store.ns.datasets("p"))


def test_folder_of_images_with_a_dataset_deep_inside_stays_images(tmp_path: Path) -> None:
    """Looking below happens only when nothing fits the folder itself: a photo folder that
    happens to hold a COCO export two levels down imports all its images, not that export."""
    from tests.converters.samples import coco_sample
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(jpeg_bytes(20, 10))
    coco_sample(tmp_path / "photos" / "old" / "coco")
    assert detect_format(tmp_path / "photos") == "images"
    assert detect_format(tmp_path / "photos" / "old") == "coco"
