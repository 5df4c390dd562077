"""One suite for every place a blob's bytes can be (cas.blobs.backends.places): a local file,
an entry of a local pack, an S3 object and an entry of an S3 pack object (moto's server), a
link (the loopback HTTP server). Each is reached through `Places.of(record)`, as the store does."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cas.blobs.backends.local import LocalBackend
from cas.blobs.backends.packs import PackWriter
from cas.blobs.backends.places import Place, Places
from cas.blobs.backends.s3 import S3Backend
from cas.blobs.backends.s3packs import PackFile, new_pack_name
from cas.blobs.hashing import hash_bytes
from cas.blobs.spool import spool_bytes
from cas.config import NetOptions, S3Remote, StoreConfig
from cas.errors import CasError, NotFound
from cas.ids import BlobId
from cas.records import LINK, LOCAL, PACK, S3, S3PACK, BlobRecord

NET = NetOptions(1.0, 5.0, 2, 0.05)
Put = Callable[[bytes], tuple[BlobId, BlobRecord]]


def _places(tmp_path: Path, request: pytest.FixtureRequest, with_s3: bool) -> tuple[Places, LocalBackend, Any]:
    local = LocalBackend(tmp_path / "store")
    s3 = None
    if with_s3:
        endpoint, bucket = request.getfixturevalue("s3_endpoint"), request.getfixturevalue("bucket")
        s3 = S3Backend(S3Remote(bucket, "pre", endpoint), NET)
    return Places(local, s3, NET, StoreConfig(), str(tmp_path / "store")), local, s3


def _local(tmp_path: Path, request: pytest.FixtureRequest) -> Put:
    _p, local, _s3 = _places(tmp_path, request, False)

    def put(data: bytes) -> tuple[BlobId, BlobRecord]:
        sp = spool_bytes(data)
        local.install(sp, str(local.tmp_dir))
        return sp.id, BlobRecord(len(data), location=LOCAL)
    return put


def _pack(tmp_path: Path, request: pytest.FixtureRequest) -> Put:
    _p, local, _s3 = _places(tmp_path, request, False)
    writer = PackWriter(local.pack_dir)
    request.addfinalizer(writer.close)

    def put(data: bytes) -> tuple[BlobId, BlobRecord]:
        blob_id = hash_bytes(data)
        writer.append(hash_bytes(b"a neighbour" + data), b"a neighbour")
        name, offset = writer.append(blob_id, data)
        return blob_id, BlobRecord(len(data), location=PACK, pack=name, offset=offset)
    return put


def _s3(tmp_path: Path, request: pytest.FixtureRequest) -> Put:
    _p, _local, s3 = _places(tmp_path, request, True)

    def put(data: bytes) -> tuple[BlobId, BlobRecord]:
        sp = spool_bytes(data)
        s3.install(sp, str(tmp_path))
        return sp.id, BlobRecord(len(data), location=S3)
    return put


def _s3pack(tmp_path: Path, request: pytest.FixtureRequest) -> Put:
    _p, _local, s3 = _places(tmp_path, request, True)

    def put(data: bytes) -> tuple[BlobId, BlobRecord]:
        blob_id, name = hash_bytes(data), new_pack_name()
        pack = PackFile(str(tmp_path / name))
        pack.add(hash_bytes(b"before" + data), b"before")
        entry = pack.add(blob_id, data)
        pack.add(hash_bytes(b"after" + data), b"after")
        pack.finish()
        s3.put_pack(pack.path, name, [])  # remembered empty: the places below read the index from S3
        s3._pack_indexes.clear()
        return blob_id, BlobRecord(len(data), location=S3PACK, pack=name, offset=entry.offset)
    return put


def _link(tmp_path: Path, request: pytest.FixtureRequest) -> Put:
    server = request.getfixturevalue("http_server")

    def put(data: bytes) -> tuple[BlobId, BlobRecord]:
        blob_id = hash_bytes(data)
        server.files[f"/{blob_id.hex()}.bin"] = data
        return blob_id, BlobRecord(len(data), location=LINK, url=server.url(f"/{blob_id.hex()}.bin"))
    return put


@pytest.fixture(params=[_local, _pack, _s3, _s3pack, _link], ids=["local", "pack", "s3", "s3pack", "link"])
def put(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Put]:
    yield request.param(tmp_path, request)


@pytest.fixture
def places(tmp_path: Path, request: pytest.FixtureRequest, put: Put) -> Places:
    with_s3 = "s3" in request.node.callspec.id
    return _places(tmp_path, request, with_s3)[0]


DATA = bytes(range(256)) * 10 + b"end"  # small enough for a pack


def test_the_place_of_a_record_is_its_location(places: Places, put: Put) -> None:
    _blob, rec = put(DATA)
    assert places.of(rec).location == rec.location


def test_bytes_read_back_exactly_at_any_range(places: Places, put: Put) -> None:
    blob, rec = put(DATA)
    place = places.of(rec)
    assert place.read_range(blob, rec, 0, len(DATA)) == DATA
    assert place.read_range(blob, rec, 100, 50) == DATA[100:150]
    assert place.read_range(blob, rec, len(DATA) - 3, 100) == b"end"  # fewer only at the end, never a neighbour's
    assert place.read_range(blob, rec, len(DATA), 10) == b""
    assert place.read_range(blob, rec, 5, 0) == b""


def test_the_reader_path_gives_the_same_bytes(places: Places, put: Put) -> None:
    blob, rec = put(DATA)
    place = places.of(rec)
    if place.here:
        fd, base = place.open_fd(blob, rec)
        try:
            assert os.pread(fd, len(DATA), base) == DATA
        finally:
            os.close(fd)
        return
    fetcher = place.fetcher(blob, rec)
    assert fetcher.head()[0] == len(DATA)
    for start, end in ((0, None), (2, 5), (len(DATA) - 3, len(DATA) + 10)):
        stream = fetcher.open(start, end)
        try:
            assert (stream.total, b"".join(stream.chunks)) == (len(DATA), DATA[start:end])
        finally:
            stream.close()


def test_the_file_of_bytes_here_holds_them_and_remote_ones_have_none(places: Places, put: Put) -> None:
    blob, rec = put(DATA)
    place = places.of(rec)
    path = place.file_of(blob, rec)
    if not place.here:
        assert path is None
        return
    assert path is not None
    with open(path, "rb") as f:
        f.seek(rec.offset)
        assert f.read(len(DATA)) == DATA


def test_a_place_says_where_the_bytes_are(places: Places, put: Put) -> None:
    blob, rec = put(DATA)
    where = places.of(rec).describe(blob, rec)
    expected = {LOCAL: "its loose file", PACK: f"pack {rec.pack} at offset {rec.offset}",
                S3: "S3 object s3://", S3PACK: "S3 pack object s3://", LINK: f"its link {rec.url}"}
    assert where.startswith(expected[rec.location])
    if rec.pack is not None:
        assert f"{rec.pack}" in where and f"at offset {rec.offset}" in where


def test_size_of_what_is_there(places: Places, put: Put) -> None:
    blob, rec = put(DATA)
    assert places.of(rec).size_of(blob, rec) == len(DATA)


def absent(rec: BlobRecord) -> BlobRecord:
    """The record of a blob whose bytes are not where it says."""
    if rec.pack is not None:
        return replace(rec, pack=new_pack_name() if rec.location == S3PACK else "1-00ff00ff00ff00ff")
    if rec.url is not None:
        return replace(rec, url=rec.url.replace(".bin", "-gone.bin"))
    return rec


def test_absent_bytes_are_not_found(places: Places, put: Put) -> None:
    blob, rec = put(DATA)
    other = hash_bytes(b"never stored")
    gone = absent(rec)
    place = places.of(gone)
    if place.owns_bytes:
        assert place.size_of(other, gone) is None
        with pytest.raises(NotFound):
            place.read_range(other, gone, 0, 10)
    else:  # a link's URL that answers 404: an error naming it
        with pytest.raises(CasError, match="-gone.bin: HTTP 404"):
            place.read_range(blob, gone, 0, 10)


def test_delete_frees_what_it_says_and_absent_is_no_error(places: Places, put: Put) -> None:
    blob, rec = put(DATA)
    place = places.of(rec)
    freed = place.delete(blob, rec)
    assert freed in (0, len(DATA))  # 0: a pack entry (freed when its pack is rewritten), a link
    if freed:
        assert place.size_of(blob, rec) is None
    place.delete(blob, rec)


def test_listing_shows_what_is_ours(places: Places, put: Put) -> None:
    blob, rec = put(DATA)
    place = places.of(rec)
    listed = {blob_id: size for blob_id, _where, size in place.list_ids()}
    assert listed.get(blob) == (len(DATA) if place.owns_bytes else None)


def test_s3_locations_without_a_remote_are_a_clear_error(tmp_path: Path) -> None:
    places = Places(LocalBackend(tmp_path / "s"), None, NET, StoreConfig(), str(tmp_path / "s"))
    for location in (S3, S3PACK):
        with pytest.raises(NotFound, match="in S3 but the store has no S3 remote"):
            places.of(BlobRecord(3, location=location))


def test_every_location_has_a_place(tmp_path: Path, s3_endpoint: str, bucket: str) -> None:
    s3 = S3Backend(S3Remote(bucket, "pre", s3_endpoint), NET)
    places = Places(LocalBackend(tmp_path / "s"), s3, NET, StoreConfig(), str(tmp_path / "s"))
    found: list[Place] = places.all()
    assert sorted(p.location for p in found) == sorted((LOCAL, PACK, S3, S3PACK, LINK))
