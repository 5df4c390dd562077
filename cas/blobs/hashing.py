"""Streaming XXH3-128 digests."""

from __future__ import annotations

import xxhash

from cas.ids import BlobId


class Hasher:
    """Feed bytes as they are read; `digest()` gives the BlobId."""

    __slots__ = ("_h", "size")

    def __init__(self) -> None:
        self._h = xxhash.xxh3_128()
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)
        self.size += len(data)

    def digest(self) -> BlobId:
        return BlobId(self._h.digest())


def hash_bytes(data: bytes | bytearray | memoryview) -> BlobId:
    """Digest of an in-memory buffer."""
    return BlobId(xxhash.xxh3_128_digest(data))


def hash_file(path: str, chunk: int = 1 << 20) -> tuple[BlobId, int]:
    """Digest and size of a file, read in chunks."""
    h = Hasher()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.digest(), h.size
