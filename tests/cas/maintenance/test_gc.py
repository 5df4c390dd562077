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
