"""PUT count of a push: a project of small items (2-8 KB JPEGs of noise, each with its own
annotation) pushed to a local S3 endpoint (moto's server in its own process, counting the
requests it serves: bench/counting_s3.py), once with every blob its own object (as before
packs) and once with the small blobs in pack objects. Both pushes start from copies of the
same local store and go to two prefixes of one bucket.

    .venv/bin/python -m bench.s3_puts [--items 100000]

Goal: <= 1 PUT per 1,000 small items, plus trees and refs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.fuse_read import REPO
from bench.s3_read import BUCKET, client, start_s3

META = {"classes": [{"title": "box", "shape": "rectangle", "color": "#FF0000"}], "tags": [], "projectType": "images"}


def noise_jpeg(i: int) -> bytes:
    """A distinct JPEG of 2-8 KB (noise does not compress)."""
    import io

    from PIL import Image
    side = 26 + i % 25  # 26..50 px: ~2-8 KB
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buf, "JPEG", quality=90, subsampling=0)
    return buf.getvalue()


def annotation(i: int, side: int) -> dict[str, object]:
    x, y = i % (side - 2), i // 7 % (side - 2)
    return {"size": {"height": side, "width": side}, "tags": [], "description": f"item {i}",
            "objects": [{"classTitle": "box", "geometryType": "rectangle", "tags": [],
                         "points": {"exterior": [[x, y], [x + 1, y + 1]], "interior": []}}]}


def build_project(root: Path, items: int) -> tuple[int, int]:
    """The project `p` of `items` items in a new local store; (blobs, bytes) it holds."""
    from cas import Store
    from cas.ingest.session import ImportSession
    from cas.versions.transfer import count_local
    with Store.init(root) as store:
        with ImportSession(store, "p", meta=META, workers=2) as session:
            for i in range(items):
                session.add_item(f"d{i % 4}", f"{i:07d}.jpg", noise_jpeg(i), annotation(i, 26 + i % 25))
            session.commit()
        return count_local(store)


def counts(endpoint: str) -> dict[str, dict[str, int]]:
    with urllib.request.urlopen(f"{endpoint}/__counts__") as resp:
        return json.loads(resp.read())


def push(root: Path, endpoint: str, prefix: str, packs: bool) -> tuple[float, dict[str, int], int]:
    """Push `p` of the store at `root` to s3://BUCKET/prefix: (seconds, requests by method
    counted at the server, bytes the server received)."""
    from cas import Store
    from cas.config import S3Remote
    from cas.versions.sharing import push as share
    with Store(root) as store:
        store.config.s3 = S3Remote(BUCKET, prefix, endpoint)
        store.save_config()
        before = counts(endpoint)
        start = time.perf_counter()
        share(store, "p", packs=packs)
        seconds = time.perf_counter() - start
    after = counts(endpoint)
    requests = {m: n - before["requests"].get(m, 0) for m, n in after["requests"].items()}
    received = sum(after["bytes"].values()) - sum(before["bytes"].values())
    return seconds, {m: n for m, n in requests.items() if n}, received


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--pack-max", type=int, default=None,
                    help="blobs up to this size go in pack objects (default: PACK_MAX of cas.blobs.backends.packs)")
    ap.add_argument("--workdir", default=str(REPO / ".bench-tmp"))
    args = ap.parse_args()
    from cas.versions import transfer
    if args.pack_max is not None:
        transfer.PACK_MAX = args.pack_max
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="s3puts-", dir=args.workdir))
    server, endpoint = start_s3(work, [sys.executable, "-m", "bench.counting_s3"])
    try:
        client(endpoint).create_bucket(Bucket=BUCKET)
        start = time.perf_counter()
        blobs, size = build_project(work / "objects", args.items)
        print(f"built {args.items} items ({blobs} blobs, {size / 1e6:.1f} MB) in {time.perf_counter() - start:.1f} s",
              flush=True)
        shutil.copytree(work / "objects", work / "packs", symlinks=True)
        rows = [(name, *push(work / name, endpoint, name, packs=name == "packs")) for name in ("objects", "packs")]
        print(f"\npush of a {args.items}-item project ({blobs} blobs; packed: blobs up to {transfer.PACK_MAX} "
              "bytes), requests counted at the S3 server")
        print(f"{'push':10s} {'PUT':>8s} {'POST':>6s} {'GET':>6s} {'HEAD':>6s} {'MB in':>8s} {'seconds':>8s} "
              f"{'PUT per 1,000 items':>20s}")
        for name, seconds, requests, received in rows:
            puts = requests.get("PUT", 0)
            print(f"{name:10s} {puts:8d} {requests.get('POST', 0):6d} {requests.get('GET', 0):6d} "
                  f"{requests.get('HEAD', 0):6d} {received / 1e6:8.1f} {seconds:8.2f} {puts * 1000 / args.items:20.2f}")
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
