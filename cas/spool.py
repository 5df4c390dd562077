"""Read a source once, hashing as it goes; keep small content in memory, spool large to tmp."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import BinaryIO

from .hashing import Hasher, hash_bytes
from .ids import BlobId

SMALL = 8 << 20  # at or below this, content is held in memory until it is written
CHUNK = 1 << 20
HEAD = 256 << 10  # enough for any image header we probe


@dataclass(slots=True)
class Spooled:
    """A hashed source: either `data` in memory or a temp file at `tmp`."""

    id: BlobId
    size: int
    head: bytes
    tail: bytes
    data: bytes | None = None
    tmp: str | None = None

    def write_temp(self, tmp_dir: str) -> str:
        """Make sure the content sits in a temp file (written once) and return its path."""
        if self.tmp is None:
            fd, path = tempfile.mkstemp(dir=tmp_dir, prefix="blob-")
            try:
                os.fchmod(fd, 0o444)  # blobs are immutable
                view = memoryview(self.data or b"")
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            self.tmp = path
        return self.tmp

    def discard(self) -> None:
        """Drop a temp file that is no longer needed."""
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass
            self.tmp = None
        self.data = None


def spool_bytes(data: bytes) -> Spooled:
    return Spooled(hash_bytes(data), len(data), data[:HEAD], data[-64:], data=data)


def spool_stream(src: BinaryIO, tmp_dir: str) -> Spooled:
    """Copy a stream to a temp file while hashing it."""
    h = Hasher()
    head = b""
    tail = b""
    fd, path = tempfile.mkstemp(dir=tmp_dir, prefix="blob-")
    os.fchmod(fd, 0o444)  # blobs are immutable
    try:
        with os.fdopen(fd, "wb", buffering=0) as out:
            while block := src.read(CHUNK):
                h.update(block)
                if len(head) < HEAD:
                    head += block[: HEAD - len(head)]
                tail = (tail + block)[-64:]
                out.write(block)
    except BaseException:
        os.unlink(path)
        raise
    return Spooled(h.digest(), h.size, head, tail, tmp=path)


def spool_path(path: str, tmp_dir: str) -> Spooled:
    """Read a file once: small files into memory, large ones streamed to a temp file."""
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        if size <= SMALL:
            data = f.read()
            while len(data) < size:  # short reads are legal
                more = f.read(size - len(data))
                if not more:
                    break
                data += more
            return spool_bytes(data)
        return spool_stream(f, tmp_dir)
