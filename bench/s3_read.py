"""S3 and link benchmark: reads through the mount of an S3-backed store side by side with
boto3 `get_object` straight from the same local S3 endpoint (moto's server mode, in its
own process), reads from the local cache beside reads of local blobs, `cp -r` of a pushed
(packed) dataset through the mount of a cold clone with the GETs it took counted at the
server, and an import of a long URL list by link, in one run.

    .venv/bin/python -m bench.s3_read [--files 2000] [--big-mib 256] [--packed 2000] [--links 100000]

Ratios are throughputs (higher is better): cas MB/s / reference MB/s. Every mount read
is on a fresh mount, so nothing comes from the FUSE page cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.datagen import make_dedup_set, write_huge_jpeg
from bench.fuse_read import REPO, cas, cas_mount, file_list, print_rows, row, unmount
from bench.fuse_read import sh as _sh

BUCKET = "cas-bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_s3(work: Path, server: list[str] | None = None) -> tuple[subprocess.Popen, str]:
    """An S3 server on a free loopback port, started and listening: moto_server, or the
    `server` command given (its port is appended); returns (process, endpoint URL)."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = free_port()
    log = open(work / "moto.log", "ab")
    argv = [*server, str(port)] if server else \
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(argv, stdout=log, stderr=log, env={**os.environ, "PYTHONPATH": str(REPO)})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the S3 server did not start: see {work / 'moto.log'}") from None
            time.sleep(0.1)
    return proc, url


def client(endpoint: str):
    import boto3
    return boto3.client("s3", endpoint_url=endpoint)


def boto3_reads(s3, keys: list[str]) -> float:
    """Serial get_object of every key, body read to the end (what a user script would do)."""
    _sh("sync")
    t = time.perf_counter()
    for key in keys:
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
        while body.read(1 << 20):
            pass
    return time.perf_counter() - t


def sh(cmd: str) -> float:
    """Time a shell command, after `sync`: dirty pages left by an earlier case (the cache
    writer's, an import's) are not written back on the next case's time."""
    _sh("sync")
    return _sh(cmd)


def warm_up(mnt: Path, cas_name: str) -> None:
    """Read one annotation (also an S3 blob) so the daemon has loaded boto3 (about 1 s, once
    per daemon; the boto3 contender's client is made before its timing too)."""
    item = Path(cas_name)
    (mnt / item.parent.parent / "ann" / f"{item.name}.json").read_bytes()


def small_files(work: Path, n: int, endpoint: str, rows: list) -> None:
    src = work / "small"
    make_dedup_set(src, distinct=n, copies=0)
    names = sorted(str(p.relative_to(src)) for p in src.rglob("*.jpg"))
    total = sum((src / name).stat().st_size for name in names)
    s3 = client(endpoint)
    for name in names:  # the same bytes, for boto3 to read straight from the server
        s3.upload_file(str(src / name), BUCKET, f"direct/{name}")
    s3_store, local_store = work / "store_s3", work / "store_local"
    cas(s3_store, "init", "--s3", f"s3://{BUCKET}/small", "--endpoint-url", endpoint)
    cas(s3_store, "import", str(src), "--project", "p")
    cas(local_store, "init")
    cas(local_store, "import", str(src), "--project", "p")
    cas_names = [f"p/{Path(name).parent}/img/{Path(name).name}" for name in names]
    direct = "boto3 get_object, serial"
    row(rows, f"{n} x 100 KB: {direct}", boto3_reads(s3, [f"direct/{name}" for name in names]), total)
    with cas_mount(s3_store, work / "mnt"):
        lst = file_list(work / "c.lst", work / "mnt", cas_names)
        warm_up(work / "mnt", cas_names[0])
        row(rows, "  cas mount of the S3 store, cat, first read", sh(f"xargs -0 -a {lst} cat > /dev/null"), total,
            f"{n} x 100 KB: {direct}", "target >= 0.7")
    with cas_mount(local_store, work / "mnt"):
        lst = file_list(work / "c.lst", work / "mnt", cas_names)
        row(rows, "  cas mount of a local store, cat", sh(f"xargs -0 -a {lst} cat > /dev/null"), total)
    with cas_mount(s3_store, work / "mnt"):
        lst = file_list(work / "c.lst", work / "mnt", cas_names)
        row(rows, "  cas mount of the S3 store, cat, from the cache", sh(f"xargs -0 -a {lst} cat > /dev/null"),
            total, "  cas mount of a local store, cat", "target >= 0.9")
    shutil.rmtree(src)


def big_file(work: Path, mib: int, endpoint: str, rows: list) -> None:
    src = work / "big" / "d"
    size = write_huge_jpeg(src / "huge.jpg", mib)
    s3 = client(endpoint)
    s3.upload_file(str(src / "huge.jpg"), BUCKET, "direct/huge.jpg")
    s3_store, local_store = work / "store_s3_big", work / "store_local_big"
    cas(s3_store, "init", "--s3", f"s3://{BUCKET}/big", "--endpoint-url", endpoint)
    cas(s3_store, "import", str(work / "big"), "--project", "p")
    small_cache = work / "store_s3_small_cache"  # same bucket and prefix: reads the same objects
    cas(small_cache, "init", "--s3", f"s3://{BUCKET}/big", "--endpoint-url", endpoint, "--cache-size", f"{mib // 2}M")
    cas(small_cache, "import", str(work / "big"), "--project", "p")
    cas(local_store, "init")
    cas(local_store, "import", str(work / "big"), "--project", "p")
    direct = f"{mib} MiB blob: boto3 get_object"
    row(rows, direct, boto3_reads(s3, ["direct/huge.jpg"]), size)
    dd = "dd if={}/p/d/img/huge.jpg of=/dev/null bs=1M status=none"
    with cas_mount(s3_store, work / "mnt"):
        warm_up(work / "mnt", "p/d/img/huge.jpg")
        row(rows, "  cas mount of the S3 store, dd bs=1M, first read", sh(dd.format(work / "mnt")), size, direct,
            "target >= 0.8")
    with cas_mount(small_cache, work / "mnt"):
        warm_up(work / "mnt", "p/d/img/huge.jpg")
        row(rows, "  same, blob larger than the cache (not cached)", sh(dd.format(work / "mnt")), size, direct)
    with cas_mount(local_store, work / "mnt"):
        row(rows, "  cas mount of a local store, dd bs=1M", sh(dd.format(work / "mnt")), size)
    with cas_mount(s3_store, work / "mnt"):
        row(rows, "  cas mount of the S3 store, dd bs=1M, from the cache", sh(dd.format(work / "mnt")), size,
            "  cas mount of a local store, dd bs=1M", "target >= 0.9")
    shutil.rmtree(work / "big")


def packed_walk(work: Path, n: int, rows: list) -> None:
    """`cp -r` of a dataset pushed into S3 pack objects, through the mount of a fresh clone
    (cache cold), against a server that counts the GETs it serves."""
    from urllib.request import urlopen
    server, endpoint = start_s3(work, [sys.executable, "-m", "bench.counting_s3"])
    try:
        client(endpoint).create_bucket(Bucket=BUCKET)
        src = work / "packed"
        make_dedup_set(src, distinct=n, copies=0)
        writer, reader = work / "store_packed_writer", work / "store_packed_reader"
        url = f"s3://{BUCKET}/packed"
        cas(writer, "init")
        cas(writer, "import", str(src), "--project", "p")
        cas(writer, "init", "--s3", url, "--endpoint-url", endpoint)
        cas(writer, "push", "p")
        cas(reader, "clone", url, str(reader), "--endpoint-url", endpoint)
        shutil.rmtree(src)

        def gets() -> int:
            with urlopen(f"{endpoint}/__counts__") as resp:
                return int(json.load(resp)["requests"].get("GET", 0))
        with cas_mount(reader, work / "mnt"):
            warm_up(work / "mnt", "p/set_b/img/" + sorted(os.listdir(work / "mnt" / "p" / "set_b" / "img"))[0])
            before = gets()
            seconds = sh(f"cp -r {work / 'mnt' / 'p' / 'set_a'} {work / 'copied'}")
            took = gets() - before
        files = [p for p in (work / "copied").rglob("*") if p.is_file()]
        row(rows, "cp -r of a pushed dataset (packed), mount of a cold clone", seconds,
            sum(p.stat().st_size for p in files), note=f"{len(files)} files, {took} GETs")
        shutil.rmtree(work / "copied")
    finally:
        server.terminate()
        server.wait(timeout=10)


def link_import(work: Path, n: int, rows: list) -> None:
    lst = work / "urls.txt"
    with open(lst, "w") as f:
        for i in range(n):
            f.write(f"https://images.example.com/coco/train2017/{i:012d}.jpg\n")
    store = work / "store_links"
    cas(store, "init")
    seconds = sh(f"{sys.executable} -m cas --store {store} -q import {lst} --project web --format links --no-head")
    stats = json.loads(cas(store, "stats", "--json"))
    rows.append({"case": f"import of {n} URLs by link, --no-head", "seconds": seconds, "MB/s": None, "ref": None,
                 "note": f"{stats['items']} items, {n / seconds:,.0f} items/s (target <= 10 s)"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--big-mib", type=int, default=256)
    ap.add_argument("--packed", type=int, default=2000, help="files of the pushed dataset (half of them copied)")
    ap.add_argument("--links", type=int, default=100_000)
    ap.add_argument("--workdir", default=str(REPO / ".bench-tmp"))
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="s3-", dir=args.workdir))
    rows: list = []
    server, endpoint = start_s3(work)
    try:
        client(endpoint).create_bucket(Bucket=BUCKET)
        if args.files:
            small_files(work, args.files, endpoint, rows)
        if args.big_mib:
            big_file(work, args.big_mib, endpoint, rows)
        if args.packed:
            packed_walk(work, args.packed, rows)
        if args.links:
            link_import(work, args.links, rows)
    finally:
        unmount(work / "mnt")
        server.terminate()
        server.wait(timeout=10)
        print_rows(rows, throughput=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
