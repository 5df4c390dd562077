"""Runs of S3 pack objects: a reader that walks a pushed dataset in order gets each run of
the pack in one GET (counted at the server), whichever process asks; a lone read gets only
its blob; a bad entry in a run is an error and the run is not kept."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from cas import Store
from cas.blobs import pack_runs
from cas.blobs.backends.s3packs import PackFile, new_pack_name
from cas.blobs.catalog import record_new_blob
from cas.blobs.hashing import hash_bytes
from cas.config import S3Remote
from cas.errors import CorruptBlob
from cas.ids import BlobId
from cas.records import S3PACK
from cas.versions.transfer import push_blobs
from tests.servers import CountingS3

SLOT = 4096  # small runs, so that 60 small blobs fill several


@pytest.fixture
def pushed(tmp_path: Path, s3_store: Store, counting_s3: CountingS3,
           monkeypatch: pytest.MonkeyPatch) -> tuple[Store, list[BlobId], list[bytes]]:
    """60 blobs of ~500 bytes pushed into one pack object, read through the counting endpoint;
    their ids in pack order; nothing cached."""
    monkeypatch.setattr(pack_runs, "SLOT", SLOT)
    monkeypatch.setattr(pack_runs, "REACH", 1024)  # past a run's slot: more than any blob here
    local = Store.init(tmp_path / "local", net=s3_store.net)
    blobs = [os.urandom(500 + i) for i in range(60)]
    for data in blobs:
        local.put(data)
    assert s3_store.config.s3 is not None
    local.config.s3 = S3Remote(s3_store.config.s3.bucket, s3_store.config.s3.prefix, counting_s3.url)
    local.save_config()
    assert push_blobs(local).failed == 0
    ids = sorted((hash_bytes(d) for d in blobs), key=lambda b: local.stat(b).offset)
    assert {local.stat(b).location for b in ids} == {S3PACK}
    yield local, ids, [blobs[[hash_bytes(d) for d in blobs].index(b)] for b in ids]
    local.close()


def runs_cached(store: Store) -> list[str]:
    where = store.cache.dir / "runs"
    return sorted(os.listdir(where)) if where.exists() else []


def read_one(store: Store, blob_id: BlobId) -> bytes:
    with store.open(blob_id) as reader:
        return reader.readall()


def test_a_walk_in_pack_order_reads_each_run_in_one_get(pushed: tuple[Store, list[BlobId], list[bytes]],
                                                         counting_s3: CountingS3) -> None:
    store, ids, blobs = pushed
    before = counting_s3.gets()
    assert [read_one(store, b) for b in ids] == blobs  # as `cp -r` reads files through the mount
    store.pack_runs.close()  # the read-ahead in flight is done
    runs = len(runs_cached(store))
    end = store.stat(ids[-1]).offset + len(blobs[-1])
    assert runs >= end // SLOT  # the runs cover the pack (and maybe one past it, empty)
    assert counting_s3.gets() - before == 1 + runs  # the first blob alone; then a GET per run
    assert [read_one(store, b) for b in ids] == blobs
    assert counting_s3.gets() - before == 1 + runs, "a second walk is served by the cache"


def test_a_lone_read_gets_only_its_blob(pushed: tuple[Store, list[BlobId], list[bytes]],
                                        counting_s3: CountingS3) -> None:
    store, ids, blobs = pushed
    before = counting_s3.gets()
    assert read_one(store, ids[30]) == blobs[30]
    assert read_one(store, ids[5]) == blobs[5]  # behind the last read: no walk
    assert counting_s3.gets() - before == 2
    assert runs_cached(store) == []


def test_a_cache_too_small_for_runs_reads_a_blob_at_a_time(pushed: tuple[Store, list[BlobId], list[bytes]],
                                                          counting_s3: CountingS3) -> None:
    store, ids, blobs = pushed
    store.config.cache_size = 50_000  # a few runs of SLOT bytes would not fit
    before = counting_s3.gets()
    assert dict(store.read_many(ids)) == dict(zip(ids, blobs))
    assert [read_one(store, b) for b in ids] == blobs
    assert runs_cached(store) == []
    assert counting_s3.gets() - before == 1  # one coalesced GET of their bytes; then each from the cache


def _read_all(root: Path, ids: list[BlobId]) -> None:
    with Store(root) as store:
        assert len(list(store.read_many(ids))) == len(ids)


def test_processes_reading_the_same_runs_fetch_each_once(pushed: tuple[Store, list[BlobId], list[bytes]],
                                                         counting_s3: CountingS3) -> None:
    store, ids, blobs = pushed
    before = counting_s3.gets()
    ctx = multiprocessing.get_context("fork")  # SLOT as patched here
    readers = [ctx.Process(target=_read_all, args=(store.root, ids)) for _ in range(4)]
    for p in readers:
        p.start()
    for p in readers:
        p.join(60)
        assert p.exitcode == 0
    assert counting_s3.gets() - before == len(runs_cached(store))
    assert dict(store.read_many(ids)) == dict(zip(ids, blobs))


def test_a_run_with_a_bad_entry_is_an_error_and_not_kept(pushed: tuple[Store, list[BlobId], list[bytes]],
                                                         tmp_path: Path, counting_s3: CountingS3) -> None:
    store, _ids, _blobs = pushed
    assert store.s3 is not None
    name, pack = new_pack_name(), PackFile(str(tmp_path / "bad.pack"))
    good = [os.urandom(300) for _ in range(5)]
    claimed = hash_bytes(b"the real bytes")
    entries = [(hash_bytes(d), pack.add(hash_bytes(d), d)) for d in good[:2]]
    entries.append((claimed, pack.add(claimed, b"other bytes!!!")))
    entries += [(hash_bytes(d), pack.add(hash_bytes(d), d)) for d in good[2:]]
    pack.finish()
    store.s3.put_pack(pack.path, name, pack.entries)
    with store.index.write() as txn:
        for blob_id, entry in entries:
            record_new_blob(store.index, txn, blob_id, entry.size, S3PACK, packed=(name, entry.offset))
    wanted = [blob_id for blob_id, _entry in entries]
    for _attempt in range(2):  # the bad run is dropped, so the error is found again, not served
        with pytest.raises(CorruptBlob, match=str(claimed)):
            list(store.read_many(wanted))
        assert not any(run.startswith(name) for run in runs_cached(store))
