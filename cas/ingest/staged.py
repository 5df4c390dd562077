"""A file being written through the mount: its bytes in one spool file in the mount's staging
directory, hashed as they arrive in order, so that a sequential copy is never read back."""

from __future__ import annotations

import itertools
import os
import threading

from ..hashing import Hasher, hash_file
from ..ids import BlobId

_names = itertools.count()


class StagedFile:
    """Spool file `path`; `seal()` hands it over (to the journal), after which it never changes.

    The descriptor is open only while someone uses the file (`open` / `release` counted),
    so that thousands of staged files do not hold thousands of descriptors.
    """

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd
        self.users = 1  # whoever created it
        self.sealed = False
        self._lock = threading.RLock()
        self._hasher: Hasher | None = Hasher()  # None once a write lands out of order

    def open(self) -> "StagedFile":
        """One more user; the descriptor is reopened if nobody held it."""
        with self._lock:
            if self.fd < 0:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
            self.users += 1
        return self

    def release(self) -> None:
        """One user fewer; the last one closes the descriptor (the file stays)."""
        with self._lock:
            self.users -= 1
            if self.users <= 0 and self.fd >= 0:
                os.close(self.fd)
                self.fd = -1

    @classmethod
    def create(cls, directory: str, initial: bytes = b"") -> "StagedFile":
        while True:
            path = f"{directory}/s{next(_names)}"
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                break
            except FileExistsError:  # left by an earlier daemon whose directory this one adopted
                continue
        staged = cls(path, fd)
        if initial:
            staged.write(initial, 0)
        return staged

    def copy(self, directory: str) -> "StagedFile":
        """A new, unsealed file with the same bytes (a writer that goes on after a close)."""
        other = StagedFile.create(directory)
        size = self.size
        offset = 0
        while offset < size:
            offset += os.copy_file_range(self.fd, other.fd, size - offset, offset, offset)
        other._hasher = None
        return other

    def write(self, data: bytes, offset: int) -> int:
        with self._lock:
            n = os.pwrite(self.fd, data, offset)
            hasher = self._hasher
            if hasher is not None:
                if offset == hasher.size:
                    hasher.update(data[:n] if n < len(data) else data)
                else:
                    self._hasher = None
            return n

    def read(self, size: int, offset: int) -> bytes:
        with self._lock:  # the last user may close the descriptor meanwhile
            if self.fd >= 0:
                return os.pread(self.fd, size, offset)
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)

    def truncate(self, length: int) -> None:
        with self._lock:
            os.ftruncate(self.fd, length)
            if self._hasher is not None and length != self._hasher.size:
                self._hasher = None

    @property
    def size(self) -> int:
        with self._lock:
            return os.fstat(self.fd).st_size if self.fd >= 0 else os.stat(self.path).st_size

    def digest(self) -> tuple[BlobId, int]:
        """Content id and size; hashed again from the file only if it was not written in order."""
        with self._lock:
            hasher = self._hasher
            if hasher is not None and hasher.size == self.size:
                return hasher.digest(), hasher.size
        return hash_file(self.path)

    def seal(self) -> None:
        self.sealed = True

    def remove(self) -> None:
        """Unlink the file; users that still hold it keep reading and writing it."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def discard(self) -> None:
        with self._lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
