"""`make interop`: our exports loaded by the heavy clients users train with (Ultralytics,
torchvision), too heavy for every test run (torch is several GB).

    python -m tests.interop_clients export DIR      # with cas's venv: the sample project, exported
    python tests/interop_clients.py check DIR       # with the clients' venv: load every export

`check` prints one line per client and exits 1 on the first mismatch.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path


def export(out: Path) -> None:
    from bench.datagen import make_sample_project
    from cas import Store
    from converters import coco, voc, yolo
    from converters.ingest import import_source
    from tests.converters.samples import objects_of

    store = Store.init(out / "store")
    import_source(store, make_sample_project(out / "sample"), "demo", "sly")
    counts = {"coco": coco.write(store, "demo", out / "coco"),
              "yolo": yolo.write(store, "demo", out / "yolo", task="segment"),
              "voc": voc.write(store, "demo", out / "voc")}
    counts["items"] = {d: store.ns.count_items("demo", d) for d in store.ns.datasets("demo")}
    counts["objects"] = sum(len(v) for v in objects_of(store, "demo").values())
    (out / "counts.json").write_text(json.dumps(counts))
    store.close()


def check(out: Path) -> None:
    counts = json.loads((out / "counts.json").read_text())
    items = counts["items"]
    os.chdir(tempfile.mkdtemp())  # Ultralytics resolves a relative `path` against the working folder

    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset
    data = check_det_dataset(str(out / "yolo" / "data.yaml"))
    seen = 0
    for split, expected in (("train", items["train"] + items["train/night"]), ("val", items["val"])):
        ds = YOLODataset(img_path=data[split], data=data, task="segment", imgsz=640, augment=False)
        instances = sum(len(label["cls"]) for label in ds.labels)
        assert len(ds.labels) == expected, (split, len(ds.labels), expected)
        seen += instances
    assert seen == counts["yolo"]["objects"], (seen, counts["yolo"]["objects"])
    print(f"ultralytics {sys.modules['ultralytics'].__version__}: check_det_dataset and YOLODataset(segment) "
          f"from another folder: {seen} instances of {counts['yolo']['images']} images")

    import torchvision
    from torchvision.datasets import CocoDetection, VOCDetection, VOCSegmentation, wrap_dataset_for_transforms_v2
    total = 0
    for dataset, expected in items.items():
        flat = dataset.replace("/", "_")
        coco_ds = wrap_dataset_for_transforms_v2(
            CocoDetection(str(out / "coco" / "images" / flat),
                          str(out / "coco" / "annotations" / f"instances_{flat}.json")),
            target_keys=["boxes", "labels", "masks"])
        assert len(coco_ds) == expected
        for image, target in coco_ds:
            if "boxes" not in target:  # an image without objects: only its image_id
                continue
            assert target["masks"].shape[0] == target["boxes"].shape[0] == target["labels"].shape[0]
            assert tuple(target["masks"].shape[1:]) == (image.height, image.width)
            total += target["boxes"].shape[0]
    assert total == counts["coco"]["objects"], (total, counts["coco"]["objects"])
    print(f"torchvision {torchvision.__version__}: CocoDetection + wrap_dataset_for_transforms_v2: {total} "
          "boxes, each with its mask")

    root = Path(tempfile.mkdtemp())
    (root / "VOCdevkit").mkdir()
    (root / "VOCdevkit" / "VOC2012").symlink_to(out / "voc")  # torchvision's fixed layout under root
    objects = 0
    for split in ("train", "val"):
        det = VOCDetection(str(root), year="2012", image_set=split)
        assert len(det) == items[split]
        for image, target in det:
            size = target["annotation"]["size"]
            assert (int(size["width"]), int(size["height"])) == image.size
            objects += len(target["annotation"]["object"])
        seg = VOCSegmentation(str(root), year="2012", image_set=split)
        for image, mask in seg:
            assert mask.size == image.size and mask.mode == "P"
    print(f"torchvision {torchvision.__version__}: VOCDetection and VOCSegmentation (train, val): {objects} objects")


if __name__ == "__main__":
    mode, folder = sys.argv[1], Path(sys.argv[2]).resolve()
    export(folder) if mode == "export" else check(folder)
