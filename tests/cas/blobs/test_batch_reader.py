"""`Store.read_many`: verified bytes of many blobs in the order asked, neighbours in an S3
pack object coalesced into one ranged GET, every other location read one by one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cas import Store
from cas.blobs import batch_reader
from cas.blobs.backends.packs import HEADER
from cas.blobs.backends.s3 import S3Backend
from cas.blobs.backends.s3packs import PackFile, new_pack_name
from cas.blobs.catalog import record_new_blob
from cas.blobs.hashing import hash_bytes
from cas.errors import CorruptBlob
from cas.records import S3PACK
from cas.versions.transfer import push_blobs
from tests.servers import RangeServer


@pytest.fixture
def pushed(tmp_path: Path, s3_store: Store) -> tuple[Store, list[bytes]]:
    """A store whose 60 small blobs were pushed (into one pack object); nothing cached."""
    local = Store.init(tmp_path / "local", net=s3_store.net)
    blobs = [os.urandom(500 + i) for i in range(60)]
    for data in blobs:
        local.put(data)
    local.config.s3 = s3_store.config.s3
    local.save_config()
    assert push_blobs(local).failed == 0
    yield local, blobs
    local.close()


def counting_gets(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    gets: list[tuple[int, int]] = []
    get_range = S3Backend.get_range

    def counted(self: S3Backend, key: str, offset: int, length: int, what: str) -> bytes:
        gets.append((offset, length))
        return get_range(self, key, offset, length, what)
    monkeypatch.setattr(S3Backend, "get_range", counted)
    return gets


def test_neighbours_in_a_pack_come_in_one_get_then_from_the_cache(pushed: tuple[Store, list[bytes]],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    store, blobs = pushed
    ids = [hash_bytes(d) for d in blobs]
    assert {store.stat(b).location for b in ids} == {S3PACK}
    gets = counting_gets(monkeypatch)
    wanted = ids[::-2]  # any order, with gaps of one entry: still one run
    assert [(b, data) for b, data in store.read_many(wanted)] == [(b, blobs[ids.index(b)]) for b in wanted]
    assert len(gets) == 1
    assert [data for _b, data in store.read_many(wanted)] == [blobs[ids.index(b)] for b in wanted]
    assert len(gets) == 1, "the second pass is served by the cache"


def test_far_apart_entries_are_separate_gets(pushed: tuple[Store, list[bytes]],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    store, blobs = pushed
    monkeypatch.setattr(batch_reader, "GAP", HEADER.size)  # only entries side by side join
    gets = counting_gets(monkeypatch)
    by_offset = sorted((hash_bytes(d) for d in blobs), key=lambda b: store.stat(b).offset)
    wanted = [by_offset[0], by_offset[2], by_offset[3]]
    assert [b for b, _data in store.read_many(wanted)] == wanted
    assert len(gets) == 2


def test_every_other_location_is_read_one_by_one(pushed: tuple[Store, list[bytes]], http_server: RangeServer) -> None:
    from cas.ingest.session import ImportSession
    store, blobs = pushed
    big = store.put(os.urandom(100_000))  # the remote is set: an S3 object of its own
    http_server.files["/x.jpg"] = blobs[0]
    with ImportSession(store, "p") as session:
        session.add_link("d", "x.jpg", http_server.url("/x.jpg"))
        session.commit()
    link = store.ns.item("p", "d", "x.jpg").media
    first = hash_bytes(blobs[1])
    got = dict(store.read_many([big, link, first]))
    assert got[first] == blobs[1] and got[link] == blobs[0] and len(got[big]) == 100_000


def test_a_pack_entry_that_does_not_match_its_id_is_an_error_and_not_cached(pushed: tuple[Store, list[bytes]],
                                                                           tmp_path: Path) -> None:
    store, _blobs = pushed
    assert store.s3 is not None
    claimed, name = hash_bytes(b"the real bytes"), new_pack_name()
    pack = PackFile(str(tmp_path / "bad.pack"))
    entry = pack.add(claimed, b"other bytes!!!")
    pack.finish()
    store.s3.put_pack(pack.path, name, pack.entries)
    with store.index.write() as txn:
        record_new_blob(store.index, txn, claimed, entry.size, S3PACK, packed=(name, entry.offset))
    with pytest.raises(CorruptBlob, match="does not match"):
        list(store.read_many([claimed]))
    assert not store.cache.holds(claimed, entry.size)
