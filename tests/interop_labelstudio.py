"""`make interop`, Label Studio's side: label-studio-sdk (500 MB with its dependencies,
too heavy for every test run) writes a Label Studio export from our COCO export, and reads
our Label Studio export back.

    python -m tests.interop_labelstudio export DIR   # with cas's venv: the sample, as COCO and as Label Studio
    python tests/interop_labelstudio.py peer DIR     # with the SDK's venv: its converters on both
    python -m tests.interop_labelstudio check DIR    # with cas's venv: import what the SDK wrote, compare

Each step prints one line; `check` exits 1 on a mismatch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def export(out: Path) -> None:
    from bench.datagen import make_sample_project
    from cas import Store
    from converters import coco, labelstudio
    from converters.ingest import import_source

    with Store.init(out / "store") as store:
        import_source(store, make_sample_project(out / "sample"), "demo", "sly")
        counts = {"coco": coco.write(store, "demo", out / "coco"),
                  "labelstudio": labelstudio.write(store, "demo", out / "labelstudio")}
    (out / "counts.json").write_text(json.dumps(counts))
    print(f"export: coco {counts['coco']['objects']} objects, label studio {counts['labelstudio']['objects']}")


def peer(out: Path) -> None:
    """In the SDK's venv: COCO -> Label Studio by its importer; our Label Studio export -> COCO
    by its Converter, and every brush mask decoded by its brush.decode_rle."""
    import numpy as np
    from label_studio_sdk.converter import brush
    from label_studio_sdk.converter.imports.coco import convert_coco_to_ls

    peer_dir = out / "peer"
    peer_dir.mkdir(exist_ok=True)
    dropped = 0
    for ann in sorted((out / "coco" / "annotations").glob("instances_*.json")):
        split = ann.stem.removeprefix("instances_")
        doc = json.loads(ann.read_text())
        kept = [a for a in doc["annotations"] if not isinstance(a.get("segmentation"), dict)]
        dropped += len(doc["annotations"]) - len(kept)  # its importer reads polygons only, no RLE
        (peer_dir / f"{split}.coco.json").write_text(json.dumps({**doc, "annotations": kept}))
        convert_coco_to_ls(str(peer_dir / f"{split}.coco.json"), str(peer_dir / f"{split}.json"),
                           image_root_url=f"/data/local-files/?d=images/{split}/")
        (peer_dir / f"{split}.coco.json").unlink()
    (out / "peer-dropped.json").write_text(json.dumps(dropped))
    tasks = json.loads((out / "labelstudio" / "label_studio.json").read_text())
    masks = results = 0
    for task in tasks:
        for result in task["annotations"][0]["result"]:
            results += 1
            if result["type"] == "brushlabels":
                w, h = result["original_width"], result["original_height"]
                rgba = np.reshape(brush.decode_rle(result["value"]["rle"]), [h, w, 4])
                assert rgba[:, :, 3].any(), f"task {task['id']}: an empty brush"
                masks += 1
    print(json.dumps({"tasks": len(tasks), "results": results, "masks": masks}))


def check(out: Path) -> None:
    from cas import Store
    from converters.ingest import detect_format, import_source

    peer_file = out / "peer"
    for image_dir in (out / "coco" / "images").iterdir():
        (peer_file / "images" / image_dir.name).mkdir(parents=True, exist_ok=True)
        for image in image_dir.iterdir():
            target = peer_file / "images" / image_dir.name / image.name
            if not target.exists():
                target.symlink_to(image)
    counts = json.loads((out / "counts.json").read_text())
    with Store.init(out / "check-store") as store:
        assert detect_format(peer_file) == "labelstudio", detect_format(peer_file)
        import_source(store, peer_file, "peer", "labelstudio", follow_symlinks=True)
        items = sum(store.ns.count_items("peer", d) for d in store.ns.datasets("peer"))
        objects = sum(len(store.read_json(item.ann, n).get("objects", [])) for d in store.ns.datasets("peer")
                      for n, item in store.ns.items("peer", d))
    print(f"label-studio-sdk: its COCO -> Label Studio export imported: {items} items, {objects} objects "
          f"(our COCO export had {counts['coco']['images']} images, {counts['coco']['objects']} objects)")
    dropped = json.loads((out / "peer-dropped.json").read_text())
    print(f"  ({dropped} RLE masks left out: the SDK's COCO importer reads polygons only)")
    if items != counts["coco"]["images"] or objects < counts["coco"]["objects"] - dropped:
        sys.exit(1)


if __name__ == "__main__":
    mode, folder = sys.argv[1], Path(sys.argv[2]).resolve()
    {"export": export, "peer": peer, "check": check}[mode](folder)
