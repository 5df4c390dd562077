"""SIGKILL an import at random moments: the store must pass fsck (perhaps after removing
orphans) and a re-import must complete with the right counts."""

import json
import os
import random
import signal
import subprocess
import sys
import time

from cas import Store
from cas.ingest.workers import alive
from tests.conftest import ROOT, processes, run_cas, write_images
from tests.packing import peak_written, wait_written, written

FILES = 3000
KILLS = 10


def start_import(store, src, project):
    """The import as a subprocess, and the store's `written` bytes just before it began."""
    if not (store / "index").exists():
        run_cas(store, "init")
    base = written(store)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "cas", "--store", str(store), "--quiet", "import", str(src),
                             "--project", project, "--format", "images"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), base


def wait_for_session(store, proc, timeout=60.0):
    """Block until the import has opened its session (its temp dir exists)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if (store / "tmp").is_dir() and any(n.startswith("import-") for n in os.listdir(store / "tmp")):
            return
        time.sleep(0.005)


def test_sigkill_during_import_never_breaks_the_store(tmp_path):
    src = tmp_path / "src"
    write_images(src / "a", FILES // 2, "a")
    write_images(src / "b", FILES // 2, "b", start=FILES)
    # Each round's kill point is a random share of the bytes its kind of import writes (packs,
    # staging), measured on a first store: a fresh import, then one whose blobs are all known.
    calibrate = tmp_path / "calibrate"
    peaks = []
    for project in ("p", "q"):
        proc, base = start_import(calibrate, src, project)
        peaks.append(peak_written(calibrate, proc, base))
        assert proc.returncode == 0, proc.stderr.read().decode()
    rng = random.Random(1234)
    outcomes = []
    for i in range(KILLS):
        store = tmp_path / f"store{i}"
        if i % 2:  # odd rounds: kill an import into a store that already holds the same blobs
            run_cas(store, "import", str(src), "--project", "old")
        target = int(rng.uniform(0.0, peaks[i % 2]))
        proc, base = start_import(store, src, "p")
        wait_for_session(store, proc)
        wait_written(store, proc, base, target)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stats = json.loads(run_cas(store, "stats", "--json").stdout)
        visible = stats["items"] - (FILES if i % 2 else 0)
        assert visible in (0, FILES), f"round {i}: a partial import is visible ({visible} items)"
        check = run_cas(store, "fsck", check=False)
        lines = [line for line in check.stdout.decode().splitlines() if not line.startswith("checked")]
        assert all(line.startswith(("orphan-file:", "stale-temp:")) for line in lines), lines
        if check.returncode != 0:
            run_cas(store, "fsck", "--repair")
            assert run_cas(store, "fsck").returncode == 0
        run_cas(store, "import", str(src), "--project", "p")
        stats = json.loads(run_cas(store, "stats", "--json").stdout)
        assert stats["items"] == FILES * (2 if i % 2 else 1)
        assert run_cas(store, "fsck").returncode == 0
        run_cas(store, "gc")
        assert json.loads(run_cas(store, "stats", "--json").stdout)["unreferenced_blobs"] == 0
        outcomes.append((target, proc.returncode, len(lines)))
    print("kills (bytes written, status, orphan lines):", outcomes, f"of {peaks} bytes")
    assert sum(1 for _, status, _ in outcomes if status == -signal.SIGKILL) >= KILLS // 2, outcomes


def children(pid):
    """Pids whose parent is `pid`."""
    return [child for child, fields in processes() if int(fields[1]) == pid]


def test_workers_leave_when_their_import_is_killed(tmp_path):
    """The pool's workers are the forkserver's children: nothing stops them when the import is
    SIGKILLed, and its zombie (not reaped here on purpose) still answers kill(pid, 0)."""
    src = tmp_path / "src"
    write_images(src, FILES, "w")
    store = tmp_path / "store"
    proc, _base = start_import(store, src, "p")
    workers: list[int] = []
    deadline = time.monotonic() + 60  # a watchdog, not a synchronisation
    while not workers and proc.poll() is None and time.monotonic() < deadline:
        workers = [w for child in children(proc.pid) for w in children(child)]
        time.sleep(0.005)
    assert workers, "the import ended before any worker process was seen"
    proc.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.02)
    left = [w for w in workers if alive(w)]
    proc.wait()
    assert not left, f"workers {left} outlived their import"


PACKED_FILES = 300  # 50-300 KB each: ~50 MB, all of it packed
PACK_KILLS = 6


def test_sigkill_during_an_import_into_packs_loses_nothing_stored(tmp_path):
    """Imports append medium blobs to packs: one killed part-way leaves the packs of the
    imports that finished whole, and no record into a pack it did not finish."""
    from tests.packing import assert_intact, kill_group, medium_images, packing_env, run, start
    env = packing_env(tmp_path)
    done = medium_images(tmp_path / "src" / "done", PACKED_FILES // 3, seed=1)
    killed = medium_images(tmp_path / "src" / "killed", PACKED_FILES, seed=2)
    for i, name in enumerate(list(killed)[::4]):  # a quarter of the killed import is known already: dedup hits
        killed[name] = list(done.values())[i % len(done)]
        (tmp_path / "src" / "killed" / name).write_bytes(killed[name])
    calibrate = tmp_path / "calibrate"
    run(calibrate, env, "init")
    run(calibrate, env, "import", str(tmp_path / "src" / "done"), "--project", "done")
    base = written(calibrate)
    proc = start(calibrate, env, "import", str(tmp_path / "src" / "killed"), "--project", "p")
    full = peak_written(calibrate, proc, base)  # the bytes the killed import writes when let be
    assert proc.returncode == 0, proc.stderr.read().decode()
    rng = random.Random(28)
    outcomes = []
    for i in range(PACK_KILLS):
        store = tmp_path / f"store{i}"
        run(store, env, "init")
        run(store, env, "import", str(tmp_path / "src" / "done"), "--project", "done")
        expected = {("done", "done", name): data for name, data in done.items()}
        with Store(store) as s:
            assert all(s.stat(s.ns.item("done", "done", name).media).location == "pack" for name in done)
        base = written(store)
        proc = start(store, env, "import", str(tmp_path / "src" / "killed"), "--project", "p")
        wait_for_session(store, proc)
        wait_written(store, proc, base, int(rng.uniform(0.0, full)))  # the random point of the kill
        finished = proc.poll() == 0
        kill_group(proc)
        if finished:
            expected |= {("p", "killed", name): data for name, data in killed.items()}
        lines = assert_intact(store, expected)
        run_cas(store, "fsck", "--repair")
        run(store, env, "import", str(tmp_path / "src" / "killed"), "--project", "p")
        assert_intact(store, expected | {("p", "killed", name): data for name, data in killed.items()})
        run_cas(store, "gc")
        assert run_cas(store, "fsck").returncode == 0
        outcomes.append((finished, len(lines)))
    print("kills (finished first, leftover lines):", outcomes, f"of {full} bytes")
    assert sum(1 for finished, _ in outcomes if not finished) >= PACK_KILLS // 2, outcomes
