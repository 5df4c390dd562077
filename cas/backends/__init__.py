"""Where blob bytes live. Each backend implements the `Backend` protocol."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from ..ids import BlobId


class Backend(Protocol):
    """Durable home of blob bytes, addressed by id."""

    def install(self, tmp_path: str, blob_id: BlobId) -> None:
        """Move a finished temp file into place (not yet durable: see `sync`)."""

    def sync(self) -> None:
        """Make every installed blob durable (one call per batch)."""

    def open_fd(self, blob_id: BlobId) -> int:
        """A read-only descriptor on the blob's bytes."""

    def delete(self, blob_id: BlobId) -> int:
        """Remove the bytes; return how many bytes were freed (0 if absent)."""

    def list_ids(self) -> Iterator[tuple[BlobId | None, str, int]]:
        """Every stored file as (id or None if the name is not an id, path, size)."""
