"""Crash tests of packs: `cas` subprocesses that pack medium blobs, SIGKILLed part-way, and
the invariant after each kill.

PACK_MAX is raised to 1 MiB in every interpreter such a subprocess starts (its worker pool's
forkserver too) by a sitecustomize on its PYTHONPATH: images of 50-300 KB then go into packs
whatever the constant says in this checkout.
"""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from cas import Store
from cas.blobs.catalog import scan_blobs
from cas.ingest.workers import alive
from cas.records import PACK, BlobRecord
from tests.conftest import ROOT, processes, run_cas

MEDIUM_PACK_MAX = 1 << 20
HOOK = f"import cas.blobs.backends.packs as p\np.PACK_MAX = max(p.PACK_MAX, {MEDIUM_PACK_MAX})\n"


def packing_env(tmp_path: Path) -> dict[str, str]:
    hook = tmp_path / "packing-hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(HOOK)
    return {**os.environ, "PYTHONPATH": f"{hook}:{ROOT}"}


def medium_images(folder: Path, n: int, seed: int) -> dict[str, bytes]:
    """n PNGs of noise, 50-300 KB each (uncompressed: quick to make), by file name."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i in range(n):
        side = int((rng.randint(50_000, 300_000) / 3) ** 0.5)
        buf = io.BytesIO()
        Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3)).save(buf, "PNG", compress_level=0)
        (folder / f"{seed}-{i:04d}.png").write_bytes(buf.getvalue())
        out[f"{seed}-{i:04d}.png"] = buf.getvalue()
    return out


def start(store: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """A `cas` command in a process group of its own (its workers with it)."""
    return subprocess.Popen([sys.executable, "-m", "cas", "--store", str(store), "--quiet", *args], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run(store: Path, env: dict[str, str], *args: str) -> float:
    """Run a `cas` command to its end; the seconds it took."""
    began = time.monotonic()
    proc = start(store, env, *args)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"cas {' '.join(args)} exited {proc.returncode}: {err.decode()}"
    return time.monotonic() - began


def written(store: Path) -> int:
    """Bytes in the store's files outside its index: what a running command has written so far
    (packs, loose blobs, its session's staging file). The kill points of the crash tests are
    set in these bytes, not in seconds, so that a loaded machine moves them with the work."""
    total = 0
    for root, dirs, files in os.walk(store):
        if root == str(store):
            dirs[:] = [d for d in dirs if d != "index"]
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:  # a temp file removed while we walk
                pass
    return total


def peak_written(store: Path, proc: subprocess.Popen[bytes], base: int) -> int:
    """Watch `proc` to its end: the most its store's `written` bytes rose above `base`."""
    peak = 0
    while proc.poll() is None:
        peak = max(peak, written(store) - base)
        time.sleep(0.0005)
    return peak


def wait_written(store: Path, proc: subprocess.Popen[bytes], base: int, target: int, timeout: float = 120.0) -> None:
    """Block until `proc` has written `target` bytes into its store beyond `base`, or ended."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and written(store) - base < target:
        assert time.monotonic() < deadline, f"{target} bytes never written"
        time.sleep(0.0005)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a command started by `start` and everything of its group; wait until all are gone."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    deadline = time.monotonic() + 30  # a watchdog, not a synchronisation
    while time.monotonic() < deadline and any(int(fields[2]) == proc.pid and alive(pid)
                                              for pid, fields in processes()):
        time.sleep(0.01)


def assert_intact(store: Path, expected: dict[tuple[str, str, str], bytes]) -> list[str]:
    """The invariant after a kill: every item reported stored reads back identical, no record
    points at a pack that is not there, and fsck finds nothing but leftovers (orphans, temp
    files). Returns fsck's problem lines."""
    with Store(store) as s:
        for (project, dataset, name), data in expected.items():
            assert s.read_bytes(s.ns.item(project, dataset, name).media) == data, f"{project}/{dataset}/{name}"
        with s.index.read() as txn:
            packs = {rec.pack for _key, raw in scan_blobs(s.index, txn)
                     if BlobRecord.raw_is_packed(raw) and (rec := BlobRecord.decode(raw)).location == PACK}
        missing = [name for name in packs if name is not None and not os.path.exists(s.local.pack_path(name))]
        assert not missing, f"records point into packs that are gone: {missing}"
    lines = [line for line in run_cas(store, "fsck", check=False).stdout.decode().splitlines()
             if not line.startswith("checked")]
    assert all(line.startswith(("orphan-file:", "stale-temp:")) for line in lines), lines
    return lines
