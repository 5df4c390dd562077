"""Scale benchmark: every whole-dataset operation at 100k and 1M link items (10M with
`--sizes 100000,1000000,10000000`), with its time and peak memory per step, and the cost per
item of each step at each size side by side, so that linearity shows at a glance.

    .venv/bin/python -m bench.scale [--sizes 100000,1000000] [--workdir DIR] [--keep]
        [--skip-mount] [--json PATH]

Each size gets a fresh store holding one dataset of N link items imported from a URL list
with `--no-head` (no content is read: the costs measured are the index's, the CLI's and the
mount's, not the disk's). Beside each mount listing, in the same run, the anchor: `ls -l` of
a local folder of N empty files, and their ratio. The daemon's memory is its private memory
(RssAnon of /proc/PID/status), its peak sampled during the listings; VmHWM (peak RSS, the
index's mapped pages included) is given beside it.

Targets at 1M (issue 28 where it sets one, else issue 13's): import <= 10 s; `ls -l` through a
read-only mount <= 1.1 x the native listing; daemon private memory <= 100 MB; first snapshot
<= 5 s and <= 300 MB; `cas ls P/D` <= 10 s; `cas stats` <= 5 s; `cas fsck --quick` <= 15 s.
`cas du P` (the dataset's row and the project's: two sets of ids) and `cas stats P --classes`
(every link shares one empty annotation: a scan and one read) have no target. A 10M run needs
about 5 KB of free disk and an inode (the native folder's file) per item: it is refused up
front without them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from fusefs.mount import detach, mount_background

REPO = Path(__file__).resolve().parent.parent
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
TARGETS_1M = {"import": 10.0, "cas ls P/D": 10.0, "cas ls P/D, into a pipe": 10.0,
              "cas stats": 5.0, "cas fsck --quick": 15.0, "cas snapshot (first)": 5.0}
RSS_TARGETS_1M = {"cas snapshot (first)": 300.0, "mount: daemon private memory": 100.0}
LISTING_VS_NATIVE = 1.1  # `ls -l` of the mount against `ls -l` of N empty local files
DISK_PER_ITEM = 5_000  # bytes: the store's index, the URL list, the native folder
SAMPLE_EVERY = 0.02  # seconds between reads of the daemon's memory during a listing


@dataclass
class Row:
    items: int
    step: str
    seconds: float | None
    peak_rss_mb: float | None = None
    note: str = ""
    cpu_seconds: float | None = None  # user + system of the command (steadier than wall on a busy machine)

    @property
    def us_per_item(self) -> float | None:
        return self.seconds / self.items * 1e6 if self.seconds is not None else None


def timed(cmd: str, cwd: Path = REPO) -> tuple[float, float | None, float | None]:
    """(wall seconds, peak RSS MB, CPU seconds) of a shell command; stops the run on failure.
    GNU time reports the largest RSS of the shell's children (the cas process)."""
    rss_file = Path(tempfile.mktemp(prefix="scale-rss-"))
    full = [GNU_TIME, "-f", "%M %U %S", "-o", str(rss_file), "sh", "-c", cmd] if GNU_TIME else ["sh", "-c", cmd]
    start = time.perf_counter()
    res = subprocess.run(full, capture_output=True, text=True, cwd=cwd)
    seconds = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"failed: {cmd}\n{res.stderr[-3000:]}")
    rss = cpu = None
    if rss_file.exists():
        fields = rss_file.read_text().split()
        if len(fields) >= 3:
            rss, cpu = int(fields[-3]) / 1024, float(fields[-2]) + float(fields[-1])
        rss_file.unlink()
    return seconds, rss, cpu


def cas_cmd(store: Path, args: str) -> str:
    return f"{sys.executable} -m cas --store {store} -q {args}"


def proc_status(pid: int, field: str) -> float:
    """A /proc/<pid>/status field in MB (VmHWM: peak RSS; VmRSS, RssAnon, RssFile: now)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PeakSampler:
    """The largest value of a /proc/<pid>/status field seen while the `with` block runs."""

    def __init__(self, pid: int, field: str) -> None:
        self.pid, self.field, self.peak = pid, field, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, proc_status(self.pid, self.field))
            if self._stop.wait(SAMPLE_EVERY):
                return

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, proc_status(self.pid, self.field))


def check_room(parent: Path, sizes: list[int]) -> None:
    """Refuse a run the disk cannot hold (a 10M run fills about 50 GB)."""
    need = max(sizes) * DISK_PER_ITEM
    free = shutil.disk_usage(parent).free
    if free < need:
        raise SystemExit(f"{parent}: {free / 1e9:.0f} GB free, a run of {max(sizes):,} items needs about "
                         f"{need / 1e9:.0f} GB (--workdir elsewhere, or smaller --sizes)")
    inodes = os.statvfs(parent).f_favail
    if inodes < max(sizes) * 1.1:
        raise SystemExit(f"{parent}: {inodes:,} free inodes, the native folder of {max(sizes):,} empty files "
                         "needs one each")


def write_urls(path: Path, n: int) -> None:
    with open(path, "w") as f:
        for i in range(n):
            f.write(f"http://127.0.0.1:9/images/{i:07d}.jpg\n")


def native_anchor(work: Path, n: int) -> float:
    """`ls -l` of a local folder of n empty files (dentries and inodes hot)."""
    folder = work / "native"
    folder.mkdir()
    for i in range(n):
        os.close(os.open(folder / f"{i:07d}.jpg", os.O_CREAT | os.O_WRONLY, 0o644))
    timed(f"ls -l {folder} > /dev/null")
    seconds, _, _ = timed(f"ls -l {folder} > /dev/null")
    shutil.rmtree(folder)
    return seconds


def mount_steps(work: Path, store: Path, n: int, rows: list[Row]) -> None:
    mnt = work / "mnt"
    mnt.mkdir(exist_ok=True)
    pid = mount_background(str(store), str(mnt), read_only=True)
    try:
        img = mnt / "big" / "urls" / "img"
        with PeakSampler(pid, "RssAnon") as private:
            for step, cmd in (("mount: ls -l", f"ls -l {img} > /dev/null"),
                              ("mount: ls -l again", f"ls -l {img} > /dev/null"),
                              ("mount: ls", f"ls {img} > /dev/null")):
                cpu = cpu_seconds(pid)
                seconds, _, _ = timed(cmd)
                rows.append(Row(n, step, seconds, None, "", cpu_seconds(pid) - cpu))
        first_listing = rows[-3]
        cpu = cpu_seconds(pid)
        seconds, _, _ = timed(f"find {mnt / 'big'} > /dev/null")
        entries = 3 * n  # img/, ann/ and img_info/ each list every item
        rows.append(Row(n, "mount: find (img, ann, img_info)", seconds, None,
                        f"{entries} entries, {seconds / entries * 1e6:.1f} us each", cpu_seconds(pid) - cpu))
        rows.append(Row(n, "mount: daemon private memory", None, private.peak,
                        f"peak RssAnon during the `ls -l` and `ls` listings; VmHWM {proc_status(pid, 'VmHWM'):.0f} MB "
                        f"(the index's mapped pages counted), RssAnon after `find` too "
                        f"{proc_status(pid, 'RssAnon'):.0f} MB"))
    finally:
        detach(str(mnt))
    native = native_anchor(work, n)
    assert first_listing.seconds is not None
    ratio = first_listing.seconds / native
    first_listing.note = (f"{ratio:.2f} x native (<= {LISTING_VS_NATIVE:g} x: "
                          f"{'met' if ratio <= LISTING_VS_NATIVE else 'missed'})")
    rows.append(Row(n, "anchor: ls -l of N empty local files", native))


def one_size(work: Path, n: int, with_mount: bool) -> list[Row]:
    rows: list[Row] = []
    urls, store = work / "urls.txt", work / "store"
    write_urls(urls, n)
    timed(cas_cmd(store, "init"))
    seconds, rss, cpu = timed(cas_cmd(store, f"import {urls} --project big --format links --no-head"))
    rows.append(Row(n, "import", seconds, rss, "", cpu))
    for step, args in (("cas ls P/D", "ls big/urls > /dev/null"),
                       ("cas ls P/D, into a pipe", "ls big/urls | cat > /dev/null"),
                       ("cas stats", "stats > /dev/null"), ("cas du P", "du big > /dev/null"),
                       ("cas stats P --classes", "stats big --classes > /dev/null"),
                       ("cas fsck --quick", "fsck --quick > /dev/null"),
                       ("cas snapshot (first)", "snapshot big -m first > /dev/null")):
        seconds, rss, cpu = timed(cas_cmd(store, args))
        rows.append(Row(n, step, seconds, rss, "", cpu))
    if with_mount:
        mount_steps(work, store, n, rows)
    shutil.rmtree(store)
    urls.unlink()
    return rows


def target_note(row: Row) -> str:
    if row.items != 1_000_000:  # the targets are set at 1M
        return ""
    notes = []
    if row.step in TARGETS_1M and row.seconds is not None:
        limit = TARGETS_1M[row.step]
        notes.append(f"<= {limit:g} s: {'met' if row.seconds <= limit else 'missed'}")
    if row.step in RSS_TARGETS_1M and row.peak_rss_mb is not None:
        limit = RSS_TARGETS_1M[row.step]
        notes.append(f"<= {limit:g} MB: {'met' if row.peak_rss_mb <= limit else 'missed'}")
    return "; ".join(notes)


def print_table(rows: list[Row]) -> None:
    print("| items | step | seconds | us/item | CPU s | CPU us/item | peak RSS MB | note | target (1M) |")
    print("|---:|---|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        seconds = f"{r.seconds:.2f}" if r.seconds is not None else ""
        per = f"{r.us_per_item:.1f}" if r.us_per_item is not None else ""
        cpu = f"{r.cpu_seconds:.2f}" if r.cpu_seconds is not None else ""
        cpu_per = f"{r.cpu_seconds / r.items * 1e6:.1f}" if r.cpu_seconds is not None else ""
        rss = f"{r.peak_rss_mb:.0f}" if r.peak_rss_mb is not None else ""
        print(f"| {r.items:,} | {r.step} | {seconds} | {per} | {cpu} | {cpu_per} | {rss} | {r.note} "
              f"| {target_note(r)} |", flush=True)


def print_per_item(rows: list[Row]) -> None:
    """Time (us) and peak memory (bytes) per item of every step, one column per size: flat
    along a row means linear."""
    sizes = sorted({r.items for r in rows})
    cells: dict[str, dict[int, str]] = {}
    for r in rows:
        if r.us_per_item is not None:
            cells.setdefault(f"{r.step}, us/item", {})[r.items] = f"{r.us_per_item:.1f}"
    for r in rows:
        if r.peak_rss_mb is not None:
            per_item = r.peak_rss_mb * 2**20 / r.items
            cells.setdefault(f"{r.step}, peak memory bytes/item", {})[r.items] = f"{per_item:.0f}"
    print("\n| per item | " + " | ".join(f"{n:,}" for n in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for label, by_size in cells.items():
        print(f"| {label} | " + " | ".join(by_size.get(n, "") for n in sizes) + " |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="100000,1000000", help="comma-separated item counts (10000000: opt-in)")
    p.add_argument("--workdir", help="parent of the run's temp dir (default REPO/.bench-tmp)")
    p.add_argument("--keep", action="store_true", help="keep the work dir")
    p.add_argument("--skip-mount", action="store_true", help="no mount steps (no /dev/fuse needed)")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = p.parse_args(argv)
    parent = Path(args.workdir or REPO / ".bench-tmp")
    parent.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    check_room(parent, sizes)
    work = Path(tempfile.mkdtemp(prefix="scale-", dir=parent))
    rows: list[Row] = []
    try:
        for n in sizes:
            rows += one_size(work, n, not args.skip_mount)
            print(f"-- {n:,} items done", file=sys.stderr, flush=True)
            if args.json:  # after each size: a long run keeps what it measured
                Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_table(rows)
    print_per_item(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
