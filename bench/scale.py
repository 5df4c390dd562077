"""Scale benchmark: every whole-dataset operation at 100k, 300k and 1M link items, with its
time and peak memory per step, so that growth shows at a glance.

    .venv/bin/python -m bench.scale [--sizes 100000,300000,1000000] [--workdir DIR] [--keep]
        [--skip-mount] [--json PATH]

Each size gets a fresh store holding one dataset of N link items imported from a URL list
with `--no-head` (no content is read: the costs measured are the index's, the CLI's and the
mount's, not the disk's). Beside each mount listing, the anchor: `ls -l` of a local folder
of N empty files. The last column is time per item in us: flat down a column means linear.

Targets (issue 13, at 1M): import <= 30 s; `ls -l` through a read-only mount <= 20 s and a
repeated listing much faster; plain `ls` and `find` close to `ls -l` per entry; daemon peak
RSS <= 200 MB; `cas ls P/D` <= 10 s; `cas stats` <= 5 s; `cas fsck --quick` <= 15 s; first
snapshot <= 15 s and <= 300 MB. `cas du P` (the dataset's row and the project's: two sets of
ids) and `cas stats P --classes` (every link shares one empty annotation: a scan and one
read) have no target.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from fusefs.mount import detach, mount_background

REPO = Path(__file__).resolve().parent.parent
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
TARGETS_1M = {"import": 30.0, "mount: ls -l": 20.0, "cas ls P/D": 10.0, "cas ls P/D, into a pipe": 10.0,
              "cas stats": 5.0, "cas fsck --quick": 15.0, "cas snapshot (first)": 15.0}
RSS_TARGETS_1M = {"cas snapshot (first)": 300.0, "mount: daemon peak RSS": 200.0}


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
        for step, cmd in (("mount: ls -l", f"ls -l {img} > /dev/null"),
                          ("mount: ls -l again", f"ls -l {img} > /dev/null"),
                          ("mount: ls", f"ls {img} > /dev/null")):
            cpu = cpu_seconds(pid)
            seconds, _, _ = timed(cmd)
            rows.append(Row(n, step, seconds, None, "", cpu_seconds(pid) - cpu))
        cpu = cpu_seconds(pid)
        seconds, _, _ = timed(f"find {mnt / 'big'} > /dev/null")
        entries = 3 * n  # img/, ann/ and img_info/ each list every item
        rows.append(Row(n, "mount: find (img, ann, img_info)", seconds, None,
                        f"{entries} entries, {seconds / entries * 1e6:.1f} us each", cpu_seconds(pid) - cpu))
        rows.append(Row(n, "mount: daemon peak RSS", None, proc_status(pid, "VmHWM"),
                        f"after the listings: {proc_status(pid, 'RssAnon'):.0f} MB its own (RssAnon), "
                        f"{proc_status(pid, 'RssFile'):.0f} MB of mapped files, the index's pages (RssFile)"))
    finally:
        detach(str(mnt))
    rows.append(Row(n, "anchor: ls -l of N empty local files", native_anchor(work, n)))


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
    if row.items < 1_000_000:
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="100000,300000,1000000", help="comma-separated item counts")
    p.add_argument("--workdir", help="parent of the run's temp dir (default REPO/.bench-tmp)")
    p.add_argument("--keep", action="store_true", help="keep the work dir")
    p.add_argument("--skip-mount", action="store_true", help="no mount steps (no /dev/fuse needed)")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = p.parse_args(argv)
    parent = Path(args.workdir or REPO / ".bench-tmp")
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="scale-", dir=parent))
    rows: list[Row] = []
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            rows += one_size(work, n, not args.skip_mount)
            print(f"-- {n:,} items done", file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
