"""Streaming-for-training benchmark: one PyTorch DataLoader pass (8 workers, PIL decode to
RGB, a trivial transform) over the same JPEGs held in the same local S3 server (moto's
server mode, in its own process), read three ways, in one run:

- cas: a store made with `cas init --s3`, imported and pushed, then read by
  `cas.open_dataset` on a fresh `cas clone` of it (cache cold: nothing of it on this disk);
- WebDataset: tar shards in the bucket, streamed by `webdataset.WebDataset` over presigned
  HTTP URLs (its curl reader; shards split between the workers);
- LitData: `litdata.optimize`'s chunks in the bucket, read by `litdata.StreamingDataset`
  (its boto3 client pointed at the server by `storage_options={"endpoint_url": ...}`)
  through `StreamingDataLoader`, with an empty cache directory.

    .venv-interop/bin/python -m bench.train_s3 [--items 20000] [--workers 8] [--batch 64]

(`make bench-train` makes that venv: torch and torchvision, cas, moto, webdataset, litdata.)

Every contender hands the worker the JPEG's bytes and the annotation; the same function
decodes the JPEG with PIL (`convert("RGB")`), makes a uint8 tensor of it and counts the
annotation's objects. Each pass is checked to have read the same items: the count, the sum
of the JPEG sizes, the sum of their CRC-32s and the count of objects. The ratio is the
throughput of cas over that of the faster peer (higher is better; target >= 1).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import multiprocessing
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.datagen import _scene
from bench.s3_read import client, start_s3

REPO = Path(__file__).resolve().parent.parent
BUCKET = "cas-train"
MB = 1_000_000
TARGET = 1.0
META = {"classes": [{"title": t, "shape": s, "color": "#E53935"} for t, s in (
    ("building", "polygon"), ("road", "polygon"), ("lane", "line"), ("tree", "bitmap"),
    ("traffic_light", "point"), ("car", "rectangle"), ("person", "graph"))],
    "tags": [{"name": "confidence", "value_type": "any_number", "color": "#FFFFFF"},
             {"name": "occluded", "value_type": "none", "color": "#000000"}],
    "projectType": "images"}
SIDE = 256


def _image(i: int) -> tuple[bytes, dict]:
    """Item i: a 256x256 street scene with sensor noise, as JPEG (about 20-60 KB), and its
    Supervisely annotation."""
    import numpy as np
    from PIL import Image
    rng = random.Random(i)
    im, objs = _scene(rng, SIDE, SIDE, rng.random() < 0.3)
    pixels = np.asarray(im, dtype=np.float32)
    pixels += np.random.default_rng(i).normal(0, rng.uniform(8, 28), pixels.shape)
    buf = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=rng.randint(85, 95))
    ann = {"description": "", "size": {"height": SIDE, "width": SIDE}, "tags": [], "objects": objs}
    return buf.getvalue(), ann


def _write_item(args: tuple[Path, int]) -> None:
    root, i = args
    jpeg, ann = _image(i)
    name = f"img_{i:06d}.jpg"
    (root / "train" / "img" / name).write_bytes(jpeg)
    (root / "train" / "ann" / f"{name}.json").write_text(json.dumps(ann))


@dataclass
class Tally:
    """What a pass read: compared between contenders to show they read the same items."""
    items: int = 0
    jpeg_bytes: int = 0
    crc_sum: int = 0
    objects: int = 0

    def add(self, batch: dict) -> None:
        self.items += len(batch["size"])
        self.jpeg_bytes += int(batch["size"].sum())
        self.crc_sum += int(batch["crc"].sum())
        self.objects += int(batch["objects"].sum())


def make_project(root: Path, n: int) -> tuple[list[str], Tally]:
    """A Supervisely project of n items in dataset `train`; returns the item names and the
    tally every pass must match."""
    (root / "train" / "img").mkdir(parents=True)
    (root / "train" / "ann").mkdir(parents=True)
    (root / "meta.json").write_text(json.dumps(META))
    with multiprocessing.get_context("fork").Pool() as pool:
        for _ in pool.imap_unordered(_write_item, ((root, i) for i in range(n)), chunksize=64):
            pass
    names = [f"img_{i:06d}.jpg" for i in range(n)]
    expect = Tally()
    for name in names:
        data = (root / "train" / "img" / name).read_bytes()
        expect.items += 1
        expect.jpeg_bytes += len(data)
        expect.crc_sum += zlib.crc32(data)
        expect.objects += len(json.loads((root / "train" / "ann" / f"{name}.json").read_bytes())["objects"])
    return names, expect


def sample(jpeg: bytes, ann: dict | str | bytes) -> dict:
    """The worker's work on one item, the same for every contender: PIL decode to RGB, a
    uint8 CHW tensor, the annotation's object count; and what the tally checks."""
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor  # imported by main, before the workers fork
    if not isinstance(ann, dict):
        ann = json.loads(ann)
    img = Image.open(io.BytesIO(jpeg)).convert("RGB")
    return {"image": pil_to_tensor(img), "objects": len(ann["objects"]), "size": len(jpeg), "crc": zlib.crc32(jpeg)}


def timed_pass(make_loader: Callable[[], Iterable[dict]]) -> tuple[float, Tally]:
    """Seconds to make the loader and take every batch from it (its workers' start
    included, as in each epoch of a DataLoader without persistent workers), and the tally."""
    tally = Tally()
    start = time.perf_counter()
    for batch in make_loader():
        tally.add(batch)
    return time.perf_counter() - start, tally


# -- cas ------------------------------------------------------------------------------------

def cas(store: Path, *args: str) -> None:
    res = subprocess.run([sys.executable, "-m", "cas", "--store", str(store), "--quiet", *args],
                         capture_output=True, text=True, cwd=REPO)
    if res.returncode != 0:
        raise SystemExit(f"cas {' '.join(args)} failed:\n{res.stderr}")


def cas_upload(work: Path, src: Path, endpoint: str) -> Path:
    """Import the project, give the store its S3 remote and push (the blobs go up in pack
    objects, in item order); return a fresh clone of it. A store made with `--s3` from the
    start would write each new blob as an object of its own at import."""
    url = f"s3://{BUCKET}/cas"
    cas(work / "cas_writer", "init")
    cas(work / "cas_writer", "import", str(src), "--project", "p")
    cas(work / "cas_writer", "init", "--s3", url, "--endpoint-url", endpoint)
    cas(work / "cas_writer", "push", "p")
    cas(work / "cas_reader", "clone", url, str(work / "cas_reader"), "--endpoint-url", endpoint)
    return work / "cas_reader"


class CasSamples:
    """`cas.open_dataset` with the shared transform; it hands DataLoader's batches of
    indexes to the dataset's `__getitems__` (the batched read)."""

    def __init__(self, ds: Any) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        return sample(*self.ds[i])

    def __getitems__(self, indices: list[int]) -> list[dict]:
        return [sample(img, ann) for img, ann in self.ds.__getitems__(indices)]


def cas_loader(store: Path, args: argparse.Namespace) -> Iterable[dict]:
    import torch

    import cas as cas_api
    ds = cas_api.open_dataset(store, "p/train", decode="bytes")
    return torch.utils.data.DataLoader(CasSamples(ds), batch_size=args.batch, num_workers=args.workers)


# -- WebDataset -----------------------------------------------------------------------------

def wds_upload(work: Path, src: Path, names: list[str], per_shard: int, s3: Any) -> list[str]:
    """Tar shards of `per_shard` samples (`<name>.jpg`, `<name>.json`), uploaded; returns
    presigned URLs of them, in order."""
    out = work / "wds"
    out.mkdir()
    keys = []
    for first in range(0, len(names), per_shard):
        path = out / f"train-{first // per_shard:06d}.tar"
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
            for name in names[first:first + per_shard]:
                stem = name.rsplit(".", 1)[0]
                tar.add(src / "train" / "img" / name, arcname=f"{stem}.jpg")
                tar.add(src / "train" / "ann" / f"{name}.json", arcname=f"{stem}.json")
        key = f"wds/{path.name}"
        s3.upload_file(str(path), BUCKET, key)
        keys.append(key)
    shutil.rmtree(out)
    return [s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": k}, ExpiresIn=3600)
            for k in keys]


def _wds_sample(s: dict) -> dict:
    return sample(s["jpg"], s["json"])


def wds_loader(urls: list[str], args: argparse.Namespace) -> Iterable[dict]:
    import torch
    import webdataset as wds
    ds = wds.WebDataset(urls, shardshuffle=False, workersplitter=wds.split_by_worker, empty_check=False)
    return torch.utils.data.DataLoader(ds.map(_wds_sample).batched(args.batch), batch_size=None,
                                       num_workers=args.workers)


# -- LitData --------------------------------------------------------------------------------

def _lit_item(item: tuple[str, str]) -> dict:
    img, ann = item
    return {"jpg": Path(img).read_bytes(), "ann": Path(ann).read_text()}


def lit_upload(work: Path, src: Path, names: list[str], chunk_bytes: str, s3: Any) -> str:
    """`litdata.optimize` into a local folder, uploaded to the bucket; returns its s3:// URL."""
    import litdata
    out = work / "litdata"
    inputs = [(str(src / "train" / "img" / n), str(src / "train" / "ann" / f"{n}.json")) for n in names]
    # start_method: optimize sets the start method of the whole process (spawn by default),
    # which every DataLoader after it would inherit
    litdata.optimize(_lit_item, inputs, str(out), chunk_bytes=chunk_bytes, num_workers=2, verbose=False,
                     keep_data_ordered=True, start_method="fork")
    for path in sorted(out.iterdir()):
        s3.upload_file(str(path), BUCKET, f"litdata/{path.name}")
    shutil.rmtree(out)
    return f"s3://{BUCKET}/litdata"


def _lit_sample(item: dict) -> dict:
    return sample(item["jpg"], item["ann"])


def lit_loader(url: str, cache: Path, endpoint: str, args: argparse.Namespace) -> Iterable[dict]:
    import litdata
    from litdata.streaming import downloader
    # LitData's chunk prefetch (obstore) makes its client without allow_http, so an http://
    # endpoint fails there ("builder error"): allowed here, in the parent its workers fork from.
    downloader._OBSTORE_CLIENT_OPTIONS["allow_http"] = "true"
    ds = litdata.StreamingDataset(url, cache_dir=str(cache), storage_options={"endpoint_url": endpoint},
                                  transform=_lit_sample)
    return litdata.StreamingDataLoader(ds, batch_size=args.batch, num_workers=args.workers)


# -- the run --------------------------------------------------------------------------------

def measure(work: Path, args: argparse.Namespace) -> list[dict]:
    src = work / "src"
    t = time.perf_counter()
    names, expect = make_project(src, args.items)
    print(f"{args.items} JPEGs {SIDE}x{SIDE}, {expect.jpeg_bytes / MB:.0f} MB, made in "
          f"{time.perf_counter() - t:.0f} s", flush=True)
    server, endpoint = start_s3(work)
    try:
        s3 = client(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        per_shard = math.ceil(args.items / (args.workers * args.shards_per_worker))
        t = time.perf_counter()
        cas_root = cas_upload(work, src, endpoint)
        urls = wds_upload(work, src, names, per_shard, s3)
        lit_url = lit_upload(work, src, names, args.chunk_bytes, s3)
        print(f"uploaded in {time.perf_counter() - t:.0f} s: cas store pushed and cloned; {len(urls)} WebDataset "
              f"shards of {per_shard}; LitData chunks of {args.chunk_bytes}", flush=True)
        loaders: dict[str, Callable[[], Iterable[dict]]] = {
            "WebDataset tar shards": lambda: wds_loader(urls, args),
            "LitData StreamingDataset": lambda: lit_loader(lit_url, work / "litdata_cache", endpoint, args),
            "cas open_dataset, cold clone": lambda: cas_loader(cas_root, args),
        }
        rows = []
        for case, make_loader in loaders.items():
            try:
                seconds, tally = timed_pass(make_loader)
            except Exception as e:  # noqa: BLE001 - a peer that fails is reported, and the others still run
                reason = str(e).strip().splitlines()[-1][:200] if str(e).strip() else type(e).__name__
                print(f"{case}: FAILED: {reason}", flush=True)
                rows.append({"case": case, "seconds": None, "error": reason})
                continue
            same = tally == expect
            print(f"{case}: {seconds:.2f} s" + ("" if same else f" READ OTHER ITEMS: {tally} (expected {expect})"),
                  flush=True)
            rows.append({"case": case, "seconds": seconds, "items/s": args.items / seconds,
                         "MB/s": expect.jpeg_bytes / MB / seconds, "same items": same})
    finally:
        server.terminate()
        server.wait(timeout=10)
    peers = [r for r in rows[:-1] if r["seconds"] is not None]
    if peers and rows[-1]["seconds"] is not None:
        best = max(peers, key=lambda r: r["items/s"])
        rows[-1]["ratio"] = rows[-1]["items/s"] / best["items/s"]
        rows[-1]["vs"] = best["case"]
    return rows


def print_rows(rows: list[dict]) -> None:
    print(f"\n{'case':32s} {'s':>7s} {'images/s':>9s} {'MB/s':>6s}  same items  ratio (cas / best peer)")
    for r in rows:
        if r["seconds"] is None:
            print(f"{r['case']:32s} FAILED: {r['error']}")
            continue
        ratio = "" if "ratio" not in r else \
            f"{r['ratio']:.2f} x vs {r['vs']}, target >= {TARGET}: {'met' if r['ratio'] >= TARGET else 'NOT met'}"
        print(f"{r['case']:32s} {r['seconds']:7.2f} {r['items/s']:9,.0f} {r['MB/s']:6.1f}  "
              f"{'yes' if r['same items'] else 'NO':10s}  {ratio}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.train_s3", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=20_000, help="JPEGs in the dataset (default 20000)")
    ap.add_argument("--workers", type=int, default=8, help="DataLoader workers (default 8)")
    ap.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    ap.add_argument("--shards-per-worker", type=int, default=4, help="WebDataset shards per worker (default 4)")
    ap.add_argument("--chunk-bytes", default="16MB", help="LitData chunk size (default 16MB)")
    ap.add_argument("--workdir", default=str(REPO / ".bench-tmp"))
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*worker processes in total")  # more workers than cores: the point
    # As a training script does at its top: imported once here, not by each forked worker on its
    # first item (about 1 s of CPU per worker, which drowned the loaders' own costs).
    import torchvision.transforms.functional  # noqa: F401
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="train-s3-", dir=args.workdir))
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
