"""One suite for every blob backend (local files, S3 through moto's server, memory): what
the store relies on, the same for each."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cas.blobs.backends import Backend
from cas.blobs.backends.local import LocalBackend
from cas.blobs.backends.memory import MemoryBackend
from cas.blobs.backends.s3 import S3Backend
from cas.blobs.hashing import hash_bytes
from cas.blobs.spool import SMALL, spool_bytes, spool_path
from cas.config import NetOptions, S3Remote
from cas.errors import NotFound
from cas.ids import BlobId

BIG = SMALL + 17  # over the in-memory spool size: installed from a temp file


def _local(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Backend, Callable[[str, bytes], None]]:
    backend = LocalBackend(tmp_path / "store")

    def foreign(name: str, data: bytes) -> None:
        (backend.blob_dir / name).write_bytes(data)
    return backend, foreign


def _s3(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Backend, Callable[[str, bytes], None]]:
    endpoint, bucket = request.getfixturevalue("s3_endpoint"), request.getfixturevalue("bucket")
    backend = S3Backend(S3Remote(bucket, "pre", endpoint), NetOptions(1.0, 5.0, 2, 0.05))

    def foreign(name: str, data: bytes) -> None:
        backend.client.put_object(Bucket=bucket, Key=backend.remote.key(f"blobs/{name}"), Body=data)
    return backend, foreign


def _memory(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Backend, Callable[[str, bytes], None]]:
    backend = MemoryBackend()
    return backend, backend.put_object


@pytest.fixture(params=[_local, _s3, _memory], ids=["local", "s3", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Backend, Callable[[str, bytes], None]]]:
    yield request.param(tmp_path, request)


@pytest.fixture
def tmp_dir(tmp_path: Path) -> str:
    path = tmp_path / "tmp"
    path.mkdir()
    return str(path)


def install_bytes(b: Backend, data: bytes, tmp_dir: str) -> BlobId:
    sp = spool_bytes(data)
    b.install(sp, tmp_dir)
    return sp.id


def listed(b: Backend) -> dict[Any, int]:
    return {blob_id: size for blob_id, _where, size in b.list_ids()}


def test_installed_bytes_read_back_exactly_at_any_range(backend: Any, tmp_dir: str):
    b, _ = backend
    data = bytes(range(256)) * 40 + b"end"
    blob = install_bytes(b, data, tmp_dir)
    b.sync()
    assert b.read_range(blob, 0, len(data)) == data
    assert b.read_range(blob, 100, 50) == data[100:150]
    assert b.read_range(blob, len(data) - 3, 100) == b"end"  # fewer only at the end
    assert b.read_range(blob, len(data), 10) == b""
    assert b.read_range(blob, 5, 0) == b""


def test_a_large_blob_installs_from_its_temp_file_and_the_temp_file_is_consumed(backend: Any, tmp_path: Path,
                                                                                 tmp_dir: str):
    b, _ = backend
    source = tmp_path / "big.bin"
    data = os.urandom(BIG)
    source.write_bytes(data)
    sp = spool_path(str(source), tmp_dir)
    assert sp.id == hash_bytes(data) and sp.tmp is not None and sp.data is None
    b.install(sp, tmp_dir)
    b.sync()
    assert os.listdir(tmp_dir) == []  # consumed: nothing left to clean
    assert b.read_range(sp.id, 0, BIG) == data
    assert b.read_range(sp.id, BIG - 10, 10) == data[-10:]
    assert listed(b) == {sp.id: BIG}


def test_installing_the_same_blob_twice_keeps_one_copy(backend: Any, tmp_dir: str):
    b, _ = backend
    first = install_bytes(b, b"same bytes", tmp_dir)
    again = install_bytes(b, b"same bytes", tmp_dir)
    assert first == again and listed(b) == {first: 10}


def test_listing_names_every_object_and_a_foreign_one_without_an_id(backend: Any, tmp_dir: str):
    b, foreign = backend
    a = install_bytes(b, b"a" * 7, tmp_dir)
    c = install_bytes(b, b"c" * 1000, tmp_dir)
    foreign("not-a-blob-id", b"xyz")
    entries = list(b.list_ids())
    assert {blob_id: size for blob_id, _where, size in entries if blob_id is not None} == {a: 7, c: 1000}
    strays = [(where, size) for blob_id, where, size in entries if blob_id is None]
    assert len(strays) == 1 and strays[0][0].endswith("not-a-blob-id") and strays[0][1] == 3


def test_delete_removes_and_deleting_what_is_absent_is_no_error(backend: Any, tmp_dir: str):
    b, _ = backend
    keep, drop = install_bytes(b, b"keep", tmp_dir), install_bytes(b, b"drop", tmp_dir)
    b.delete(drop)
    b.delete(drop)
    assert listed(b) == {keep: 4}
    with pytest.raises(NotFound):
        b.read_range(drop, 0, 4)
    assert b.read_range(keep, 0, 4) == b"keep"


def test_every_backend_declares_its_location(backend: Any):
    b, _ = backend
    assert isinstance(b.location, str) and b.location
