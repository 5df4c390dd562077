"""gc: the dry run reports exactly what the real run then does, also after a killed import."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cas import Store
from cas.ingest.workers import alive
from tests.conftest import ROOT, processes, run_cas, write_images

FILES = 2500  # more than one batch, and past the threshold of worker processes


def in_group(pgid: int) -> list[int]:
    """The live processes of a process group."""
    return [pid for pid, fields in processes() if int(fields[2]) == pgid and alive(pid)]


def recorded_blobs(store: Path) -> int:
    with Store(store) as s, s.index.read() as txn:
        return txn.stat(s.index.db["blobs"])["entries"]


def test_dry_run_says_what_gc_then_does_after_an_import_killed_part_way(tmp_path: Path) -> None:
    src, store = tmp_path / "src", tmp_path / "store"
    write_images(src / "old", 20, "old")
    run_cas(store, "import", str(src / "old"), "--project", "old")
    write_images(src / "new", FILES, "new", start=100)
    before = recorded_blobs(store)
    proc = subprocess.Popen([sys.executable, "-m", "cas", "--store", str(store), "--quiet", "import",
                             str(src / "new"), "--project", "p", "--format", "images"],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120  # a watchdog, not a synchronisation
    while proc.poll() is None and recorded_blobs(store) == before and time.monotonic() < deadline:
        time.sleep(0.005)  # until a first batch of the import is recorded (unreferenced until its commit)
    assert proc.poll() is None, "the import ended before it could be killed part-way"
    os.killpg(proc.pid, signal.SIGKILL)  # the import, its forkserver and its worker processes
    proc.wait()
    while in_group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not in_group(proc.pid)
    assert json.loads(run_cas(store, "stats", "--json").stdout)["items"] == 20

    dry = json.loads(run_cas(store, "gc", "--dry-run", "--json").stdout)
    assert dry["blobs_removed"] > 0 and dry["temp_removed"] > 0 and dry["stat_entries_dropped"] > 0, dry
    done = json.loads(run_cas(store, "gc", "--json").stdout)
    assert {**done, "dry_run": True} == dry
    assert run_cas(store, "fsck").returncode == 0
    assert json.loads(run_cas(store, "gc", "--dry-run", "--json").stdout) == {**{k: 0 for k in dry}, "dry_run": True}


REPACK_KILLS = 6


def test_sigkill_during_a_repack_loses_nothing_stored(tmp_path: Path) -> None:
    """gc rewrites two mostly dead packs into one: killed at a random point of it, the live
    items read back, no record points at a pack that is gone, and the next gc (its dry run
    exactly) finishes the work."""
    import random
    import shutil

    from tests import packing
    env = packing.packing_env(tmp_path)
    base = tmp_path / "base"
    packing.run(base, env, "init")
    kept = {}
    for seed in (1, 2):
        images = packing.medium_images(tmp_path / "src" / f"d{seed}", 240, seed)
        packing.run(base, env, "import", str(tmp_path / "src" / f"d{seed}"), "--project", "p")
        with Store(base) as s:
            for i, name in enumerate(images):
                if i % 4:
                    s.ns.remove_item("p", f"d{seed}", name)
                else:
                    kept[("p", f"d{seed}", name)] = images[name]
    with Store(base) as s:
        packs_before = sum(size for _n, _p, size in s.local.list_packs())

    shutil.copytree(base, tmp_path / "calibrate")
    before = packing.written(tmp_path / "calibrate")
    proc = packing.start(tmp_path / "calibrate", env, "gc")
    new_pack = packing.peak_written(tmp_path / "calibrate", proc, before)  # the rewrite's pack, before the unlinks
    assert proc.returncode == 0, proc.stderr.read().decode()
    rng = random.Random(28)
    outcomes = []
    for i in range(REPACK_KILLS):
        store = tmp_path / f"store{i}"
        shutil.copytree(base, store)
        before = packing.written(store)
        proc = packing.start(store, env, "gc")
        # The random point of the kill, in bytes of the new pack; the last round waits for all
        # of them: its kill lands in the sync, the records or the unlinks.
        target = new_pack if i == REPACK_KILLS - 1 else int(rng.uniform(0.0, new_pack))
        packing.wait_written(store, proc, before, target)
        finished = proc.poll() == 0
        packing.kill_group(proc)
        lines = packing.assert_intact(store, kept)
        dry = json.loads(run_cas(store, "gc", "--dry-run", "--json").stdout)
        done = json.loads(run_cas(store, "gc", "--json").stdout)
        assert {**done, "dry_run": True} == dry
        packing.assert_intact(store, kept)
        assert run_cas(store, "fsck").returncode == 0
        with Store(store) as s:
            assert sum(size for _n, _p, size in s.local.list_packs()) < packs_before / 2
        outcomes.append((finished, dry["packs_compacted"], len(lines)))
    print("kills (finished first, packs left to compact, leftover lines):", outcomes, f"of a {new_pack}-byte pack")
    assert sum(1 for finished, _, _ in outcomes if not finished) >= REPACK_KILLS // 2, outcomes
