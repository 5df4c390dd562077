"""The remote reader's fill, cache writer and read-ahead, over a local file fetcher
(small chunk and window sizes, so that every path is taken on small data)."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cas.blobs import remote_reader as remote
from cas.blobs.backends import fetch
from cas.blobs.backends.fetch import FileFetcher
from cas.blobs.cache import BlobCache
from cas.blobs.hashing import hash_bytes
from cas.blobs.remote_reader import RemoteReader
from cas.config import NetOptions

SIZE = 300_000


@pytest.fixture(autouse=True)
def tiny_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote, "SMALL", 1000)
    monkeypatch.setattr(remote, "FIRST_WINDOW", 8192)
    monkeypatch.setattr(remote, "MAX_WINDOW", 65536)
    monkeypatch.setattr(remote, "MAX_UNWRITTEN", 32768)
    monkeypatch.setattr(remote, "KEEP_BEHIND", 10_000)
    monkeypatch.setattr(fetch, "CHUNK", 5000)


def reader_for(tmp_path: Path, data: bytes, cache_bytes: int = 10 << 20) -> tuple[RemoteReader, BlobCache]:
    path = tmp_path / "blob"
    path.write_bytes(data)
    cache = BlobCache(tmp_path / "store", cache_bytes)
    blob = hash_bytes(data)
    return RemoteReader(FileFetcher(f"file://{path}", str(path)), blob, len(data), blob, None, cache,
                        NetOptions(retries=1, backoff=0.01)), cache


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, SIZE + 100), st.integers(1, 40_000)), max_size=30),
       st.integers(0, 1000), st.booleans())
def test_any_reads_return_the_right_bytes(tmp_path_factory, reads, seed, cached) -> None:
    """Cached (fill file plus writer) or larger than the cache (streamed through memory)."""
    tmp_path = tmp_path_factory.mktemp("r")
    data = random.Random(seed).randbytes(SIZE)
    reader, cache = reader_for(tmp_path, data, 10 << 20 if cached else SIZE - 1)
    with reader:
        for offset, length in reads:
            assert reader.read_at(length, offset) == data[offset:offset + length]
        pos = 0
        while chunk := reader.read_at(7000, pos):  # then a full sequential read
            assert chunk == data[pos:pos + len(chunk)]
            pos += len(chunk)
        assert pos == SIZE
    assert os.path.exists(cache.path(reader.id)) == cached, "a complete read lands in the cache, if it fits"
    assert not os.listdir(cache.tmp_dir)


@pytest.mark.parametrize("cache_bytes", [10 << 20, 1000])
def test_concurrent_readers_share_one_fill(tmp_path: Path, cache_bytes: int) -> None:
    data = random.Random(1).randbytes(SIZE)
    reader, cache = reader_for(tmp_path, data, cache_bytes)
    errors: list[str] = []

    def read_part(start: int) -> None:
        for offset in range(start, SIZE, 8 * 4096):
            if reader.read_at(4096, offset) != data[offset:offset + 4096]:
                errors.append(f"bad bytes at {offset}")

    threads = [threading.Thread(target=read_part, args=(i * 4096,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reader.close()
    assert not errors


def test_closing_early_leaves_nothing_behind(tmp_path: Path) -> None:
    data = random.Random(2).randbytes(SIZE)
    reader, cache = reader_for(tmp_path, data)
    assert reader.read_at(100, 0) == data[:100]
    reader.close()
    for _ in range(100):
        if not os.listdir(cache.tmp_dir):
            break
        threading.Event().wait(0.02)
    assert not os.listdir(cache.tmp_dir)
    assert not os.path.exists(cache.path(reader.id))
