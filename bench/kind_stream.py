"""A large point cloud and a large video streamed through the cas mount vs a passthrough mount
of the same files (issue 30's bar: <= 1.1 x).

    .venv/bin/python -m bench.kind_stream [--cloud-mb 200] [--video-mb 1000] [--rounds 3]
        [--binding mfusepy|fusepy] [--workdir DIR] [--keep]

Writes a binary PCD v0.7 cloud and an uncompressed AVI video (PyAV, rawvideo: its size is
its frames'), imports each folder as a project (`cas import`), then in interleaved rounds
reads the file with `dd bs=1M` through a fresh passthrough mount and a fresh cas mount (the
FUSE page cache empty, the backing files hot in the page cache). Prints the medians and their
ratio.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import numpy as np

from bench.fuse_read import cas, cas_mount, passthrough, print_rows, row, sh

LIMIT = 1.1
MB = 1_000_000
DD = "dd if={} of=/dev/null bs=1M status=none"


def write_cloud(path: Path, mb: int) -> int:
    """A binary PCD v0.7 of about `mb` MB of x y z float points."""
    points = mb * MB // 12
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        f.write(("VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\n"
                 f"WIDTH {points}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {points}\nDATA binary\n").encode())
        for start in range(0, points, 1 << 22):
            f.write(rng.random((min(1 << 22, points - start), 3), dtype=np.float32).tobytes())
    return path.stat().st_size


def write_video(path: Path, mb: int) -> int:
    """An uncompressed 1280x720 AVI of about `mb` MB (rawvideo frames of distinct noise)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = 1280, 720
    frames = max(1, mb * MB // (width * height * 3 // 2))
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("rawvideo", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.roll(noise, i, axis=1), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.stat().st_size


def stream(work: Path, name: str, source: Path, item: str, section: str, size: int, rounds: int,
           binding: str, rows: list) -> None:
    """`dd` of one file through passthrough and cas mounts, `rounds` fresh mounts of each."""
    store = work / f"store_{name}"
    cas(store, "init")
    cas(store, "import", str(source), "--project", "p")
    sh(DD.format(source / "d" / item))  # the backing file hot
    times: dict[str, list[float]] = {"passthrough": [], "cas": []}
    for _ in range(rounds):
        with passthrough(source, work / "pmnt", binding):
            times["passthrough"].append(sh(DD.format(work / "pmnt/d" / item)))
        with cas_mount(store, work / "cmnt", read_only=True):
            times["cas"].append(sh(DD.format(work / f"cmnt/p/d/{section}/{item}")))
    label = f"{size / MB:.0f} MB {name}, dd bs=1M, first read (median of {rounds})"
    row(rows, f"{label}: passthrough", statistics.median(times["passthrough"]), size)
    row(rows, f"  cas mount ({section}/)", statistics.median(times["cas"]), size, f"{label}: passthrough",
        f"target <= {LIMIT}")
    shutil.rmtree(store)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cloud-mb", type=int, default=200)
    ap.add_argument("--video-mb", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--binding", default="mfusepy", choices=["mfusepy", "fusepy"])
    ap.add_argument("--workdir")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cas-kind-stream-"))
    rows: list = []
    try:
        cloud = write_cloud(work / "clouds/d/big.pcd", args.cloud_mb)
        stream(work, "point cloud", work / "clouds", "big.pcd", "pointcloud", cloud, args.rounds, args.binding, rows)
        video = write_video(work / "videos/d/big.avi", args.video_mb)
        stream(work, "video", work / "videos", "big.avi", "video", video, args.rounds, args.binding, rows)
        print_rows(rows)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
