"""FUSE read benchmark: the cas mount side by side with a passthrough mount (same binding)
of the same files and with native reads, in one run.

    .venv/bin/python -m bench.fuse_read [--files 5000] [--big-mib 1024] [--tiny-files 200000]
        [--binding mfusepy|fusepy] [--skip-copy-in] [--workdir DIR] [--keep]

Every "first pass" runs on a fresh mount (nothing of it in the FUSE page cache); the
backing files are hot in the page cache for every contender, so the rows compare the
FUSE paths, not the disk.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from bench.datagen import make_dedup_set, make_tiny_set, write_huge_jpeg
from fusefs.mount import detach, is_fuse_mount, log_path, mount_background

REPO = Path(__file__).resolve().parent.parent
MB = 1_000_000


def sh(cmd: str) -> float:
    t = time.perf_counter()
    res = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"failed: {cmd}\n{res.stderr[-2000:]}")
    return time.perf_counter() - t


def timed(cmd: list[str]) -> float:
    """Seconds a command took; its stderr on failure."""
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:6])} ... failed:\n{res.stderr[-3000:]}")
    return time.perf_counter() - start


def cas(store: Path, *args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "cas", "--store", str(store), "--quiet", *args],
                         capture_output=True, text=True, cwd=REPO)
    if res.returncode != 0:
        raise SystemExit(f"cas {' '.join(args)} failed:\n{res.stderr}")
    return res.stdout


def unmount(mnt: Path) -> None:
    detach(str(mnt))


@contextmanager
def cas_mount(store: Path, mnt: Path, read_only: bool = False):
    """A cas mount whose daemon counts the requests it serves (CAS_MOUNT_TRACE; see requests_served)."""
    mnt.mkdir(parents=True, exist_ok=True)
    os.environ["CAS_MOUNT_TRACE"] = "1"
    try:
        pid = mount_background(str(store), str(mnt), read_only=read_only)
    finally:
        del os.environ["CAS_MOUNT_TRACE"]
    try:
        yield pid
    finally:
        unmount(mnt)


def requests_served(store: Path) -> dict[str, int]:
    """The request counts the last unmounted daemon of this store logged."""
    lines = [ln for ln in log_path(str(store)).read_text().splitlines() if "requests served: " in ln]
    return ast.literal_eval(lines[-1].split("requests served: ", 1)[1]) if lines else {}


def per_file(counts: dict[str, int], files: int) -> str:
    """Requests per file, as 'getattr 1.0, open 1.0, ...' (getattr includes the LOOKUPs)."""
    return ", ".join(f"{op} {n / files:.1f}" for op, n in sorted(counts.items(), key=lambda kv: -kv[1]))


@contextmanager
def passthrough(src: Path, mnt: Path, binding: str = "mfusepy", writable: bool = False):
    mnt.mkdir(parents=True, exist_ok=True)
    log = open(mnt.parent / "passthrough.log", "ab")  # a file, not a pipe: a full pipe would stall the daemon
    proc = subprocess.Popen([sys.executable, "-m", "bench.passthrough", str(src), str(mnt), "--binding", binding,
                             *(["--writable"] if writable else [])], cwd=REPO, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while not is_fuse_mount(str(mnt)):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"passthrough mount failed: see {log.name}")
        time.sleep(0.02)
    try:
        yield proc.pid
    finally:
        unmount(mnt)
        proc.wait(timeout=10)
        log.close()


def file_list(path: Path, root: Path, names: list[str]) -> Path:
    path.write_bytes(b"\0".join(str(root / n).encode() for n in names))
    return path


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def row(rows: list, name: str, seconds: float, nbytes: int, ref: str | None = None, note: str = "") -> None:
    rows.append({"case": name, "seconds": seconds, "MB/s": nbytes / MB / seconds if seconds else 0.0,
                 "ref": ref, "note": note})


def small_files(work: Path, n: int, binding: str, rows: list) -> None:
    src = work / "small"
    make_dedup_set(src, distinct=n, copies=0)
    names = sorted(str(p.relative_to(src)) for p in src.rglob("*.jpg"))
    total = sum((src / n_).stat().st_size for n_ in names)
    store = work / "store_small"
    cas(store, "init")
    cas(store, "import", str(src), "--project", "p")
    # cas shows set_a/x.jpg as /p/set_a/img/x.jpg
    cas_names = [f"p/{Path(n_).parent}/img/{Path(n_).name}" for n_ in names]
    native = file_list(work / "native.lst", src, names)
    sh(f"xargs -0 -a {native} cat > /dev/null")  # warm the backing files
    row(rows, f"{n} x 100 KB serial cat: native (page cache)", sh(f"xargs -0 -a {native} cat > /dev/null"), total)
    with passthrough(src, work / "pmnt", binding):
        lst = file_list(work / "p.lst", work / "pmnt", names)
        row(rows, "  passthrough, first pass", sh(f"xargs -0 -a {lst} cat > /dev/null"), total)
    with cas_mount(store, work / "cmnt"):
        lst = file_list(work / "c.lst", work / "cmnt", cas_names)
        first = sh(f"xargs -0 -a {lst} cat > /dev/null")
    row(rows, "  cas, first pass", first, total, "  passthrough, first pass",
        f"target <= 1.1; requests per file: {per_file(requests_served(store), n)}")
    with cas_mount(store, work / "cmnt"):
        sh(f"xargs -0 -a {lst} cat > /dev/null")
        row(rows, "  cas, second pass", sh(f"xargs -0 -a {lst} cat > /dev/null"), total, "  cas, first pass",
            "target <= 0.6")
    with cas_mount(store, work / "cmnt", read_only=True):
        lst = file_list(work / "c.lst", work / "cmnt", cas_names)
        ro_first = sh(f"xargs -0 -a {lst} cat > /dev/null")
        row(rows, "  cas --read-only, first pass", ro_first, total, "  passthrough, first pass")
        row(rows, "  cas --read-only, second pass", sh(f"xargs -0 -a {lst} cat > /dev/null"), total,
            "  cas --read-only, first pass", "target <= 0.6 (no atime refresh on a read-only mount)")
    version = cas(store, "snapshot", "p").split()[1]
    with cas_mount(store, work / "cmnt", read_only=True):  # the live project, then a version of it: one View
        lst = file_list(work / "c.lst", work / "cmnt", cas_names)
        vlst = file_list(work / "v.lst", work / "cmnt", [f"p/.versions/{version}/{n_[2:]}" for n_ in cas_names])
        live = sh(f"xargs -0 -a {lst} cat > /dev/null")
        row(rows, "  cas --read-only, live project in the mount below, first pass", live, total)
        row(rows, "  cas --read-only, a version of it (.versions/<id>/), first pass",
            sh(f"xargs -0 -a {vlst} cat > /dev/null"), total,
            "  cas --read-only, live project in the mount below, first pass", "the same View, over the trees")
    with passthrough(src, work / "pmnt", binding):
        lst = file_list(work / "p.lst", work / "pmnt", names)
        row(rows, "  passthrough, 8 parallel readers, first pass",
            sh(f"xargs -0 -P8 -n 64 -a {lst} cat > /dev/null"), total)
    with cas_mount(store, work / "cmnt"):
        lst = file_list(work / "c.lst", work / "cmnt", cas_names)
        row(rows, "  cas, 8 parallel readers, first pass", sh(f"xargs -0 -P8 -n 64 -a {lst} cat > /dev/null"),
            total, "  cas, first pass", "target <= 0.8")
    shutil.rmtree(src)


def big_file(work: Path, mib: int, binding: str, rows: list) -> None:
    src = work / "big/d"
    size = write_huge_jpeg(src / "huge.jpg", mib)
    store = work / "store_big"
    cas(store, "init")
    cas(store, "import", str(work / "big"), "--project", "p")
    blobs = [p for p in (store / "blobs").rglob("*") if p.is_file() and p.stat().st_size == size]
    dd = "dd if={} of=/dev/null bs=1M status=none"
    sh(dd.format(blobs[0]))
    row(rows, f"{mib} MiB item, dd bs=1M: native (page cache)", sh(dd.format(blobs[0])), size)
    with passthrough(work / "big", work / "pmnt", binding):
        row(rows, "  passthrough, first read", sh(dd.format(work / "pmnt/d/huge.jpg")), size)
    with cas_mount(store, work / "cmnt"):
        target = work / "cmnt/p/d/img/huge.jpg"
        row(rows, "  cas, first read", sh(dd.format(target)), size, "  passthrough, first read", "target <= 1.1")
        row(rows, "  cas, second read", sh(dd.format(target)), size,
            f"{mib} MiB item, dd bs=1M: native (page cache)", "target <= 2.0")
    shutil.rmtree(work / "big")
    shutil.rmtree(store)


def tiny_files(work: Path, n: int, binding: str, rows: list) -> None:
    """n tiny PNGs in one folder: ls -l, then cat every file, through cas and a passthrough."""
    src = work / "tiny"
    info = make_tiny_set(src, n)
    store = work / "store_tiny"
    cas(store, "init")
    cas(store, "import", str(src), "--project", "p")
    names = sorted(os.listdir(src / "tiny"))
    native = file_list(work / "native.lst", src / "tiny", names)
    sh(f"xargs -0 -a {native} cat > /dev/null")
    row(rows, f"{n} tiny PNGs, serial cat: native (page cache)", sh(f"xargs -0 -a {native} cat > /dev/null"),
        info["bytes"])
    with passthrough(src, work / "pmnt", binding):
        row(rows, "  passthrough: ls -l", sh(f"ls -l {work / 'pmnt/tiny'} > /dev/null"), 0)
        lst = file_list(work / "p.lst", work / "pmnt/tiny", names)
        row(rows, "  passthrough: cat, first pass", sh(f"xargs -0 -a {lst} cat > /dev/null"), info["bytes"])
    with cas_mount(store, work / "cmnt") as pid:
        folder = work / "cmnt/p/tiny/img"
        row(rows, "  cas: ls -l", sh(f"ls -l {folder} > /dev/null"), 0, "  passthrough: ls -l")
        rss = rss_mb(pid)
        lst = file_list(work / "c.lst", folder, names)
        row(rows, "  cas: cat, first pass", sh(f"xargs -0 -a {lst} cat > /dev/null"), info["bytes"],
            "  passthrough: cat, first pass")
    rows[-1]["note"] = f"requests per file: {per_file(requests_served(store), n)}"
    rows.append({"case": "  cas: daemon peak RSS after ls -l", "seconds": None, "MB/s": None, "ref": None,
                 "note": f"{rss:.0f} MB (target <= 200)"})
    shutil.rmtree(src)


def copy_in(work: Path, rows: list) -> None:
    src = work / "dedupset"
    info = make_dedup_set(src)
    store_a, store_b = work / "store_cp", work / "store_imp"
    cas(store_a, "init")
    with cas_mount(store_a, work / "cmnt"):
        seconds = sh(f"mkdir {work}/cmnt/set && for d in set_a set_b; do mkdir -p {work}/cmnt/set/$d/img && "
                     f"cp -r {src}/$d/. {work}/cmnt/set/$d/img/; done")
    row(rows, f"copy-in: cp -r of the dedup set ({info['files']} files) into <p>/<d>/img/", seconds, info["bytes"],
        "copy-in: cas import of the same set")
    cas(store_b, "init")
    row(rows, "copy-in: cas import of the same set", sh(f"{sys.executable} -m cas --store {store_b} -q import "
                                                          f"{src} --project set"), info["bytes"])
    rows.insert(len(rows) - 2, rows.pop())  # import first: it is the reference
    stats = json.loads(cas(store_a, "stats", "--json"))
    rows[-1]["note"] = f"{stats['items']} items, dedup {stats['dedup_ratio']}x"
    shutil.rmtree(src)


def print_rows(rows: list, throughput: bool = False) -> None:
    """The table; a row's ratio to its reference row is of times (lower is better), or of
    throughputs with `throughput` (higher is better)."""
    by = {r["case"]: r for r in rows}
    key = "MB/s" if throughput else "seconds"
    print(f"{'case':64s} {'s':>8s} {'MB/s':>9s}  {'throughput ratio' if throughput else 'ratio'}")
    for r in rows:
        ratio = ""
        if r["ref"] and r[key] and by.get(r["ref"], {}).get(key):
            ratio = f"{r[key] / by[r['ref']][key]:.2f} x ({r['ref'].strip()})"
        secs = f"{r['seconds']:.3f}" if r["seconds"] is not None else "-"
        mbs = f"{r['MB/s']:.0f}" if r["MB/s"] else "-"
        print(f"{r['case']:64s} {secs:>8s} {mbs:>9s}  {ratio} {r['note']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--tiny-files", type=int, default=200_000)
    ap.add_argument("--binding", default="mfusepy", choices=["mfusepy", "fusepy"],
                    help="binding of the passthrough mount (the cas mount always uses mfusepy)")
    ap.add_argument("--skip-copy-in", action="store_true")
    ap.add_argument("--workdir", default=str(REPO / ".bench-tmp"))
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fuse-", dir=args.workdir))
    rows: list = []
    try:
        if args.files:
            small_files(work, args.files, args.binding, rows)
        if args.big_mib:
            big_file(work, args.big_mib, args.binding, rows)
        if args.tiny_files:
            tiny_files(work, args.tiny_files, args.binding, rows)
        if not args.skip_copy_in:
            copy_in(work, rows)
    finally:
        for mnt in (work / "cmnt", work / "pmnt"):
            unmount(mnt)
        print_rows(rows)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
