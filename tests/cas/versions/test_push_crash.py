"""SIGKILL a push of pack objects at several moments (before any pack is up, after some):
nothing reported stored is lost, no record points at a pack S3 does not have, fsck passes
(a killed push may leave its pack file in tmp/: a stale temp, removed by --repair), and a
rerun finishes the push."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cas import Store
from cas.config import NetOptions, S3Remote
from cas.maintenance.fsck import ORPHAN_KINDS
from cas.maintenance.fsck import check as fsck
from cas.records import S3PACK, STORED_HERE
from converters.ingest import import_source
from tests.conftest import ROOT, write_images

NET = NetOptions(1.0, 5.0, 2, 0.05)
PUSH = """
import sys
from cas.versions import transfer
transfer.PACK_OBJECT_TARGET = 8_000  # many small packs: the kill lands between two
from cas import Store
from cas.versions.sharing import push
with Store(sys.argv[1]) as store:
    push(store, "p")
"""


def pack_count(store: Store) -> int:
    assert store.s3 is not None
    return sum(1 for name, _url, _size in store.s3.list_packs() if name is not None)


def wait_until(condition, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and proc.poll() is None:
        assert time.monotonic() < deadline, "the push never got there"
        time.sleep(0.002)


def test_sigkill_during_a_push_of_packs_loses_nothing(tmp_path: Path, s3_endpoint: str, bucket: str) -> None:
    src = tmp_path / "src"
    paths = write_images(src / "ds", 400)
    killed = []
    for round_, packs_up in enumerate((0, 2, 6)):
        root = tmp_path / f"store{round_}"
        with Store.init(root, NET) as store:
            import_source(store, src, "p", "images")
            store.config.s3 = S3Remote(bucket, f"r{round_}", s3_endpoint)
            store.save_config()
        proc = subprocess.Popen([sys.executable, "-c", PUSH, str(root)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        with Store(root, NET) as store:
            if packs_up:
                wait_until(lambda s=store, n=packs_up: pack_count(s) >= n, proc)
            else:
                wait_until(lambda tmp=root / "tmp": any(n.startswith("s3pack-") for n in os.listdir(tmp)), proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed.append(proc.returncode == -signal.SIGKILL)
        with Store(root, NET) as store:
            report = fsck(store)
            assert all(p.kind in ORPHAN_KINDS for p in report.problems), [str(p) for p in report.problems]
            locations = set()
            for path in paths:  # every item readable, wherever its bytes are now
                item = store.ns.item("p", "ds", path.name)
                locations.add(store.stat(item.media).location)
                assert store.read_bytes(item.media) == path.read_bytes()
            assert locations <= {S3PACK, *STORED_HERE}
        with Store(root, NET) as store:
            fsck(store, repair=True)
            subprocess.run([sys.executable, "-c", PUSH, str(root)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                           check=True, capture_output=True)
            assert fsck(store).clean
            for path in paths:
                item = store.ns.item("p", "ds", path.name)
                assert store.stat(item.media).location == S3PACK
                assert store.read_bytes(item.media) == path.read_bytes()
    assert sum(killed) >= 2, killed
