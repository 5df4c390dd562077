"""Copy-in benchmark: a Supervisely project written into the cas mount (`cp -r`, `rsync -a`)
against `cas import` of the same project and `cp -r` to local disk, in one run.

    .venv/bin/python -m bench.copy_in [--distinct N] [--copies N] [--rounds 3] [--workdir DIR] [--keep]

The source is bench.datagen's dedup set (default 5,000 distinct + 2,500 byte-identical 100 KB
noise JPEGs) laid out once as a Supervisely project: `meta.json` (images, no classes),
`ds/img/<every image>`, `ds/ann/<image>.json` (an empty annotation with the image's real size).
Every round runs every contender once, in this order, each into a fresh store / mount / folder:

  1. cp -r into mount:  cas init; cas mount; timed `cp -r SRC MNT/proj && sync MNT/proj/meta.json`
  2. cas import:        cas init; timed `cas import SRC --project proj`
  3. cp -r to local:    timed `cp -r SRC DIR && sync` (the local-disk reference)
  4. rsync into mount:  cas init; cas mount; timed `rsync -a SRC/ MNT/proj/ && sync MNT/proj/meta.json`
  5. rsync again:       the same mount, timed `rsync -a --stats SRC/ MNT/proj/` (should transfer 0 files)
  6. cp -r into passthrough: bench.passthrough --writable over an empty folder, timed
                        `cp -r SRC MNT/proj && sync`: the same binding doing nothing but pass the
                        requests through, the least a copy into a Python FUSE mount can cost

`sync FILE` fsyncs that one file; in the mount an fsync is a barrier that commits every file
closed before it, so the timed span ends when the copy is in the store. Before each timed run
`sync` runs and the source is read once (untimed, as in bench.dedup). `cas init`, mounting,
unmounting and the checks (`cas stats --json` and `cas ls proj`: every item in proj/ds) are
untimed. The table shows medians over the rounds; ratios are medians of per-round ratios.
A contender that fails is reported (one line with its stderr tail) and the others go on; the
exit status is then 1.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from bench.datagen import make_dedup_set
from bench.dedup import CACHE_NOTE, MB, cas_env, prepare
from bench.fuse_read import passthrough as passthrough_mount
from fusefs.mount import UNMOUNT_TIMEOUT, detach

REPO = Path(__file__).resolve().parent.parent
PROJECT, DATASET = "proj", "ds"
META = {"classes": [], "tags": [], "projectType": "images"}
COPY_IN_TARGET = 1.5  # cp -r into the mount <= 1.5 x cas import
CMD_TIMEOUT = 1800.0  # a hung mount must not hang the benchmark
COPY_IN, IMPORT, CP_LOCAL, RSYNC1, RSYNC2, PASS = "copy-in", "import", "cp-local", "rsync-1", "rsync-2", "passthrough"
LABELS = {COPY_IN: "1 cp -r into mount + fsync", IMPORT: "2 cas import", CP_LOCAL: "3 cp -r to local disk + sync",
          RSYNC1: "4 rsync -a into mount + fsync", RSYNC2: "5 rsync -a again, same mount",
          PASS: "6 cp -r into passthrough + sync"}
ENV = cas_env()


class Failed(Exception):
    """A command or a check of a contender failed; the message is one line."""


@dataclass
class Outcome:
    seconds: float | None = None
    error: str | None = None
    note: str = ""
    transferred: int | None = None
    skipped: bool = False

    def status(self) -> str:
        return "skipped" if self.skipped else "FAILED" if self.error else f"{self.seconds:.2f} s"


@dataclass
class Ctx:
    work: Path
    src: Path
    items: int
    nbytes: int

    @property
    def mnt(self) -> Path:
        return self.work / "mnt"


# ------------------------------------------------------------------------------ the source
def build_source(work: Path, distinct: int, copies: int) -> Ctx:
    """The dedup set moved into SRC/ds/img/, one empty annotation per image, meta.json."""
    gen, src = work / "gen", work / "src"
    make_dedup_set(gen, distinct, copies)
    img, ann = src / DATASET / "img", src / DATASET / "ann"
    img.mkdir(parents=True)
    ann.mkdir()
    (src / "meta.json").write_text(json.dumps(META, indent=4))
    for path in sorted(gen.rglob("*.jpg")):  # set_a/, set_b/: names are unique across both
        dest = img / path.name
        if dest.exists():
            raise Failed(f"two images named {path.name} in the dedup set")
        path.rename(dest)
        (ann / f"{path.name}.json").write_text(json.dumps(empty_annotation(dest)))
    shutil.rmtree(gen)
    files = [p for p in src.rglob("*") if p.is_file()]
    return Ctx(work, src, len(os.listdir(img)), sum(p.stat().st_size for p in files))


def empty_annotation(image: Path) -> dict:
    with Image.open(image) as im:  # header only
        width, height = im.size
    return {"description": "", "tags": [], "size": {"height": height, "width": width}, "objects": []}


# ------------------------------------------------------------------------------ commands
def tail(stderr: str, lines: int = 2, width: int = 400) -> str:
    rows = [r.strip() for r in stderr.splitlines() if r.strip()]
    if not rows:
        return "(no stderr)"
    text = " / ".join(rows[-lines:])
    text = text if len(text) <= width else "..." + text[-width:]
    return f"{len(rows)} lines of stderr, last: {text}" if len(rows) > lines else text


def run(cmd: list[str], timeout: float = CMD_TIMEOUT) -> tuple[float, str]:
    """Run cmd from the repo (cas importable); return (wall seconds, stdout). Raises Failed."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException as e:  # timeout or Ctrl-C: end the command's own process group
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        if isinstance(e, subprocess.TimeoutExpired):
            raise Failed(f"timed out after {timeout:.0f} s: {shlex.join(cmd)}") from None
        raise
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise Failed(f"exit {proc.returncode}: {tail(err)}")
    return seconds, out


def sh(script: str, *args: Path) -> list[str]:
    return ["sh", "-c", script, "sh", *map(str, args)]


def cas(store: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "cas", "--store", str(store), "--quiet", *args]


def fresh_store(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    run(cas(path, "init"), timeout=120)
    return path


@contextmanager
def mounted(store: Path, mnt: Path) -> Iterator[Path]:
    """`cas mount` (returns when ready); always unmounted, and the daemon given time to commit
    what it holds and exit."""
    mnt.mkdir(parents=True, exist_ok=True)
    run(cas(store, "mount", str(mnt)), timeout=120)
    try:
        yield mnt
    finally:
        detach(str(mnt), wait=UNMOUNT_TIMEOUT)


def verify(store: Path, items: int) -> str:
    """Untimed: every item in proj/ds (`cas stats --json`, `cas ls proj`); returns a note."""
    stats = json.loads(run(cas(store, "stats", "--json"))[1])
    listing = run(cas(store, "ls", PROJECT))[1].strip()
    if stats.get("items") != items or listing != f"{DATASET}/\t{items} items":
        raise Failed(f"check failed: expected {items} items in {PROJECT}/{DATASET}; `cas stats` says "
                     f"{stats.get('items')} items, `cas ls {PROJECT}` says {listing[:200]!r}")
    return f"stored {stats['stored_bytes'] / MB:.1f} MB, dedup {stats['dedup_ratio']:.2f}x"


# ------------------------------------------------------------------------------ contenders
def copy_in(ctx: Ctx) -> Outcome:
    store = fresh_store(ctx.work / "store")
    with mounted(store, ctx.mnt) as mnt:
        prepare(ctx.src)
        seconds, _ = run(sh('cp -r "$1" "$2" && sync "$2/meta.json"', ctx.src, mnt / PROJECT))
    return Outcome(seconds, note=verify(store, ctx.items))


def cas_import(ctx: Ctx) -> Outcome:
    store = fresh_store(ctx.work / "store")
    prepare(ctx.src)
    seconds, _ = run(cas(store, "import", str(ctx.src), "--project", PROJECT))
    return Outcome(seconds, note=verify(store, ctx.items))


def cp_local(ctx: Ctx) -> Outcome:
    dest = ctx.work / "cp_dest"
    shutil.rmtree(dest, ignore_errors=True)
    prepare(ctx.src)
    seconds, _ = run(sh('cp -r "$1" "$2" && sync', ctx.src, dest))
    copied = len(os.listdir(dest / DATASET / "img"))
    if copied != ctx.items:
        raise Failed(f"check failed: {copied} of {ctx.items} images in {dest}")
    return Outcome(seconds)


def passthrough(ctx: Ctx) -> Outcome:
    """cp -r into bench.passthrough --writable (same binding, no work per request) + sync."""
    back, mnt = ctx.work / "pt_back", ctx.work / "pt_mnt"
    shutil.rmtree(back, ignore_errors=True)
    back.mkdir()
    try:
        with passthrough_mount(back, mnt, writable=True):
            prepare(ctx.src)
            seconds, _ = run(sh('cp -r "$1" "$2" && sync', ctx.src, mnt / PROJECT))
    except SystemExit as e:  # the mount did not come up: this contender fails, the others go on
        raise Failed(str(e)) from None
    copied = len(os.listdir(back / PROJECT / DATASET / "img"))
    if copied != ctx.items:
        raise Failed(f"check failed: {copied} of {ctx.items} images in {back}")
    shutil.rmtree(back, ignore_errors=True)
    return Outcome(seconds)


def rsync_twice(ctx: Ctx) -> dict[str, Outcome]:
    """rsync -a into a fresh mount (+ the fsync barrier), then once more into the same mount."""
    store = fresh_store(ctx.work / "store")
    with mounted(store, ctx.mnt) as mnt:
        prepare(ctx.src)
        first = attempt(lambda: Outcome(run(sh('rsync -a "$1/" "$2/" && sync "$2/meta.json"',
                                                ctx.src, mnt / PROJECT))[0]))
        if first.error:
            return {RSYNC1: first, RSYNC2: Outcome(error="rsync (first) failed", skipped=True)}
        prepare(ctx.src)
        second = attempt(lambda: rsync_again(ctx.src, mnt / PROJECT))
    try:
        first.note = verify(store, ctx.items)
    except Failed as e:
        first = Outcome(error=str(e))
    return {RSYNC1: first, RSYNC2: second}


def rsync_again(src: Path, dest: Path) -> Outcome:
    seconds, out = run(["rsync", "-a", "--stats", f"{src}/", f"{dest}/"])
    found = re.search(r"Number of regular files transferred:\s*([\d,.]+)", out)
    if not found:
        raise Failed(f"no 'Number of regular files transferred' in the output of rsync --stats: {tail(out)}")
    n = int(re.sub(r"\D", "", found.group(1)))
    return Outcome(seconds, transferred=n, note=f"regular files transferred: {n} (expected 0)")


def attempt(fn: Callable[[], Outcome]) -> Outcome:
    try:
        return fn()
    except Failed as e:
        return Outcome(error=str(e))


def one_round(ctx: Ctx) -> dict[str, Outcome]:
    out = {COPY_IN: attempt(lambda: copy_in(ctx)), IMPORT: attempt(lambda: cas_import(ctx)),
           CP_LOCAL: attempt(lambda: cp_local(ctx))}
    try:
        out.update(rsync_twice(ctx))
    except Failed as e:  # mount, store or check
        out.update({RSYNC1: Outcome(error=str(e)), RSYNC2: Outcome(error=str(e), skipped=True)})
    out[PASS] = attempt(lambda: passthrough(ctx))
    for path in (ctx.work / "store", ctx.work / "cp_dest"):
        shutil.rmtree(path, ignore_errors=True)
    return out


# ------------------------------------------------------------------------------ report
def ratio(results: dict[str, list[Outcome]], key: str, ref: str = IMPORT) -> float | None:
    """Median over the rounds where both ran of key's seconds / ref's seconds."""
    pairs = [(a.seconds, b.seconds) for a, b in zip(results[key], results[ref]) if a.seconds and b.seconds]
    return statistics.median(a / b for a, b in pairs) if pairs else None


def median_s(outcomes: list[Outcome]) -> float | None:
    times = [o.seconds for o in outcomes if o.seconds is not None]
    return statistics.median(times) if times else None


def table_row(key: str, outcomes: list[Outcome], results: dict[str, list[Outcome]], ctx: Ctx) -> list[str]:
    med, r = median_s(outcomes), ratio(results, key)
    failed = [str(i + 1) for i, o in enumerate(outcomes) if o.error]
    how = "skipped" if all(o.skipped for o in outcomes if o.error) else "FAILED"
    notes = [o.note for o in outcomes if o.note][-1:]
    if key == COPY_IN and r is not None:
        notes.insert(0, f"target <= {COPY_IN_TARGET}: {'MET' if r <= COPY_IN_TARGET else 'MISSED'}")
    if failed:
        notes.insert(0, f"{how} in round {', '.join(failed)}")
    per_round = " ".join(o.status().removesuffix(" s").lower() for o in outcomes)
    rates = [f"{ctx.items / med:,.0f}", f"{ctx.nbytes / MB / med:.1f}"] if med else ["-", "-"]
    return [LABELS[key], f"{len(outcomes) - len(failed)}/{len(outcomes)}", "-" if med is None else f"{med:.2f}",
            per_round, *rates, "-" if r is None else ("1.00 (ref)" if key == IMPORT else f"{r:.2f}"),
            "; ".join(notes)]


def print_table(results: dict[str, list[Outcome]], ctx: Ctx) -> None:
    head = ["contender", "ok", "median s", "per round s", "images/s", "MB/s", "x cas import", "note"]
    body = [table_row(key, outcomes, results, ctx) for key, outcomes in results.items()]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    fmt = lambda cells: " | ".join(c.ljust(w) if i in (0, 3, 7) else c.rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    print(fmt(head))
    print("-+-".join("-" * w for w in widths))
    for row in body:
        print(fmt(row))


def print_summary(results: dict[str, list[Outcome]]) -> None:
    def show(key: str) -> str:
        r = ratio(results, key)
        return "NOT MEASURED (failed)" if r is None else f"{r:.2f}"

    copy = ratio(results, COPY_IN)
    verdict = "NOT MEASURED (failed)" if copy is None else \
        f"{'MET' if copy <= COPY_IN_TARGET else 'MISSED'} ({copy:.2f})"
    print(f"copy-in (cp -r + fsync) / cas import <= {COPY_IN_TARGET}: {verdict}")
    print(f"rsync -a first / cas import: {show(RSYNC1)}")
    print(f"cp -r to local disk + sync / cas import: {show(CP_LOCAL)} (reference)")
    print(f"cp -r into the passthrough (the binding's ceiling) / cas import: {show(PASS)}; "
          f"cas copy-in / passthrough: {ratio(results, COPY_IN, PASS) or 0:.2f}")
    second = [o for o in results[RSYNC2] if o.seconds is not None]
    if second:
        files = "/".join(str(o.transferred) for o in second)
        print(f"rsync -a second: {median_s(second):.2f} s; regular files transferred per round: {files} "
              f"(expected 0: {'yes' if all(o.transferred == 0 for o in second) else 'NO'})")
    else:
        print("rsync -a second: NOT MEASURED (failed)")


def bench(ctx: Ctx, rounds: int) -> dict[str, list[Outcome]]:
    results: dict[str, list[Outcome]] = {key: [] for key in LABELS}
    for rnd in range(1, rounds + 1):  # interleaved: the machine's noise hits every contender alike
        outcomes = one_round(ctx)
        for key in LABELS:
            results[key].append(outcomes[key])
        print(f"round {rnd}: " + ", ".join(f"{key} {o.status()}" for key, o in outcomes.items()), flush=True)
        for key, o in outcomes.items():
            if o.error:
                print(f"  {LABELS[key]} {o.status()}: {o.error}", flush=True)
    return results


# ------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.copy_in", description=__doc__.split("\n")[0])
    p.add_argument("--distinct", type=int, default=5000, help="distinct noise JPEGs (default 5000)")
    p.add_argument("--copies", type=int, default=2500, help="byte-identical copies (default 2500)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians shown (default 3)")
    p.add_argument("--workdir", help="parent dir of the run (default REPO/.bench-tmp; a fresh copyin-* in it)")
    p.add_argument("--keep", action="store_true", help="keep the work dir")
    args = p.parse_args(argv)
    base = Path(args.workdir).resolve() if args.workdir else REPO / ".bench-tmp"
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="copyin-", dir=base))
    print(f"work dir: {work}")
    try:
        t0 = time.perf_counter()
        ctx = build_source(work, args.distinct, args.copies)
        print(f"source: {ctx.src}  {ctx.items:,} images + {ctx.items:,} annotations + meta.json, "
              f"{ctx.nbytes / MB:.1f} MB (generated in {time.perf_counter() - t0:.1f} s; MB = 10^6 bytes)")
        print(CACHE_NOTE, flush=True)
        results = bench(ctx, args.rounds)
        print()
        print_table(results, ctx)
        print()
        print_summary(results)
        return 1 if any(o.error for outcomes in results.values() for o in outcomes) else 0
    except Failed as e:
        print(f"\nERROR: {e}", file=sys.stderr)
        return 1
    finally:
        if os.path.ismount(work / "mnt"):
            print(f"still mounted, work dir kept: {work}")
        elif args.keep:
            print(f"kept work dir: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
