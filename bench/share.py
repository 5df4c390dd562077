"""Sharing benchmark, against a local S3 endpoint (moto's server mode, its own process):

- snapshot of a 100,000-item project, then of the same project after 10 items changed
  (the second must cost <= 5% of the first: it follows the change, not the project);
- `cas push` of the project, then `cas clone` of it into a second store (trees only, no
  media), and the time until its first image is read through a mount of the clone.

    .venv/bin/python -m bench.share [--items 100000]

The project's items share 1,000 distinct images (a clone moves no media bytes either way,
and uploading 100,000 distinct objects to a Python S3 server would dominate the run).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from bench.fuse_read import REPO, cas, cas_mount, timed
from bench.s3_read import BUCKET, client, start_s3
from cas.ingest.session import ImportSession


def jpeg_bytes(width: int, height: int, color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "JPEG")
    return buf.getvalue()


def build_project(store_root: Path, endpoint: str, items: int) -> None:
    from cas import Store
    images = [jpeg_bytes(16 + i % 40, 16 + i // 40 % 25, (i % 256, i // 256, 7)) for i in range(1000)]
    with Store(store_root) as store:
        with ImportSession(store, "big", workers=4) as session:
            for i in range(items):
                session.add_item(f"part{i % 4}", f"item{i:07d}.jpg", images[i % len(images)])
            session.commit()


def change_items(store_root: Path, n: int) -> None:
    from cas import Store
    with Store(store_root) as store, ImportSession(store, "big", overwrite=True) as session:
        for k in range(n):  # spread over the project
            i = k * 9973 % 100_000
            session.add_item(f"part{i % 4}", f"item{i:07d}.jpg", jpeg_bytes(60, 60, (k, 200, 200)))
        session.commit()


def snapshot_seconds(store_root: Path, message: str) -> float:
    from cas import Store
    from cas.versions.snapshots import snapshot
    with Store(store_root) as store:
        start = time.perf_counter()
        snapshot(store, "big", message)
        return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--workdir", default=str(REPO / ".bench-tmp"))
    args = ap.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="share-", dir=args.workdir))
    server, endpoint = start_s3(work)
    rows = []
    try:
        client(endpoint).create_bucket(Bucket=BUCKET)
        a, b = work / "a", work / "b"
        cas(a, "init", "--s3", f"s3://{BUCKET}/team", "--endpoint-url", endpoint)
        build_project(a, endpoint, args.items)
        py = [sys.executable, "-m", "cas", "-q", "--store"]
        first = snapshot_seconds(a, "first")
        rows.append((f"snapshot of {args.items} items (first)", first, "in process (no CLI start-up)"))
        change_items(a, 10)
        second = snapshot_seconds(a, "10 changed")
        rows.append(("snapshot after 10 items changed", second, f"{second / first:.1%} of the first (target <= 5%)"))
        rows.append(("cas push big", timed([*py, str(a), "push", "big"]), "uploads the blobs and trees"))
        clone = timed([*py, str(b), "clone", f"s3://{BUCKET}/team", str(b), "--project", "big", "--endpoint-url",
                       endpoint])
        local_media = sum(1 for p in (b / "blobs").rglob("*") if p.is_file())
        rows.append((f"cas clone of the {args.items}-item project", clone, f"{local_media} media files moved"))
        (work / "mnt").mkdir()
        start = time.perf_counter()
        with cas_mount(b, work / "mnt"):
            data = (work / "mnt" / "big" / "part0" / "img" / "item0000000.jpg").read_bytes()
            first_read = time.perf_counter() - start
        rows.append(("mount of the clone + first image read", first_read, f"{len(data)} bytes, fetched from S3"))
    finally:
        server.terminate()
        server.wait(timeout=10)
        print(f"{'case':46s} {'seconds':>8s}  note")
        for case, seconds, note in rows:
            print(f"{case:46s} {seconds:8.2f}  {note}")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(REPO))
    main()
