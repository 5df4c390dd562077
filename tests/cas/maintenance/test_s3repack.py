"""gc of S3 pack objects: mostly dead packs rewritten, dead ones deleted, the dry run exact; packs
the remote's versions reach, or younger than the grace period, left alone."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cas import Store
from cas.blobs.repack import packed_entries
from cas.config import NetOptions, S3Remote
from cas.maintenance.fsck import check as fsck
from cas.maintenance.gc import collect
from cas.versions import transfer
from cas.versions.sharing import clone, push
from converters.ingest import import_source
from tests.conftest import write_images

NET = NetOptions(1.0, 5.0, 2, 0.05)
DATASETS = ("kept", "thinned", "dropped")


def packed_store(tmp_path: Path, endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch,
                 name: str = "store") -> Store:
    """A store whose items (three datasets of 120) are in S3 pack objects of ~20 items each
    (under the prefix `name`), no remote ref moved: no other store can know these packs."""
    monkeypatch.setattr(transfer, "PACK_OBJECT_TARGET", 20_000)
    for k, dataset in enumerate(DATASETS):
        if not (tmp_path / "src" / dataset).exists():
            write_images(tmp_path / "src" / dataset, 120, prefix=dataset, start=300 * k)  # no two alike
    store = Store.init(tmp_path / name, NET)
    import_source(store, tmp_path / "src", "p", "images")
    store.config.s3 = S3Remote(bucket, name, endpoint)
    store.config.s3_grace_seconds = 0
    store.save_config()
    store.close()
    store = Store(tmp_path / name, NET)
    assert transfer.push_blobs(store).failed == 0
    return store


def thin_out(store: Store) -> dict[tuple[str, str], bytes]:
    """Remove every item of `dropped` and three in four of `thinned`; the bytes of those left."""
    left = {}
    for dataset in DATASETS:
        for i, (name, rec) in enumerate(list(store.ns.items("p", dataset))):
            if dataset == "dropped" or (dataset == "thinned" and i % 4):
                store.ns.remove_item("p", dataset, name)
            else:
                left[(dataset, name)] = store.read_bytes(rec.media)
    return left


def packs_in_use(store: Store) -> set[str]:
    """The S3 packs the store's records point into (the items' and the trees')."""
    return set(packed_entries(store, here=False)[0])


def listed_packs(store: Store) -> set[str]:
    assert store.s3 is not None
    return {name for name, _url, _size in store.s3.list_packs() if name is not None}


def assert_reads_back(store: Store, left: dict[tuple[str, str], bytes]) -> None:
    shutil.rmtree(store.cache.dir, ignore_errors=True)  # from S3, not from the cache
    store._cache = None
    for (dataset, name), data in left.items():
        assert store.read_bytes(store.ns.item("p", dataset, name).media) == data, (dataset, name)


def test_gc_rewrites_mostly_dead_s3_packs_and_deletes_dead_ones(tmp_path: Path, s3_endpoint: str, bucket: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    store = packed_store(tmp_path, s3_endpoint, bucket, monkeypatch)
    try:
        before = listed_packs(store)
        left = thin_out(store)
        dry = collect(store, dry_run=True)
        assert dry.s3_packs_compacted >= 5 and dry.s3_pack_bytes_copied > 0 and not dry.s3_packs_kept, dry
        done = collect(store)
        assert {**vars(done), "dry_run": True} == vars(dry)
        after = listed_packs(store)
        assert after == packs_in_use(store), "every pack left is one the records point into"
        assert len(after - before) == 1, "the rewrites share one new pack"
        assert len(after) < len(before) / 2
        assert_reads_back(store, left)
        assert fsck(store).clean
        again = collect(store, dry_run=True)
        assert not (again.s3_packs_compacted or again.blobs_removed or again.bytes_freed), again
    finally:
        store.close()


def test_gc_leaves_the_packs_holding_blobs_of_shared_versions(tmp_path: Path, s3_endpoint: str, bucket: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    store = packed_store(tmp_path, s3_endpoint, bucket, monkeypatch)
    other = Store.init(tmp_path / "other", NET)
    try:
        left = thin_out(store)
        push(store, "p")  # the items left are in a shared version now (the dead ones in none)
        other.config.s3 = store.config.s3
        other.save_config()
        clone(other, "p")  # its records point into the same packs
        before = listed_packs(store)
        report = collect(store)
        assert report.s3_packs_compacted >= 2 and report.s3_pack_bytes_copied == 0, report  # the dropped ones
        assert report.s3_packs_kept >= 2, report  # the thinned ones: another store may point into them
        assert listed_packs(store) == packs_in_use(store) < before
        assert_reads_back(other, left)
    finally:
        store.close()
        other.close()


def test_gc_keeps_the_dead_records_of_a_young_pack(tmp_path: Path, s3_endpoint: str, bucket: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    store = packed_store(tmp_path, s3_endpoint, bucket, monkeypatch)
    try:
        before = listed_packs(store)
        thin_out(store)
        store.config.s3_grace_seconds = 3600
        young = collect(store)
        assert young.s3_packs_compacted == 0 and young.young_kept >= 120, young
        assert listed_packs(store) == before
        store.config.s3_grace_seconds = 0  # later: the same packs, now old enough, are still this store's
        old = collect(store)
        assert old.s3_packs_compacted >= 5 and old.blobs_removed >= young.young_kept, old
        assert listed_packs(store) == packs_in_use(store)
    finally:
        store.close()


GC = """
import sys
from cas.maintenance import s3repack
s3repack.PACK_OBJECT_TARGET = 3_000  # several new packs: more moments between two steps
from cas import Store
from cas.maintenance.gc import collect
with Store(sys.argv[1]) as store:
    collect(store)
"""
S3_KILLS = 6


def test_sigkill_during_a_gc_of_s3_packs_loses_nothing(tmp_path: Path, s3_endpoint: str, bucket: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after a random number of changes to the bucket (packs deleted or added, counted by
    watching it; 0: once the pending names are written), then: every item left reads back,
    no record points at a pack S3 does not have, fsck is clean, the next gc's dry run is what
    it does, and after it the bucket holds only packs that records point into."""
    import random
    import subprocess
    import sys
    import time

    from cas.maintenance.s3repack import PENDING
    from tests.conftest import ROOT
    rng = random.Random(28)
    total = None
    outcomes = []
    for i in range(S3_KILLS + 1):  # the first round runs to its end: the number of changes a gc makes
        store = packed_store(tmp_path, s3_endpoint, bucket, monkeypatch, f"s{i}")
        left = thin_out(store)
        before = listed_packs(store)
        store.close()
        proc = subprocess.Popen([sys.executable, "-c", GC, str(tmp_path / f"s{i}")],
                                env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE)
        store = Store(tmp_path / f"s{i}", NET)
        try:
            if total is None:
                _out, err = proc.communicate(timeout=120)
                assert proc.returncode == 0, err.decode()
                total = len(before ^ listed_packs(store))
                assert total >= 5, total
            else:
                target = rng.randint(0, total)
                deadline = time.monotonic() + 120  # a watchdog, not a synchronisation
                while proc.poll() is None and (len(before ^ listed_packs(store)) < target if target
                                               else not (tmp_path / f"s{i}" / PENDING).exists()):
                    assert time.monotonic() < deadline, "the gc never got there"
                    time.sleep(0.001)
                finished = proc.poll() is not None
                proc.kill()
                proc.wait()
                outcomes.append((target, finished))
            assert_reads_back(store, left)
            assert set(packed_entries(store, here=False)[0]) <= listed_packs(store), "records point at packs S3 lacks"
            report = fsck(store)
            assert all(p.kind in ("orphan-file", "stale-temp") for p in report.problems), report.problems
            dry = collect(store, dry_run=True)
            assert {**vars(collect(store)), "dry_run": True} == vars(dry)
            assert listed_packs(store) == packs_in_use(store), "no pack object left behind"
            assert_reads_back(store, left)
            assert fsck(store).clean
        finally:
            store.close()
    print("kills (changes to the bucket before the kill, finished first):", outcomes, f"of {total}")
    assert sum(1 for _target, finished in outcomes if not finished) >= S3_KILLS // 2, outcomes
