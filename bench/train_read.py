"""Training read benchmark: every item of one dataset read by worker processes as a PyTorch
DataLoader reads them (workers forked from a parent that has the dataset open, each
reading items by index, in batches), through `cas.open_dataset` side by side with the same
files read from local disk, in one run.

    .venv/bin/python -m bench.train_read [--items 5000] [--size 100000] [--workers 8]
        [--batch 32] [--rounds 5] [--workdir DIR] [--keep] [--json PATH]

The source is a Supervisely project (`img/` JPEGs of noise, `ann/` JSON with one box each)
that `cas import` takes in; the local contender reads an item as a plain dataset over
those files would: the image file's bytes and its annotation file's JSON. With `pil`, both
sides decode the image (Pillow open + load). Each pass starts its worker pool (as every
epoch of a DataLoader without persistent workers does) and ends when all items are read;
the store and the files are hot in the page cache for both (one untimed pass each first).
Rounds interleave the contenders; the table shows each one's median time, and the median
of the rounds' ratios: throughput of cas / throughput of the local files (higher is better;
target >= 0.9).
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from bench.datagen import noise_jpeg

REPO = Path(__file__).resolve().parent.parent
MB = 1_000_000
TARGET = 0.9
META = {"classes": [{"title": "thing", "shape": "rectangle", "color": "#E53935"}], "tags": [],
        "projectType": "images"}

# What the forked workers read: set in the parent before its pool forks, as a DataLoader's
# workers inherit its dataset.
_reader: Callable[[int], int] | None = None


def make_project(root: Path, items: int, size: int, seed: int = 0) -> int:
    """A Supervisely project of `items` noise JPEGs of about `size` bytes in dataset
    `train`, each with an annotation of one box. Returns the image bytes written."""
    rng = random.Random(seed)
    img_dir, ann_dir = root / "train" / "img", root / "train" / "ann"
    img_dir.mkdir(parents=True)
    ann_dir.mkdir(parents=True)
    (root / "meta.json").write_text(json.dumps(META))
    total = 0
    for i in range(items):
        data = noise_jpeg(rng, size)
        w, h = Image.open(io.BytesIO(data)).size
        name = f"img_{i:06d}.jpg"
        (img_dir / name).write_bytes(data)
        x, y = rng.randrange(w // 2), rng.randrange(h // 2)  # a box of its own: one annotation blob per item
        ann = {"description": "", "size": {"height": h, "width": w}, "tags": [],
               "objects": [{"classTitle": "thing", "geometryType": "rectangle", "tags": [],
                            "points": {"exterior": [[x, y], [x + w // 4, y + h // 4]], "interior": []}}]}
        (ann_dir / f"{name}.json").write_text(json.dumps(ann))
        total += len(data)
    return total


class LocalFiles:
    """The same items as plain files: `img/<name>` and `ann/<name>.json`."""

    def __init__(self, dataset_dir: Path, names: list[str], decode: str) -> None:
        self.paths = [(f"{dataset_dir}/img/{n}", f"{dataset_dir}/ann/{n}.json") for n in names]
        self.decode = decode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[object, dict]:
        img_path, ann_path = self.paths[i]
        with open(ann_path, "rb") as f:
            ann = json.loads(f.read())
        if self.decode == "pil":
            img = Image.open(img_path)
            img.load()
            return img, ann
        with open(img_path, "rb") as f:
            return f.read(), ann


def read_one(dataset: object) -> Callable[[int], int]:
    """Reads item i; returns its image bytes (pixels for a decoded image)."""
    def read(i: int) -> int:
        img, _ann = dataset[i]  # type: ignore[index]
        return len(img) if isinstance(img, bytes) else img.width * img.height * len(img.getbands())
    return read


def _read_batch(batch: range) -> int:
    assert _reader is not None
    return sum(_reader(i) for i in batch)


def epoch(dataset: object, n: int, workers: int, batch: int) -> float:
    """Seconds for `workers` forked processes to read every item, `batch` indexes a task."""
    global _reader
    _reader = read_one(dataset)
    _reader(0)  # the parent has read (and opened what it reads from) before the fork
    batches = [range(i, min(i + batch, n)) for i in range(0, n, batch)]
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for _ in pool.imap_unordered(_read_batch, batches):
            pass
    return time.perf_counter() - start


def measure(work: Path, args: argparse.Namespace) -> list[dict]:
    import cas
    src = work / "src"
    total = make_project(src, args.items, args.size)
    store = work / "store"
    for step in (["init"], ["import", str(src), "--project", "p"]):
        res = subprocess.run([sys.executable, "-m", "cas", "--store", str(store), "--quiet", *step],
                             capture_output=True, text=True, cwd=REPO)
        if res.returncode != 0:
            raise SystemExit(f"cas {' '.join(step)} failed:\n{res.stderr}")
    print(f"{args.items} items, {total / MB:.0f} MB of JPEG in {work}; {args.workers} forked workers, "
          f"batches of {args.batch}, medians of {args.rounds} rounds", flush=True)
    contenders = {}
    for decode in ("bytes", "pil"):
        ds = cas.open_dataset(store, "p/train", decode=decode)
        assert len(ds) == args.items
        contenders[(decode, "local")] = LocalFiles(src / "train", ds.names, decode)
        contenders[(decode, "cas")] = ds
    times: dict[tuple[str, str], list[float]] = {key: [] for key in contenders}
    for dataset in contenders.values():
        epoch(dataset, args.items, args.workers, args.batch)  # warm: every file in the page cache
    for rnd in range(args.rounds):
        for key, dataset in contenders.items():
            times[key].append(epoch(dataset, args.items, args.workers, args.batch))
        print(f"round {rnd + 1}: " + ", ".join(f"{d}/{who} {t[-1]:.2f} s" for (d, who), t in times.items()),
              flush=True)
    rows = []
    for decode, what in (("bytes", "image bytes + annotation JSON"), ("pil", "PIL image (open + load) + JSON")):
        local, mine = times[(decode, "local")], times[(decode, "cas")]
        for who, secs in (("local files", local), (f"cas open_dataset(decode={decode!r})", mine)):
            median = statistics.median(secs)
            rows.append({"case": f"{what}: {who}", "seconds": median, "items/s": args.items / median,
                         "MB/s": total / MB / median, "ratio": None})
        # the median of each round's ratio: the machine's speed drifts between rounds, less within one
        rows[-1]["ratio"] = statistics.median(a / b for a, b in zip(local, mine))
    return rows


def print_rows(rows: list[dict]) -> None:
    print(f"\n{'case':62s} {'s':>7s} {'items/s':>9s} {'MB/s':>7s}  throughput ratio (cas / local files)")
    for r in rows:
        ratio = "" if r["ratio"] is None else \
            f"{r['ratio']:.2f} x  target >= {TARGET}: {'met' if r['ratio'] >= TARGET else 'NOT met'}"
        print(f"{r['case']:62s} {r['seconds']:7.3f} {r['items/s']:9,.0f} {r['MB/s']:7.0f}  {ratio}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.train_read", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=5000, help="JPEGs in the dataset (default 5000)")
    ap.add_argument("--size", type=int, default=100_000, help="approx bytes per JPEG (default 100000)")
    ap.add_argument("--workers", type=int, default=8, help="worker processes (default 8)")
    ap.add_argument("--batch", type=int, default=32, help="items per worker task, as a batch (default 32)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the table shows medians (default 5)")
    ap.add_argument("--workdir", default=str(REPO / ".bench-tmp"))
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    args = ap.parse_args(argv)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="train-", dir=args.workdir))
    try:
        rows = measure(work, args)
        print_rows(rows)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
