"""Format conversion benchmark: a COCO set of small images with many objects (polygons and
RLE masks mixed) imported into cas, exported to every writable format (COCO, YOLO
segment, VOC, KITTI, CVAT, Label Studio, class folders), and each export imported back
with `--format auto` (the layout found as a user's tool would leave it); beside them
`cp -r` of the images (what any export must at least write) and, when the Supervisely
SDK is installed (`.venv-sly`, made by `make test`), the SDK's own COCO -> Supervisely
conversion of the same input, in one run.

    .venv/bin/python -m bench.convert [--images 10000] [--objects-per-image 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench.fuse_read import REPO, cas, timed

SLY_PYTHON = REPO / ".venv-sly" / "bin" / "python"


def make_coco(root: Path, images: int, per_image: int) -> int:
    """`images` distinct 96x72 JPEGs in images/train, half the objects polygons, half
    compressed RLE masks (pycocotools). Returns the number of objects."""
    from pycocotools import mask as mask_utils
    w, h = 96, 72
    (root / "images" / "train").mkdir(parents=True)
    (root / "annotations").mkdir()
    rles = []
    for k in range(8):
        m = np.zeros((h, w), np.uint8)
        m[5 + k * 3:25 + k * 3, 10 + k * 5:40 + k * 5] = 1
        rle = mask_utils.encode(np.asfortranarray(m))
        rles.append(({"size": [h, w], "counts": rle["counts"].decode()}, [10 + k * 5, 5 + k * 3, 30, 20]))
    infos, anns = [], []
    for i in range(images):
        name = f"{i:012d}.jpg"
        Image.new("RGB", (w, h), (i % 251, (i // 251) % 251, 90)).save(root / "images" / "train" / name, quality=80)
        infos.append({"id": i + 1, "file_name": name, "width": w, "height": h})
        for j in range(per_image):
            if j % 2:
                seg, box = rles[(i + j) % len(rles)]
            else:
                x, y = 5 + j * 3, 5 + j * 2
                seg, box = [[x, y, x + 30, y, x + 30, y + 20, x + 10, y + 25]], [x, y, 30, 25]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1 + j % 5, "bbox": box,
                         "area": 600, "iscrowd": 0, "segmentation": seg})
    names = ["car", "person", "bike", "dog", "sign"]
    cats = [{"id": c + 1, "name": n, "supercategory": "thing"} for c, n in enumerate(names)]
    (root / "annotations" / "instances_train.json").write_text(json.dumps(
        {"images": infos, "annotations": anns, "categories": cats}))
    return len(anns)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--objects-per-image", type=int, default=10)
    ap.add_argument("--workdir", default=str(REPO / ".bench-tmp"))
    args = ap.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="convert-", dir=args.workdir))
    try:
        objects = make_coco(work / "coco", args.images, args.objects_per_image)
        subprocess.run(["sync"])
        store = work / "store"
        cas(store, "init")
        rows = [("cas import --format coco", timed([sys.executable, "-m", "cas", "--store", str(store), "-q", "import",
                                                    str(work / "coco"), "--project", "bench", "--format", "coco"]))]
        rows.append(("cp -r of the images (reference)", timed(["cp", "-r", str(work / "coco" / "images"),
                                                               str(work / "images-copy")])))
        for fmt, extra in (("coco", []), ("yolo", ["--task", "segment"]), ("voc", []), ("kitti", []), ("cvat", []),
                           ("labelstudio", []), ("imagenet", [])):
            out = work / ("out" if fmt == "coco" else f"out-{fmt}")
            rows.append((f"cas export --format {fmt}", timed([sys.executable, "-m", "cas", "--store", str(store), "-q",
                                                              "export", "bench", str(out), "--format", fmt, *extra])))
            rows.append((f"cas import of the {fmt} export (auto)", timed([
                sys.executable, "-m", "cas", "--store", str(store), "-q",
                "import", str(out), "--project", f"back-{fmt}"])))
        exported = json.loads((work / "out" / "annotations" / "instances_train.json").read_text())
        if SLY_PYTHON.exists():
            rows.append(("Supervisely SDK: COCO -> Supervisely project",
                         timed([str(SLY_PYTHON), str(REPO / "bench" / "sly_coco_import.py"), str(work / "coco"),
                                str(work / "sly")])))
        print(f"{args.images} images, {objects} objects (polygons and RLE); exported: "
              f"{len(exported['images'])} images, {len(exported['annotations'])} objects")
        print(f"{'case':46s} {'s':>8s} {'items/s':>9s} {'objects/s':>10s}")
        for case, seconds in rows:
            print(f"{case:46s} {seconds:8.2f} {args.images / seconds:9.0f} {objects / seconds:10.0f}")
        targets = {"cas import --format coco": 20.0, "cas export --format coco": 10.0}
        for case, seconds in rows:
            if case in targets:
                print(f"target {case}: <= {targets[case]:.0f} s: {'met' if seconds <= targets[case] else 'missed'}")
        by_case = dict(rows)
        for fmt in ("coco", "yolo", "voc", "kitti", "cvat", "labelstudio", "imagenet"):
            ratio = by_case[f"cas export --format {fmt}"] / by_case["cp -r of the images (reference)"]
            print(f"export {fmt} / cp -r of the images: {ratio:.1f} x")
        sdk = by_case.get("Supervisely SDK: COCO -> Supervisely project")
        if sdk is not None:
            print(f"SDK / cas import: {sdk / rows[0][1]:.1f} x (target >= 3)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
