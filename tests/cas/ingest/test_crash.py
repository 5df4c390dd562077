"""SIGKILL an import at random moments: the store must pass fsck (perhaps after removing
orphans) and a re-import must complete with the right counts."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

from cas import Store
from cas.ingest.workers import alive
from tests.conftest import ROOT, processes, run_cas, write_images

FILES = 3000
KILLS = 10


def start_import(store, src, project):
    if not (store / "index").exists():
        run_cas(store, "init")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "cas", "--store", str(store), "--quiet", "import", str(src),
                             "--project", project, "--format", "images"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


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
    durations = []
    for project in ("p", "q"):  # the session's own duration, warm and (second) all dedup hits
        out = run_cas(tmp_path / "calibrate", "import", str(src), "--project", project).stdout.decode()
        durations.append(float(re.search(r"in ([0-9.]+) s", out).group(1)))
    full = min(durations)
    rng = random.Random(1234)
    outcomes = []
    for i in range(KILLS):
        store = tmp_path / f"store{i}"
        if i % 2:  # odd rounds: kill an import into a store that already holds the same blobs
            run_cas(store, "import", str(src), "--project", "old")
        delay = rng.uniform(0.0, 0.9 * full)
        proc = start_import(store, src, "p")
        wait_for_session(store, proc)
        time.sleep(delay)
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
        outcomes.append((round(delay, 2), proc.returncode, len(lines)))
    print("kills (delay s, status, orphan lines):", outcomes, f"import session {full:.2f} s")
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
    proc = start_import(store, src, "p")
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
    run(tmp_path / "calibrate", env, "init")
    full = run(tmp_path / "calibrate", env, "import", str(tmp_path / "src" / "killed"), "--project", "p")
    rng = random.Random(28)
    outcomes = []
    for i in range(PACK_KILLS):
        store = tmp_path / f"store{i}"
        run(store, env, "init")
        run(store, env, "import", str(tmp_path / "src" / "done"), "--project", "done")
        expected = {("done", "done", name): data for name, data in done.items()}
        with Store(store) as s:
            assert all(s.stat(s.ns.item("done", "done", name).media).location == "pack" for name in done)
        proc = start(store, env, "import", str(tmp_path / "src" / "killed"), "--project", "p")
        wait_for_session(store, proc)
        time.sleep(rng.uniform(0.0, 0.9 * full))  # the random point of the kill
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
    print("kills (finished first, leftover lines):", outcomes, f"import {full:.2f} s")
    assert sum(1 for finished, _ in outcomes if not finished) >= PACK_KILLS // 2, outcomes
