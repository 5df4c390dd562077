"""A file being written through the mount: its bytes in memory while it is small, else in one
spool file of the mount's staging directory.

A file whose bytes turn out to be a duplicate at close() is therefore never written to disk
at all, and a new one is written once, into the file that becomes its blob. Creating and
deleting a spool file per duplicate is not only a wasted write: on ext4 every inode freed in
the last seconds makes each later create slower (the allocator skips recently deleted inodes
one by one), which made a copy of 7,500 files spend half its time allocating inodes.
"""

from __future__ import annotations

import itertools
import os
import threading

from cas.blobs.hashing import Hasher, hash_bytes, hash_file
from cas.ids import BlobId
from cas.locks import renew_after_fork

MEMORY_LIMIT = 8 << 20  # a file larger than this is spooled to disk as it grows
MEMORY_BUDGET = 256 << 20  # ... and so is any file once all in-memory files hold this much

_names = itertools.count()
_budget_lock = threading.Lock()
_in_memory = 0
renew_after_fork(globals(), "_budget_lock")


def _reserve(n: int) -> bool:
    """Take `n` more bytes of the memory budget of all staged files; False if they do not fit."""
    global _in_memory
    with _budget_lock:
        if _in_memory + n > MEMORY_BUDGET:
            return False
        _in_memory += n
        return True


def _release(n: int) -> None:
    global _in_memory
    with _budget_lock:
        _in_memory -= n


class StagedFile:
    """Bytes in `_buf` (memory) or in the spool file `path`; `seal()` hands them over (to the
    journal), after which they never change.

    A spool file's descriptor is open only while someone uses the file (`open` / `release`
    counted), so that thousands of staged files do not hold thousands of descriptors.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path: str | None = None  # set once the bytes are on disk
        self.fd = -1
        self.users = 1  # whoever created it
        self.sealed = False
        self._buf: bytearray | None = bytearray()
        self._lock = threading.RLock()
        self._hasher: Hasher | None = None  # a spool file written in order: hashed as it grows

    @classmethod
    def create(cls, directory: str, initial: bytes = b"") -> StagedFile:
        staged = cls(directory)
        if initial:
            staged.write(initial, 0)
        return staged

    def __del__(self) -> None:
        if self._buf:
            _release(len(self._buf))

    def open(self) -> StagedFile:
        """One more user; a spool file's descriptor is reopened if nobody held it."""
        with self._lock:
            if self.path is not None and self.fd < 0:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
            self.users += 1
        return self

    def release(self) -> None:
        """One user fewer; the last one closes the descriptor (the bytes stay)."""
        with self._lock:
            self.users -= 1
            if self.users <= 0 and self.fd >= 0:
                os.close(self.fd)
                self.fd = -1

    # -- bytes ---------------------------------------------------------------------------------
    def write(self, data: bytes, offset: int) -> int:
        with self._lock:
            buf = self._buf
            if buf is not None:
                end = offset + len(data)
                grown = max(end - len(buf), 0)
                if end <= MEMORY_LIMIT and _reserve(grown):
                    if offset > len(buf):
                        buf.extend(bytes(offset - len(buf)))
                    buf[offset:end] = data
                    return len(data)
                self._spill(hash_on=True)
            n = os.pwrite(self.fd, data, offset)
            hasher = self._hasher
            if hasher is not None:
                if offset == hasher.size:
                    hasher.update(data[:n] if n < len(data) else data)
                else:
                    self._hasher = None
            return n

    def _spool_path(self) -> str:
        """The spool file's path: there is one once the bytes are not in the buffer."""
        assert self.path is not None
        return self.path

    def read(self, size: int, offset: int) -> bytes:
        with self._lock:
            if self._buf is not None:
                return bytes(self._buf[offset:offset + size])
            if self.fd >= 0:
                return os.pread(self.fd, size, offset)
        fd = os.open(self._spool_path(), os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)

    def getvalue(self) -> bytes:
        """All the bytes (for small files: annotations, meta)."""
        return self.read(self.size, 0)

    def truncate(self, length: int) -> None:
        with self._lock:
            buf = self._buf
            if buf is not None and length <= len(buf):
                _release(len(buf) - length)
                del buf[length:]
                return
            if buf is not None:
                self.write(b"\0" * (length - len(buf)), len(buf))
                return
            os.ftruncate(self.fd, length)
            if self._hasher is not None and length != self._hasher.size:
                self._hasher = None

    @property
    def size(self) -> int:
        with self._lock:
            if self._buf is not None:
                return len(self._buf)
            return os.fstat(self.fd).st_size if self.fd >= 0 else os.stat(self._spool_path()).st_size

    def digest(self) -> tuple[BlobId, int]:
        """Content id and size; a spool file is read again only if it was not written in order."""
        with self._lock:
            if self._buf is not None:
                return hash_bytes(self._buf), len(self._buf)
            hasher = self._hasher
            if hasher is not None and hasher.size == self.size:
                return hasher.digest(), hasher.size
            path = self._spool_path()
        return hash_file(path)

    # -- the spool file ------------------------------------------------------------------------
    def spill(self) -> str:
        """Make sure the bytes are in a spool file (written once); its path."""
        with self._lock:
            if self._buf is not None:
                self._spill(hash_on=False)  # at close: the digest is taken already
            return self._spool_path()

    def _spill(self, hash_on: bool) -> None:
        """Write the buffer to a new spool file; with `hash_on`, writes that follow in order
        keep the digest going (else `digest()` reads the file back)."""
        buf = self._buf
        assert buf is not None
        while True:
            path = f"{self.directory}/s{next(_names)}"
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                break
            except FileExistsError:  # left by an earlier daemon whose directory this one adopted
                continue
        try:
            view = memoryview(buf)
            done = 0
            while done < len(buf):
                done += os.pwrite(fd, view[done:], done)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        if hash_on:
            self._hasher = Hasher()
            self._hasher.update(buf)
        self.path = path
        self._buf = None
        _release(len(buf))
        if self.users > 0:
            self.fd = fd
        else:
            os.close(fd)

    def copy(self) -> StagedFile:
        """A new, unsealed file with the same bytes (a writer that goes on after a close)."""
        with self._lock:
            if self._buf is not None:
                return StagedFile.create(self.directory, bytes(self._buf))
        other = StagedFile(self.directory)
        other._spill(hash_on=False)
        size = self.size
        fd = self.fd if self.fd >= 0 else os.open(self._spool_path(), os.O_RDONLY | os.O_CLOEXEC)
        try:
            offset = 0
            while offset < size:
                offset += os.copy_file_range(fd, other.fd, size - offset, offset, offset)
        finally:
            if fd != self.fd:
                os.close(fd)
        return other

    def seal(self) -> None:
        self.sealed = True

    def remove(self) -> None:
        """Drop the spool file's name; users that still hold it keep reading and writing it."""
        if self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def discard(self) -> None:
        with self._lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
            if self._buf is not None:
                _release(len(self._buf))
                self._buf = bytearray()
        self.remove()
