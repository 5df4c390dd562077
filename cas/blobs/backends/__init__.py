"""Where blob bytes live. Each backend implements the `Backend` protocol."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from cas.blobs.spool import Spooled
from cas.ids import BlobId


class Backend(Protocol):
    """Durable home of blob bytes, addressed by id."""

    location: str  # as recorded in BlobRecord.location

    def install(self, sp: Spooled, tmp_dir: str) -> None:
        """Put spooled content in place (durable once `sync` returned); consumes its temp file."""

    def sync(self) -> None:
        """Make every installed blob durable (one call per batch)."""

    def read_range(self, blob_id: BlobId, offset: int, length: int) -> bytes:
        """Up to `length` bytes from `offset` (fewer only at the end; NotFound if absent).
        Not verified: the store's readers check what they read against the id."""

    def delete(self, blob_id: BlobId) -> object:
        """Remove the bytes (absent bytes are not an error)."""

    def list_ids(self) -> Iterator[tuple[BlobId | None, str, int]]:
        """Every stored object as (id or None if the name is not an id, path or URL, size)."""
