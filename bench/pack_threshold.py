"""Where packing stops paying: import, read and gc-rewrite cost of blobs of one size, loose vs packed.

    .venv/bin/python -m bench.pack_threshold [--sizes 256K,1M,2M,4M,8M] [--total-mb 256] [--repeat 3] [--workdir DIR]

For each size, TOTAL bytes of distinct JPEG-headed files of that size are imported twice into fresh
stores, once with every blob loose (a file each) and once with every blob packed; then every blob is
read back with `Store.read_bytes`, and gc's pack rewrite is timed on a pack with half its entries dead
(its cost per byte freed; a loose blob is freed by one unlink). Source and store share a file system;
the source is hot in page cache, every import ends with its sync.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

import cas.ingest.prepare as prepare
from cas.blobs.repack import Rewrite, compact_packs, compaction_plan
from cas.ingest.session import ImportSession
from cas.store import Store

MB = 1_000_000


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def make_files(folder: Path, size: int, count: int) -> None:
    """`count` distinct files of `size` bytes: a small JPEG's header, random bulk, end-of-image."""
    folder.mkdir(parents=True)
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 20, 30)).save(buf, "JPEG")
    head = buf.getvalue()[:-2]
    for i in range(count):
        (folder / f"f{i:05d}.jpg").write_bytes(head + os.urandom(size - len(head) - 2) + b"\xff\xd9")


def run_import(root: Path, src: Path, pack_max: int) -> tuple[float, Store]:
    shutil.rmtree(root, ignore_errors=True)
    store = Store.init(root)
    prepare.PACK_MAX = pack_max  # the threshold the preparer reads
    t0 = time.perf_counter()
    with ImportSession(store, "p", stat_cache=False) as session:
        for entry in sorted(os.scandir(src), key=lambda e: e.name):
            session.add_item("d", entry.name, entry.path)
        session.commit()
    return time.perf_counter() - t0, store


def read_all(store: Store) -> float:
    ids = [rec.media for _key, rec in store.ns.items("p", "d")]
    t0 = time.perf_counter()
    for blob_id in ids:
        store.read_bytes(blob_id)
    return time.perf_counter() - t0


def rewrite_cost(store: Store) -> tuple[float, int]:
    """Seconds and bytes freed by rewriting the packs with every other media blob counted dead."""
    ids = [bytes(rec.media) for _key, rec in store.ns.items("p", "d")]
    unused, rewrites = compaction_plan(store, set(ids[::2]))
    t0 = time.perf_counter()
    _n, freed = compact_packs(store, (unused, [Rewrite(*r) for r in rewrites]))
    return time.perf_counter() - t0, freed


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.pack_threshold", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="256K,1M,2M,4M,8M")
    p.add_argument("--total-mb", type=int, default=256)
    p.add_argument("--repeat", type=int, default=3, help="runs per size; the table shows the best")
    p.add_argument("--workdir")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="packsize-", dir=args.workdir))
    original = prepare.PACK_MAX
    print(f"{'size':>6} | {'files':>5} | import loose s | import packed s | read loose MB/s | "
          f"read packed MB/s | gc rewrite MB/s freed")
    try:
        for text in args.sizes.split(","):
            size = parse_size(text)
            count = max(16, args.total_mb * MB // size)
            src = work / f"src-{text}"
            make_files(src, size, count)
            os.sync()
            runs = []
            for _ in range(args.repeat):  # alternated, the best of each: the machine is shared
                loose_s, loose = run_import(work / "loose", src, 0)
                loose_read = read_all(loose)
                loose.close()
                packed_s, packed = run_import(work / "packed", src, size)
                packed_read = read_all(packed)
                gc_s, freed = rewrite_cost(packed)
                packed.close()
                runs.append((loose_s, packed_s, loose_read, packed_read, gc_s))
            loose_s, packed_s, loose_read, packed_read, gc_s = (min(column) for column in zip(*runs))
            total = size * count
            print(f"{text:>6} | {count:>5} | {loose_s:14.2f} | {packed_s:15.2f} | {total / MB / loose_read:15.0f} | "
                  f"{total / MB / packed_read:16.0f} | {freed / MB / gc_s if gc_s else 0:8.0f}", flush=True)
            shutil.rmtree(src)
    finally:
        prepare.PACK_MAX = original
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
