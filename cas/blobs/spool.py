"""Read a source once, hashing as it goes: small files into memory, large ones
streamed into a temp file. What is hashed is exactly what is written, so a
source that changes meanwhile can never be stored under a wrong digest."""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from typing import BinaryIO

from cas.blobs.hashing import Hasher, hash_bytes
from cas.ids import BlobId

SMALL = 8 << 20  # at or below this, content is read into memory; above, streamed to a temp file
CHUNK = 1 << 20
HEAD = 256 << 10  # header bytes kept from a streamed file for probing

_counter = itertools.count()


def _new_temp(tmp_dir: str) -> tuple[int, str]:
    """A fresh read-only temp file; names come from a counter (no random-name cost)."""
    while True:
        path = f"{tmp_dir}/blob-{os.getpid()}-{next(_counter)}"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444), path
        except FileExistsError:
            continue


def _link_temp(source: str, tmp_dir: str) -> str:
    """A temp name for an existing file (a hard link: no byte is copied)."""
    while True:
        path = f"{tmp_dir}/blob-{os.getpid()}-{next(_counter)}"
        try:
            os.link(source, path)
            return path
        except FileExistsError:
            continue


@dataclass(slots=True)
class Spooled:
    """A hashed source: content in `data` or in a temp file `tmp`; `head` is what an image
    probe may read (the whole content when it is in memory)."""

    id: BlobId
    size: int
    head: bytes
    tail: bytes
    data: bytes | None = None
    tmp: str | None = None
    stat: os.stat_result | None = None  # of a source file, taken before it was read ...
    looked_at: int = 0  # ... at this time (ns; for the stat cache's racy-timestamp rule)
    owned: str | None = None  # a file of the store's own with these bytes: the temp file links it

    def write_temp(self, tmp_dir: str) -> str:
        """Make sure the content sits in a temp file (written once) and return its path."""
        if self.tmp is None and self.owned is not None:
            self.tmp = _link_temp(self.owned, tmp_dir)
        if self.tmp is None:
            fd, path = _new_temp(tmp_dir)
            self.tmp = path
            try:
                view = memoryview(self.data if self.data is not None else b"")
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        return self.tmp

    @property
    def file(self) -> str | None:
        """A file holding the content, if there is one (a temp file, or the owned source)."""
        return self.tmp if self.tmp is not None else self.owned

    def release(self) -> None:
        """Let go of the in-memory copy (a temp file stays)."""
        self.data = None
        self.head = b""

    def discard(self) -> None:
        """Release everything, temp file included."""
        self.release()
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass
            self.tmp = None


def spool_bytes(data: bytes) -> Spooled:
    return Spooled(hash_bytes(data), len(data), data, data[-64:], data=data)


def _hash_blocks(src: BinaryIO, first: bytes = b"", out: BinaryIO | None = None) -> Spooled:
    """Hash a stream (`first`: bytes already read from it), keeping its head and tail for
    probing; every block also goes to `out` when given."""
    h = Hasher()
    head = tail = b""
    block = first
    while True:
        if block:
            h.update(block)
            if len(head) < HEAD:
                head += block[: HEAD - len(head)]
            tail = (tail + block)[-64:]
            if out is not None:
                out.write(block)
        block = src.read(CHUNK)
        if not block:
            break
    return Spooled(h.digest(), h.size, head, tail)


def spool_stream(src: BinaryIO, tmp_dir: str, head: bytes = b"") -> Spooled:
    """Copy a stream to a temp file while hashing it (`head`: bytes already read from it)."""
    fd, path = _new_temp(tmp_dir)
    try:
        with os.fdopen(fd, "wb", buffering=0) as out:
            sp = _hash_blocks(src, head, out)
    except BaseException:
        os.unlink(path)
        raise
    sp.tmp = path
    return sp


def spool_path(path: str, tmp_dir: str, owned: bool = False) -> Spooled:
    """Read a file once: small files into memory, large ones streamed to a temp file. The
    result carries the file's stat, taken before the read, and when it was taken.

    `owned`: the file is the store's own and stays unchanged until the blob is in place (a
    drop's staged file): it becomes the blob by a hard link, its bytes are never copied."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        looked_at = time.time_ns()
        st = os.fstat(fd)
        size = st.st_size
        if size > SMALL and owned:
            with os.fdopen(os.dup(fd), "rb", buffering=0) as f:
                sp = _hash_blocks(f)
            sp.owned = path
        elif size > SMALL:
            with os.fdopen(os.dup(fd), "rb", buffering=0) as f:
                sp = spool_stream(f, tmp_dir)
        else:
            data = os.read(fd, size + 1)
            while len(data) < size:  # short reads are legal
                more = os.read(fd, size - len(data))
                if not more:
                    break
                data += more
            sp = spool_bytes(data)
            if owned:
                sp.owned = path
    finally:
        os.close(fd)
    sp.stat, sp.looked_at = st, looked_at
    return sp
