"""Staged files: in memory while small, spooled to disk once large, hashed either way."""

from __future__ import annotations

import os

from cas.blobs.hashing import hash_bytes
from cas.ingest import StagedFile
from cas.ingest import staged as staged_module


def test_a_small_file_stays_in_memory_until_spilled(tmp_path):
    f = StagedFile.create(str(tmp_path), b"hello")
    f.write(b"!", 10)  # a hole is zeros, as in a file
    assert f.path is None and not list(tmp_path.iterdir())
    assert f.size == 11 and f.read(20, 0) == b"hello\0\0\0\0\0!"
    f.truncate(5)
    assert f.digest() == (hash_bytes(b"hello"), 5)
    path = f.spill()
    assert open(path, "rb").read() == b"hello" and f.read(5, 0) == b"hello"
    f.write(b" world", 5)  # goes on in the file
    assert f.digest() == (hash_bytes(b"hello world"), 11)
    f.release()
    assert f.fd == -1 and f.read(5, 6) == b"world" and f.size == 11


def test_a_large_file_is_spooled_as_it_grows_and_out_of_order_writes_are_rehashed(tmp_path, monkeypatch):
    monkeypatch.setattr(staged_module, "MEMORY_LIMIT", 1 << 16)
    data = os.urandom(3 << 16)
    f = StagedFile.create(str(tmp_path))
    for at in range(0, len(data), 1 << 14):
        f.write(data[at:at + (1 << 14)], at)
    assert f.path is not None and os.path.getsize(f.path) == len(data)
    assert f.digest() == (hash_bytes(data), len(data))
    f.write(b"X", 5)  # out of order: the digest reads the file again
    changed = data[:5] + b"X" + data[6:]
    assert f.digest() == (hash_bytes(changed), len(data))
    copy = f.copy()
    assert copy.getvalue() == changed and copy.path != f.path
    f.discard()
    assert not os.path.exists(str(f.path))


def test_memory_beyond_the_budget_spills(tmp_path, monkeypatch):
    monkeypatch.setattr(staged_module, "MEMORY_BUDGET", 1 << 16)
    held = [StagedFile.create(str(tmp_path), os.urandom(1 << 14)) for _ in range(8)]
    on_disk = [f for f in held if f.path is not None]
    assert 0 < len(on_disk) < 8  # the first ones fit in memory, the rest went to disk
    for f in held:
        f.discard()
    assert StagedFile.create(str(tmp_path), b"x").path is None  # discarding gave the memory back
