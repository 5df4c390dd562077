"""Blob bytes in a dict: the smallest complete `Backend`, for tests and as its reference."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from cas.blobs.spool import Spooled
from cas.errors import InvalidName, NotFound
from cas.ids import BlobId

MEMORY = "memory"


class MemoryBackend:
    """Durable for the life of the object (nothing to sync); safe across threads."""

    location = MEMORY

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}  # name (an id's hex, or anything put by `put_object`) -> bytes
        self._lock = threading.Lock()

    def install(self, sp: Spooled, tmp_dir: str) -> None:
        if sp.data is not None:
            data = sp.data
        else:
            with open(sp.write_temp(tmp_dir), "rb") as f:
                data = f.read()
        with self._lock:
            self._blobs[sp.id.hex()] = data
        sp.discard()

    def put_object(self, name: str, data: bytes) -> None:
        """An object under any name (what a foreign writer would leave)."""
        with self._lock:
            self._blobs[name] = data

    def sync(self) -> None:
        """Nothing to do: `install` returns once the bytes are held."""

    def read_range(self, blob_id: BlobId, offset: int, length: int) -> bytes:
        with self._lock:
            data = self._blobs.get(blob_id.hex())
        if data is None:
            raise NotFound(f"blob {blob_id} is not in memory")
        return data[offset:offset + max(length, 0)]

    def delete(self, blob_id: BlobId) -> None:
        with self._lock:
            self._blobs.pop(blob_id.hex(), None)

    def list_ids(self) -> Iterator[tuple[BlobId | None, str, int]]:
        with self._lock:
            objects = sorted(self._blobs.items())
        for name, data in objects:
            try:
                blob_id: BlobId | None = BlobId.from_hex(name)
            except InvalidName:
                blob_id = None
            yield blob_id, f"memory:{name}", len(data)
