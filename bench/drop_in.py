"""Drop benchmark: a plain folder of images and a COCO export copied into the cas mount
(`cp -r`, imported whole once it settles) against the same copy into a do-nothing
passthrough on the same binding, and against `cas import` of the source, in one run.

    .venv/bin/python -m bench.drop_in [--distinct N] [--copies N] [--rounds 3] [--workdir DIR] [--keep]

The source is bench.datagen's dedup set (default 5,000 distinct + 2,500 byte-identical 100 KB
noise JPEGs), laid out twice: `photos/<every image>` (format images) and a COCO export,
`coco/images/train/<every image>` + `coco/annotations/instances_train.json` (one box per
image). Each round runs, for each layout, in this order, each into a fresh store / mount:

  passthrough  bench.passthrough --writable over an empty folder, timed `cp -r SRC MNT/x && sync`
  drop copy    `cas mount --settle 3600`, timed `cp -r SRC MNT/x && sync` (the files staged)
  drop import  the same mount, timed `cas mount-status MNT --wait` (the import of the staged folder)
  cas import   timed `cas import SRC --project x` into a fresh store

Targets (issue 26): drop copy <= 1.1 x passthrough; drop import <= 1.1 x cas import; copy +
import <= 2.5 x cas import. Every timed run starts with `sync` and the source read once
(untimed). Checks (untimed): the project has every image. Medians over rounds; ratios are
medians of per-round ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.copy_in import Failed, cas, fresh_store, run, sh
from bench.datagen import make_dedup_set
from bench.dedup import CACHE_NOTE, MB, prepare
from bench.fuse_read import passthrough as passthrough_mount
from fusefs.mount import UNMOUNT_TIMEOUT, detach

REPO = Path(__file__).resolve().parent.parent
PROJECT = "x"
KEYS = ("passthrough", "drop copy", "drop import", "cas import")
TARGETS = {("drop copy", "passthrough"): 1.1, ("drop import", "cas import"): 1.1, ("end to end", "cas import"): 2.5}


def build_sources(work: Path, distinct: int, copies: int) -> tuple[dict[str, Path], int, int]:
    """photos/ and coco/ with the same images (hard links: one copy on disk)."""
    gen = work / "gen"
    make_dedup_set(gen, distinct, copies)
    photos, coco_img = work / "src/photos", work / "src/coco/images/train"
    photos.mkdir(parents=True)
    coco_img.mkdir(parents=True)
    images, anns = [], []
    for i, path in enumerate(sorted(gen.rglob("*.jpg"))):
        path.rename(photos / path.name)
        os.link(photos / path.name, coco_img / path.name)
        images.append({"id": i + 1, "file_name": path.name, "width": 256, "height": 256})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [10, 10, 50, 40], "area": 2000,
                     "iscrowd": 0})
    (work / "src/coco/annotations").mkdir()
    (work / "src/coco/annotations/instances_train.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}))
    shutil.rmtree(gen)
    nbytes = sum(p.stat().st_size for p in photos.iterdir())
    return {"photos": work / "src/photos", "coco": work / "src/coco"}, len(images), nbytes


def _fix_sizes(coco: Path) -> None:
    """The COCO file's width and height, read from the images (noise JPEGs vary)."""
    from PIL import Image
    path = coco / "annotations/instances_train.json"
    data = json.loads(path.read_text())
    for image in data["images"]:
        with Image.open(coco / "images/train" / image["file_name"]) as im:
            image["width"], image["height"] = im.size
    path.write_text(json.dumps(data))


def check(store: Path, items: int) -> None:
    stats = json.loads(run(cas(store, "stats", "--json"))[1])
    if stats.get("items") != items:
        raise Failed(f"check failed: {stats.get('items')} items stored, expected {items}")


@contextmanager
def cas_mount(store: Path, mnt: Path) -> Iterator[Path]:
    mnt.mkdir(parents=True, exist_ok=True)
    run(cas(store, "mount", str(mnt), "--settle", "3600"), timeout=120)
    try:
        yield mnt
    finally:
        detach(str(mnt), wait=UNMOUNT_TIMEOUT)


def one_round(work: Path, src: Path, items: int) -> dict[str, float]:
    out: dict[str, float] = {}
    back, pt = work / "pt_back", work / "pt_mnt"
    shutil.rmtree(back, ignore_errors=True)
    back.mkdir()
    with passthrough_mount(back, pt, writable=True):
        prepare(src)
        out["passthrough"] = run(sh('cp -r "$1" "$2" && sync', src, pt / PROJECT))[0]
    shutil.rmtree(back, ignore_errors=True)
    store = fresh_store(work / "store")
    with cas_mount(store, work / "mnt") as mnt:
        prepare(src)
        out["drop copy"] = run(sh('cp -r "$1" "$2" && sync', src, mnt / PROJECT))[0]
        out["drop import"] = run([sys.executable, "-m", "cas", "mount-status", str(mnt), "--wait"])[0]
    check(store, items)
    store = fresh_store(work / "store")
    prepare(src)
    out["cas import"] = run(cas(store, "import", str(src), "--project", PROJECT))[0]
    check(store, items)
    shutil.rmtree(work / "store", ignore_errors=True)
    return out


def report(name: str, rounds: list[dict[str, float]], items: int, nbytes: int) -> None:
    for r in rounds:
        r["end to end"] = r["drop copy"] + r["drop import"]
    print(f"\n{name}: {items:,} images, {nbytes / MB:.1f} MB")
    print(f"{'contender':<14} | {'median s':>8} | per round s")
    for key in (*KEYS, "end to end"):
        times = [r[key] for r in rounds]
        print(f"{key:<14} | {statistics.median(times):8.2f} | {' '.join(f'{t:.2f}' for t in times)}")
    for (key, ref), target in TARGETS.items():
        ratio = statistics.median(r[key] / r[ref] for r in rounds)
        print(f"{key} / {ref}: {ratio:.2f} (target <= {target}: {'MET' if ratio <= target else 'MISSED'})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.drop_in", description=__doc__.split("\n")[0])
    p.add_argument("--distinct", type=int, default=5000)
    p.add_argument("--copies", type=int, default=2500)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workdir", help="parent dir of the run (default REPO/.bench-tmp)")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)
    base = Path(args.workdir).resolve() if args.workdir else REPO / ".bench-tmp"
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dropin-", dir=base))
    try:
        t0 = time.perf_counter()
        sources, items, nbytes = build_sources(work, args.distinct, args.copies)
        _fix_sizes(sources["coco"])
        print(f"sources in {work / 'src'}: photos/ and coco/, {items:,} images each "
              f"(generated in {time.perf_counter() - t0:.1f} s; MB = 10^6 bytes)")
        print(CACHE_NOTE, flush=True)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in sources}
        for rnd in range(1, args.rounds + 1):
            for name, src in sources.items():  # interleaved: noise hits every contender alike
                got = one_round(work, src, items)
                results[name].append(got)
                print(f"round {rnd} {name}: " + ", ".join(f"{k} {v:.2f} s" for k, v in got.items()), flush=True)
        for name, rounds in results.items():
            report(name, rounds, items, nbytes)
        return 0
    except Failed as e:
        print(f"\nERROR: {e}", file=sys.stderr)
        return 1
    finally:
        if not args.keep and not os.path.ismount(work / "mnt"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
