"""S3-backed stores against a real local S3 endpoint (moto server mode, boto3 over HTTP)."""

from __future__ import annotations

import os

import boto3
import pytest

from cas import Store
from cas.errors import CorruptBlob
from cas.maintenance.fsck import check as fsck
from cas.maintenance.gc import collect as collect_garbage
from cas.maintenance.stats import compute as compute_stats
from cas.records import S3
from tests.conftest import jpeg_bytes, write_images


def s3(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint)


def test_put_uploads_once_and_reads_back(s3_store: Store, s3_endpoint: str, bucket: str) -> None:
    data = os.urandom(300_000)
    blob = s3_store.put(data)
    assert s3_store.stat(blob).location == S3
    obj = s3(s3_endpoint).get_object(Bucket=bucket, Key=f"pre/blobs/{blob.hex()}")
    assert obj["Body"].read() == data
    assert not list(s3_store.local.list_ids()), "nothing stored locally"
    assert s3_store.read_bytes(blob) == data  # fetched
    assert s3_store.read_bytes(blob) == data  # from the cache
    assert s3_store.cache.counters.hits == 1 and s3_store.cache.counters.misses == 1


def test_known_blob_is_never_uploaded_again(s3_store: Store, s3_endpoint: str, bucket: str) -> None:
    blob = s3_store.put(b"same bytes")
    s3(s3_endpoint).delete_object(Bucket=bucket, Key=f"pre/blobs/{blob.hex()}")
    assert s3_store.put(b"same bytes") == blob  # dedup decided from the index: no upload
    keys = s3(s3_endpoint).list_objects_v2(Bucket=bucket).get("KeyCount", 0)
    assert keys == 0


def test_large_blob_is_a_multipart_upload_and_reads_with_read_ahead(s3_store: Store, s3_endpoint: str,
                                                                    bucket: str, tmp_path) -> None:
    data = os.urandom(20 << 20)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    blob = s3_store.put(path)
    head = s3(s3_endpoint).head_object(Bucket=bucket, Key=f"pre/blobs/{blob.hex()}")
    assert "-" in head["ETag"], "a multipart upload's ETag ends in -<parts>"
    with s3_store.open(blob) as reader:
        assert reader.pread(100, 5_000_000) == data[5_000_000:5_000_100]  # a read far ahead: ranged GET
    with s3_store.open(blob) as reader:
        got = b"".join(iter(lambda: reader.read(1 << 17), b""))
    assert got == data
    assert os.path.exists(s3_store.cache.path(blob)), "verified fill became a cache entry"
    assert s3_store.read_bytes(blob) == data


def test_import_to_s3_and_export(s3_store: Store, tmp_path) -> None:
    from converters.ingest import import_source
    from converters.supervisely import write
    write_images(tmp_path / "src" / "ds", 40)
    report, _ = import_source(s3_store, tmp_path / "src", "p", "images")
    assert report.items_added == 40
    assert {s3_store.stat(rec.media).location for _n, rec in s3_store.ns.items("p", "ds")} == {S3}
    write(s3_store, "p", tmp_path / "out")
    for src in (tmp_path / "src" / "ds").iterdir():
        assert (tmp_path / "out" / "ds" / "img" / src.name).read_bytes() == src.read_bytes()
    assert fsck(s3_store).clean


def test_replaced_object_is_detected_and_not_cached(s3_store: Store, s3_endpoint: str, bucket: str) -> None:
    small, large = jpeg_bytes(), os.urandom(6 << 20)
    for data in (small, large):
        blob = s3_store.put(data)
        forged = bytearray(data)
        forged[len(forged) // 2] ^= 0xFF
        s3(s3_endpoint).put_object(Bucket=bucket, Key=f"pre/blobs/{blob.hex()}", Body=bytes(forged))
        with pytest.raises(CorruptBlob, match="does not match"):
            s3_store.read_bytes(blob)
        assert not os.path.exists(s3_store.cache.path(blob)), "a bad fetch never becomes a cache entry"
        assert not os.listdir(s3_store.cache.tmp_dir)


def test_cache_is_lru_and_capped(s3_store: Store) -> None:
    s3_store.config.cache_size = 250_000
    s3_store._cache = None
    blobs = [s3_store.put(os.urandom(100_000)) for _ in range(4)]
    for blob in blobs[:2]:
        s3_store.read_bytes(blob)
    s3_store.read_bytes(blobs[0])  # most recent now
    os.utime(s3_store.cache.path(blobs[1]), ns=(1, 1))  # clearly the least recent
    s3_store.read_bytes(blobs[2])
    assert os.path.exists(s3_store.cache.path(blobs[0]))
    assert not os.path.exists(s3_store.cache.path(blobs[1]))
    assert s3_store.cache.used() <= 250_000


def test_corrupt_cache_entry_is_dropped_and_refetched(s3_store: Store) -> None:
    data = os.urandom(50_000)
    blob = s3_store.put(data)
    s3_store.read_bytes(blob)
    path = s3_store.cache.path(blob)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.write(b"X")
    with pytest.raises(CorruptBlob):
        s3_store.read_bytes(blob)
    assert not os.path.exists(path)
    assert s3_store.read_bytes(blob) == data


def test_crash_leftovers_in_the_cache_are_swept(s3_store: Store) -> None:
    dead = s3_store.cache.tmp_dir / "fill-999999-1"
    dead.write_bytes(b"half a blob")
    fresh = Store(s3_store.root)
    try:
        fresh.cache  # noqa: B018 - made on first use, which sweeps
        assert not dead.exists()
    finally:
        fresh.close()


def test_gc_deletes_unreferenced_s3_objects(s3_store: Store, s3_endpoint: str, bucket: str) -> None:
    blob = s3_store.put(b"temporary")
    s3_store.release(blob)
    report = collect_garbage(s3_store)
    assert (report.blobs_removed, report.young_kept) == (0, 1), "too young: a push elsewhere may need it"
    s3_store.config.s3_grace_seconds = 0
    report = collect_garbage(s3_store)
    assert report.blobs_removed == 1
    assert s3(s3_endpoint).list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_fsck_finds_a_missing_s3_object(s3_store: Store, s3_endpoint: str, bucket: str) -> None:
    blob = s3_store.put(b"will vanish")
    s3(s3_endpoint).delete_object(Bucket=bucket, Key=f"pre/blobs/{blob.hex()}")
    report = fsck(s3_store)
    assert [p.kind for p in report.problems] == ["missing-blob"]


def test_unreachable_endpoint_fails_clearly_and_records_nothing(tmp_path, bucket: str) -> None:
    import socket

    from cas.blobs.backends.fetch import RemoteError
    from cas.config import NetOptions, S3Remote
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed
    store = Store.init(tmp_path / "dead", net=NetOptions(0.5, 0.5, 1, 0.01))
    try:
        store.config.s3 = S3Remote(bucket, "pre", dead)
        store.save_config()
        with pytest.raises(RemoteError, match=rf"s3://{bucket}/pre/blobs/\w+: cannot connect"):
            store.put(b"never stored")
        assert compute_stats(store)["blobs"] == 0
        write_images(tmp_path / "src" / "ds", 3)
        from converters.ingest import import_source
        with pytest.raises(RemoteError):
            import_source(store, tmp_path / "src", "p", "images")
        assert not store.ns.has_project("p") and compute_stats(store)["blobs"] == 0
    finally:
        store.close()


def _clients_in_child() -> int:
    from cas.blobs.backends import s3 as backend
    return len(backend._clients)


def test_a_forked_child_never_uses_the_parents_s3_clients(s3_store: Store) -> None:
    """A client's connection pool holds sockets the parent uses too."""
    import multiprocessing

    from cas.blobs.backends import s3 as backend
    blob = s3_store.put(b"some bytes")
    assert s3_store.read_bytes(blob) == b"some bytes" and backend._clients
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_clients_in_child) == 0


def _client_made_from_the_parents_session(parent_session: int) -> bool:
    from cas.blobs.backends import s3 as backend
    from cas.config import NetOptions
    backend.s3_client("http://127.0.0.1:9", None, NetOptions(1.0, 1.0, 0, 0.0))
    return id(backend._session) == parent_session and len(backend._clients) == 1


def test_a_forked_child_makes_its_s3_clients_from_the_parents_session(s3_store: Store) -> None:
    """Its service models are loaded: a DataLoader worker makes its client in ~10 ms, not ~70."""
    import multiprocessing

    from cas.blobs.backends import s3 as backend
    assert s3_store.s3 is not None
    s3_store.s3.client  # noqa: B018 - made here, with the session
    assert backend._session is not None
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_client_made_from_the_parents_session, (id(backend._session),))


def test_s3_errors_name_the_key_and_say_the_status_in_words(s3_store: Store, bucket: str) -> None:
    from cas.blobs.backends.fetch import RemoteError
    from cas.ids import BlobId
    missing = BlobId(bytes(16))
    assert s3_store.s3 is not None
    with pytest.raises(RemoteError) as raised:
        s3_store.s3.fetcher(missing).head()
    assert str(raised.value) == f"s3://{bucket}/pre/blobs/{missing.hex()}: HTTP 404 Not Found"
    assert s3_store.s3.size_of(missing) is None  # not found is an answer, not an error
