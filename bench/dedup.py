"""Dedup/throughput benchmark: `cp -r + sync` vs `cas import` (first import, re-import) [vs restic, DVC].

    .venv/bin/python -m bench.dedup [--distinct N] [--copies N] [--size BYTES] [--workdir DIR]
        [--vs-restic] [--vs-dvc] [--keep] [--json PATH] [--rss-files N] [--only-cp] [--seed N]

All contenders run one after another in this process, on the same file system as the source set,
in interleaved rounds (each round: cp, cas first import, cas re-import into a second project,
[restic backup into a fresh repository], [dvc add into a fresh repository, dvc add again]).
Every timed run ends with what it wrote on disk: cp, restic and DVC are timed through a trailing
`sync` (`CMD && sync`; restic also fsyncs its own files, DVC never does); cas syncfs()s each batch
of blobs and commits LMDB durably before it exits. DVC (`dvc init --no-scm`, `cache.type copy`, its
default MD5) runs from REPO/.venv-dvc (`make .venv-dvc/.installed`) or PATH; it only tracks paths
inside its repository, so the source set lives in WORK/data/src and WORK/data becomes the repository
(fresh each round, its state db included, so the first add hashes everything; the second add of
the unchanged folder finds every hash in the state db).
Peak RSS: the benchmarked process's max RSS as reported by GNU `/usr/bin/time -f %M` when available.
os.wait4's ru_maxrss alone is biased on Linux: exec() carries the forking parent's (this script's)
RSS high-water mark into the child, so it is only the fallback (then an upper bound).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.datagen import make_dedup_set, make_tiny_set

REPO = Path(__file__).resolve().parent.parent
MB = 1_000_000
FIRST_TARGET, REIMPORT_TARGET, RSS_TARGET_MB, RSS_TARGET_FILES = 0.80, 0.10, 300.0, 100_000
STORAGE_TARGET = 1.3  # blob storage on disk / unique bytes, on the tiny-PNG set
CACHE_NOTE = ("page cache: NOT dropped (that needs root and cannot be done fairly here); instead, before "
              "each timed run `sync` runs (untimed) and the whole source set is read once, so every "
              "contender starts with the source hot in page cache and no pending writeback.")


class BenchError(Exception):
    """A benchmarked or helper command failed."""


@dataclass
class Row:
    contender: str
    wall_s: float
    files: int
    logical_bytes: int
    stored_bytes: int
    dedup_ratio: float
    peak_rss_mb: float
    ratio_vs_cp: float | None = None
    disk_bytes: int | None = None


def _gnu_time() -> str | None:
    """Path of a GNU time that supports -f/-o, else None."""
    t = shutil.which("time") or "/usr/bin/time"
    try:
        ok = subprocess.run([t, "-f", "%M", "-o", os.devnull, "true"], capture_output=True).returncode == 0
    except OSError:
        return None
    return t if ok else None


GNU_TIME = _gnu_time()
RSS_NOTE = ("peak RSS: the larger of GNU time %M of the command and the sampled (20 ms) sum of RSS over "
            "the command and all its descendants (worker processes included; shared pages counted per "
            "process, so an upper bound)")


def run(cmd: list[str], work: Path, env: dict | None = None) -> tuple[float, float, str]:
    """Run cmd; return (wall seconds, peak RSS MB, stdout). Raises BenchError with stderr on failure."""
    out_p, err_p, rss_p = work / ".cmd.stdout", work / ".cmd.stderr", work / ".cmd.rss"
    full = [GNU_TIME, "-f", "%M", "-o", str(rss_p), "--", *cmd] if GNU_TIME else cmd
    with open(out_p, "wb") as out, open(err_p, "wb") as err:
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=REPO, env=env)
        except OSError as e:
            raise BenchError(f"cannot start {full[0]!r}: {e}") from e
        sampler = TreeRss(proc.pid)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        tree_peak = sampler.stop()
    proc.returncode = rc = os.waitstatus_to_exitcode(status)
    stdout, stderr = out_p.read_text(errors="replace"), err_p.read_text(errors="replace")
    if rc != 0:
        raise BenchError(f"command failed (exit {rc}): {' '.join(cmd)}\n--- stderr ---\n"
                         f"{stderr[-4000:] or '(empty)'}\n--- stdout (tail) ---\n{stdout[-1000:]}")
    kib = ru.ru_maxrss  # KiB on Linux
    if GNU_TIME:
        lines = rss_p.read_text().split()
        kib = int(lines[-1]) if lines and lines[-1].isdigit() else kib
    return wall, max(kib * 1024, tree_peak) / MB, stdout


class TreeRss:
    """Samples the summed RSS of a process and all its descendants (worker processes
    included) every 20 ms; `stop()` returns the peak in bytes. Shared pages count once
    per process, so this is an upper bound."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.wait(0.02):
            parents: dict[int, int] = {}
            rss: dict[int, int] = {}
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                parents[int(entry)] = int(fields[1])
                rss[int(entry)] = int(fields[21]) * page
            tree, frontier = {self.pid}, [self.pid]
            while frontier:
                parent = frontier.pop()
                kids = [p for p, pp in parents.items() if pp == parent and p not in tree]
                tree.update(kids)
                frontier.extend(kids)
            self.peak = max(self.peak, sum(rss.get(p, 0) for p in tree))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def du_allocated(path: Path) -> int:
    """Bytes a tree takes on disk (`du -s -B1`: allocated blocks, not apparent sizes)."""
    res = subprocess.run(["du", "-s", "-B1", str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        raise BenchError(f"du -s -B1 {path} failed:\n{res.stderr}")
    return int(res.stdout.split()[0])


def du_sb(path: Path) -> int:
    """Apparent size in bytes of a tree (`du -sb`)."""
    res = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        raise BenchError(f"du -sb {path} failed:\n{res.stderr}")
    return int(res.stdout.split()[0])


def prepare(src: Path) -> None:
    """Untimed: flush pending writeback, then read the source once so it is hot in page cache."""
    subprocess.run(["sync"], check=True)
    for dirpath, _, names in os.walk(src):
        for n in names:
            with open(os.path.join(dirpath, n), "rb", buffering=0) as f:
                while f.read(1 << 20):
                    pass


def cas_env() -> dict:
    """cas as installed: bytecode is cached (a PYTHONDONTWRITEBYTECODE of the machine would
    make every run compile its sources, 60 ms or more)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def cas_import_cmd(store: Path, src: Path, project: str, work: Path) -> list[str]:
    """`cas --store S import SRC --project P --format images --quiet`; fails fast if cas cannot start.
    `--quiet` goes after `import` if that subcommand takes it, else to the group (`cas -q import ...`)."""
    _, _, helptext = run([sys.executable, "-m", "cas", "import", "--help"], work, cas_env())
    quiet = "--quiet" in helptext
    base = [sys.executable, "-m", "cas", "--store", str(store), *([] if quiet else ["--quiet"])]
    return base + ["import", str(src), "--project", project, "--format", "images"] + (["--quiet"] if quiet else [])


def fresh_cas_store(store: Path, work: Path) -> None:
    """An empty store at `store` (`cas init`: no other command creates one)."""
    shutil.rmtree(store, ignore_errors=True)
    run([sys.executable, "-m", "cas", "--store", str(store), "--quiet", "init"], work, cas_env())


def cas_stored(store: Path, work: Path, logical_fallback: int) -> tuple[int, float]:
    """(stored bytes, dedup ratio) from `cas stats --json`, else from `du -sb STORE/blobs`."""
    try:
        _, _, out = run([sys.executable, "-m", "cas", "--store", str(store), "stats", "--json"], work, cas_env())
        st = json.loads(out)
        stored, logical = int(st["stored_bytes"]), int(st.get("logical_bytes", logical_fallback))
        return stored, float(st.get("dedup_ratio") or (logical / stored if stored else 0.0))
    except (BenchError, ValueError, KeyError, TypeError) as e:
        print(f"  note: `cas stats --json` unusable ({str(e).splitlines()[0]}); using du -sb STORE/blobs")
        stored = du_sb(store / "blobs" if (store / "blobs").exists() else store)
        return stored, logical_fallback / stored if stored else 0.0


def print_table(rows: list[Row]) -> None:
    head = ["contender", "wall s", "files/s", "MB/s", "stored MB", "dedup ratio", "peak RSS MB",
            "ratio vs cp+sync"]
    body = [[r.contender, f"{r.wall_s:.2f}", f"{r.files / max(r.wall_s, 1e-9):,.0f}",
             f"{r.logical_bytes / MB / max(r.wall_s, 1e-9):.1f}", f"{r.stored_bytes / MB:.1f}",
             f"{r.dedup_ratio:.2f}", f"{r.peak_rss_mb:.1f}",
             "-" if r.ratio_vs_cp is None else f"{r.ratio_vs_cp:.2f}"] for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    fmt = lambda cells: " | ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    print(fmt(head))
    print("-+-".join("-" * w for w in widths))
    for cells in body:
        print(fmt(cells))


def target_line(name: str, limit: float, value: float | None) -> str:
    if value is None:
        return f"{name} <= {limit:.2f} x cp+sync: NOT RUN"
    return f"{name} <= {limit:.2f} x cp+sync: {'MET' if value <= limit else 'MISSED'} ({value:.2f})"


@dataclass
class Step:
    """One timed contender of a round. Every step's `setup()` (untimed: remove the last round's
    output, make a fresh repository) runs at the start of the round, before anything is timed; then
    each step in turn: prepare(src), `cmd` timed, `stored()` -> (stored bytes, dedup ratio, on disk)."""
    label: str
    cmd: list[str]
    stored: Callable[[], tuple[int, float, int]]
    env: dict | None = None
    setup: Callable[[], None] = lambda: None


def synced(cmd: list[str]) -> list[str]:
    """`CMD && sync`: the timed run includes writing back what CMD left in the page cache."""
    return ["sh", "-c", '"$@" && sync', "sh", *cmd]


def find_dvc() -> str:
    """`dvc` from REPO/.venv-dvc (its own venv: its pins must not move ours), else from PATH."""
    exe = REPO / ".venv-dvc" / "bin" / "dvc"
    found = str(exe) if exe.exists() else shutil.which("dvc")
    if not found:
        raise BenchError("--vs-dvc: dvc not found in .venv-dvc/ or on PATH; "
                         "`make .venv-dvc/.installed` installs it")
    return found


def find_restic() -> str:
    found = shutil.which("restic")
    if not found:
        raise BenchError("--vs-restic: restic not found on PATH; `apt-get install -y restic` "
                         "(or `make bench-deps`, as root) installs it")
    return found


def restic_steps(restic: str, src: Path, work: Path, logical: int) -> list[Step]:
    """`restic backup` of src into a fresh repository (initialised untimed)."""
    repo = work / "restic"
    env = dict(os.environ, RESTIC_PASSWORD="cas-bench", RESTIC_CACHE_DIR=str(work / "restic-cache"))
    env.pop("RESTIC_REPOSITORY", None)

    def setup() -> None:
        shutil.rmtree(repo, ignore_errors=True)
        shutil.rmtree(work / "restic-cache", ignore_errors=True)
        run([restic, "-r", str(repo), "init"], work, env)

    return [Step("restic backup", synced([restic, "-r", str(repo), "backup", "--quiet", str(src)]),
                 lambda: plain_stored(repo, logical), env, setup)]


def dvc_steps(dvc: str, src: Path, work: Path, logical: int) -> list[Step]:
    """`dvc add` of src into a fresh repository around it (`dvc init --no-scm`, `cache.type copy`,
    state db and site cache fresh, all untimed), then `dvc add` of the unchanged folder again."""
    repo, site = src.parent, work / "dvc-site"
    env = dict(os.environ, DVC_NO_ANALYTICS="1", DVC_SITE_CACHE_DIR=str(site))
    cmd = synced([dvc, "--cd", str(repo), "add", "--quiet", src.name])

    def setup() -> None:
        for path in (repo / ".dvc", site):
            shutil.rmtree(path, ignore_errors=True)
        for path in (repo / ".dvcignore", repo / f"{src.name}.dvc"):
            path.unlink(missing_ok=True)
        run([dvc, "--cd", str(repo), "init", "--no-scm", "--quiet"], work, env)
        run([dvc, "--cd", str(repo), "config", "cache.type", "copy"], work, env)

    def stored() -> tuple[int, float, int]:
        return plain_stored(repo / ".dvc" / "cache", logical)

    return [Step("dvc add (first)", cmd, stored, env, setup), Step("dvc re-add", cmd, stored, env)]


def plain_stored(path: Path, logical: int) -> tuple[int, float, int]:
    """(stored bytes, dedup ratio, bytes on disk) of a tree holding `logical` bytes of source."""
    stored = du_sb(path)
    return stored, logical / stored if stored else 0.0, stored


def tool_version(cmd: list[str], work: Path) -> str:
    return run(cmd, work)[2].strip().splitlines()[0]


def dedup_mode(args: argparse.Namespace, work: Path) -> dict:
    # The source one level down, so that its parent can be a DVC repository (--vs-dvc).
    src = work / "data" / "src"
    restic = find_restic() if args.vs_restic else None  # fail fast: before anything is generated
    dvc = find_dvc() if args.vs_dvc else None
    t0 = time.perf_counter()
    info = make_dedup_set(src, args.distinct, args.copies, args.size, args.seed)
    gen_s = time.perf_counter() - t0
    files, logical = info["files"], info["bytes"]
    print(f"source: {src}  files={files:,}  bytes={logical / MB:.1f} MB  unique={info['unique_bytes'] / MB:.1f} MB"
          f"  (generated in {gen_s:.1f}s; MB = 10^6 bytes)")
    print(CACHE_NOTE)
    print(RSS_NOTE)
    versions = {}
    if restic:
        versions["restic"] = tool_version([restic, "version"], work)
    if dvc:
        versions["dvc"] = tool_version([dvc, "--version"], work)
    if versions:
        print("peers: " + "; ".join(f"{k} {v}" for k, v in versions.items()))
    cp_dest, store = work / "cp_dest", work / "store"
    steps = [Step("cp -r + sync", synced(["cp", "-r", str(src), str(cp_dest)]),
                  lambda: plain_stored(cp_dest, logical),
                  setup=lambda: shutil.rmtree(cp_dest, ignore_errors=True))]
    if not args.only_cp:  # cas_import_cmd fails fast, before anything is timed, if cas cannot even start
        first, again = (cas_import_cmd(store, src, project, work) for project in ("bench", "bench2"))
        steps += [Step("cas import (first)", first, lambda: (*cas_stored(store, work, logical), du_sb(store)),
                       cas_env(), lambda: fresh_cas_store(store, work)),
                  Step("cas re-import", again, lambda: (*cas_stored(store, work, 2 * logical), du_sb(store)),
                       cas_env())]
    if restic:
        steps += restic_steps(restic, src, work, logical)
    if dvc:
        steps += dvc_steps(dvc, src, work, logical)
    walls: dict[str, list[float]] = {step.label: [] for step in steps}
    ratios: dict[str, list[float]] = {step.label: [] for step in steps}
    last: dict[str, tuple[float, int, float, int]] = {}
    for rnd in range(args.rounds):  # interleaved rounds: the machine's noise hits every contender alike
        for step in steps:  # the last round's outputs go (and their writeback) before anything is timed
            step.setup()
        for step in steps:
            prepare(src)
            wall, rss, _ = run(step.cmd, work, step.env)
            walls[step.label].append(wall)
            ratios[step.label].append(wall / walls[steps[0].label][-1])
            last[step.label] = (rss, *step.stored())
        print(f"round {rnd + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in walls.items()), flush=True)
    rows: list[Row] = []
    for step in steps:
        rss, stored, ratio, disk = last[step.label]
        rows.append(Row(step.label, statistics.median(walls[step.label]), files, logical, stored, ratio, rss,
                        statistics.median(ratios[step.label]), disk))
    print()
    print_table(rows)
    for r in rows:
        if r.contender.startswith("cas") and r.disk_bytes is not None:
            print(f"  {r.contender}: whole store on disk (du -sb STORE) = {r.disk_bytes / MB:.1f} MB")
    by = {r.contender: r.ratio_vs_cp for r in rows}
    targets = {"first_import": by.get("cas import (first)"), "re_import": by.get("cas re-import")}
    print()
    print(target_line("first import", FIRST_TARGET, targets["first_import"]))
    print(target_line("re-import", REIMPORT_TARGET, targets["re_import"]))
    return {"mode": "dedup", "source": info, "generate_s": gen_s, "peers": versions,
            "rows": [asdict(r) for r in rows],
            "targets": {"first_import_max": FIRST_TARGET, "re_import_max": REIMPORT_TARGET, **targets}}


def rss_mode(args: argparse.Namespace, work: Path) -> dict:
    src = work / "src"
    t0 = time.perf_counter()
    info = make_tiny_set(src, args.rss_files, args.seed)
    gen_s = time.perf_counter() - t0
    print(f"source: {src}  {info['files']:,} distinct 8x8 PNGs, {info['bytes'] / MB:.1f} MB"
          f"  (generated in {gen_s:.1f}s)")
    print(CACHE_NOTE)
    print(RSS_NOTE)
    store = work / "store"
    cmd = cas_import_cmd(store, src, "rss", work)
    fresh_cas_store(store, work)
    prepare(src)
    wall, rss, _ = run(cmd, work, cas_env())
    row = Row("cas import (tiny files)", wall, info["files"], info["bytes"], 0, 0.0, rss)
    row.stored_bytes, row.dedup_ratio = cas_stored(store, work, info["bytes"])
    print(f"\ncas import: {wall:.2f} s, {info['files'] / wall:,.0f} files/s, peak RSS {rss:.1f} MB")
    on_disk = sum(du_allocated(store / d) for d in ("blobs", "packs") if (store / d).exists())
    storage_met = "MET" if on_disk <= STORAGE_TARGET * row.stored_bytes else "MISSED"
    print(f"blob storage: {on_disk / MB:.1f} MB on disk (blobs/ + packs/, allocated) "
          f"for {row.stored_bytes / MB:.1f} MB of unique bytes (images and annotations): "
          f"{on_disk / row.stored_bytes:.2f}x (target <= {STORAGE_TARGET:.1f}x: {storage_met}); "
          f"the index: {du_allocated(store / 'index') / MB:.1f} MB")
    verdict = "MET" if rss <= RSS_TARGET_MB else "MISSED"
    scale = "" if info["files"] == RSS_TARGET_FILES else f" [target is defined at {RSS_TARGET_FILES:,} files]"
    print(f"peak RSS <= {RSS_TARGET_MB:.0f} MB at {RSS_TARGET_FILES:,} files: {verdict} ({rss:.1f} MB "
          f"with {info['files']:,} files){scale}")
    return {"mode": "rss", "source": info, "generate_s": gen_s, "rows": [asdict(row)],
            "targets": {"peak_rss_mb_max": RSS_TARGET_MB, "at_files": RSS_TARGET_FILES, "met": rss <= RSS_TARGET_MB}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dedup", description=__doc__.split("\n")[0])
    p.add_argument("--distinct", type=int, default=5000, help="distinct noise JPEGs (default 5000)")
    p.add_argument("--copies", type=int, default=2500, help="byte-identical copies (default 2500)")
    p.add_argument("--size", type=int, default=100_000, help="approx bytes per JPEG (default 100000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", help="parent dir for the run (default REPO/.bench-tmp); a fresh "
                                     "dedup-* subdir is made in it; must be on the store's file system")
    p.add_argument("--vs-restic", action="store_true", help="also time `restic backup` (restic on PATH)")
    p.add_argument("--vs-dvc", action="store_true", help="also time `dvc add` with a copy cache, first and "
                                                         "again (dvc from .venv-dvc/ or PATH)")
    p.add_argument("--keep", action="store_true", help="keep the work dir")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the table shows medians (default 3)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--rss-files", type=int, metavar="N", help="only time cas import of N tiny PNGs + peak RSS")
    p.add_argument("--only-cp", action="store_true", help="skip the cas steps (harness check without cas)")
    args = p.parse_args(argv)
    base = Path(args.workdir).resolve() if args.workdir else REPO / ".bench-tmp"
    made_base = not base.exists()
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dedup-", dir=base))
    print(f"work dir: {work}")
    try:
        result = rss_mode(args, work) if args.rss_files else dedup_mode(args, work)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
            print(f"wrote {args.json}")
        return 0
    except BenchError as e:
        print(f"\nERROR: {e}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept work dir: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
            if made_base:
                try:
                    base.rmdir()
                except OSError:
                    pass


if __name__ == "__main__":
    sys.exit(main())
