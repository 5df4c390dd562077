"""Random-access reads of a local blob (or cache entry) with pread; sequential reads are verified."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from cas.blobs.hashing import Hasher, hash_bytes
from cas.errors import HEAL_HINT, CorruptBlob
from cas.ids import BlobId

ONE_READ = 1 << 24  # bytes a full read takes in one pread (a larger blob: in chunks of it)


class BlobReader:
    """A read-only view of one blob: `pread` anywhere, or `read` from the start.

    A read that walks the whole blob from offset 0 is hashed as it goes; if the
    digest differs from the id the last read raises CorruptBlob instead of
    returning the bytes.
    """

    def __init__(self, fd: int, blob_id: BlobId, size: int,
                 on_corrupt: Callable[[], None] | None = None, base: int = 0, shared: bool = False) -> None:
        self.fd = fd
        self.id = blob_id
        self.size = size
        self.base = base  # where the blob starts in the file (a pack holds many)
        self.shared = shared or base > 0  # the file holds other bytes than the blob's (a pack, a run of one)
        self.on_corrupt = on_corrupt  # e.g. drop a cache entry that went bad
        self._lock = threading.Lock()  # the digest tracker is not thread-safe; pread is
        self._pos = 0
        self._hasher: Hasher | None = Hasher()
        self.corrupt: str | None = None  # once found corrupt, every later read fails too
        actual = os.fstat(fd).st_size - base
        if actual < size or (actual > size and not self.shared):  # a pack goes on past the blob
            os.close(fd)
            self.fd = -1
            self._corrupt(f"file has {actual} bytes, index says {size}" if not self.shared
                          else f"pack ends {actual} bytes after the blob's start, index says {size} bytes")

    @property
    def verifying(self) -> bool:
        """Still tracking a sequential read from offset 0 (or already found corrupt)."""
        return self._hasher is not None or self.corrupt is not None

    def _corrupt(self, why: str) -> None:
        if self.corrupt is None and self.on_corrupt is not None:  # the error is raised, not logged:
            self.on_corrupt()  # the caller says it once (the CLI, the mount's log)
        self.corrupt = why
        raise CorruptBlob(f"blob {self.id} is corrupt: {why}; {HEAL_HINT}")

    def read_at(self, length: int, offset: int) -> bytes:
        """`pread` that several threads may call at once."""
        if not self.verifying:  # not a sequential read from the start: a plain pread
            return self._pread(length, offset)
        with self._lock:
            return self.pread(length, offset)

    def pread(self, length: int, offset: int) -> bytes:
        """Bytes at an offset; not verified unless part of a sequential read."""
        if self.corrupt is not None:
            self._corrupt(self.corrupt)
        data = self._pread(length, offset)
        if self._hasher is not None:
            if offset == self._hasher.size:
                self._track(data)
            else:
                self._hasher = None
        return data

    def _pread(self, length: int, offset: int) -> bytes:
        if self.shared:  # never past the blob's end, into the next entry of its pack
            return os.pread(self.fd, max(min(length, self.size - offset), 0), self.base + offset)
        return os.pread(self.fd, length, offset)

    def _track(self, data: bytes) -> None:
        assert self._hasher is not None
        self._hasher.update(data)
        if self._hasher.size == self.size:
            digest = self._hasher.digest()
            self._hasher = None
            if digest != self.id:
                self._corrupt(f"content digest is {digest}")

    def read(self, length: int = -1) -> bytes:
        if length < 0:
            length = self.size - self._pos
        data = self.pread(length, self._pos)
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        """The whole blob, verified."""
        if self.corrupt is None and 0 < self.size <= ONE_READ:  # the common case: one pread, one digest
            data = self._pread(self.size, 0)
            if len(data) == self.size and hash_bytes(data) == self.id:
                self._pos, self._hasher = self.size, None
                return data
            # else the read below finds again what is wrong, and says it
        self._pos = 0
        self._hasher = Hasher()
        chunks = []
        while self._pos < self.size:
            chunk = self.read(min(ONE_READ, self.size - self._pos))
            if not chunk:
                self._corrupt("file is shorter than recorded")
            chunks.append(chunk)
        if self.size == 0:
            self._track(b"")
        return b"".join(chunks)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
