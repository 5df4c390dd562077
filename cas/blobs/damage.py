"""Blobs whose stored bytes fsck found corrupt or missing, until good bytes replace them.

The index's `damaged` table holds blob id -> DAMAGED, set by `cas fsck`. While a blob is
marked, every path that dedups against the index (an import, `Store.put`, a mount's
commit) treats it as absent: the next copy of its bytes, hashed as it is read, is written
in its place, and the mark becomes HEALED (`catalog.record_new_blob` does it), which the
next fsck reports and drops. The table is the blob engine's: fsck, the ingest paths and
the store reach it only through these functions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cas.ids import BlobId
from cas.index import Index

DB = "damaged"
DAMAGED = b"damaged"
HEALED = b"healed"


def _state(index: Index, txn: Any, blob_id: bytes) -> bytes | None:
    if DB not in index.db:  # a store on a read-only file system, made before the table existed
        return None
    return index.get(txn, DB, bytes(blob_id))


def is_damaged(index: Index, txn: Any, blob_id: bytes) -> bool:
    """Whether fsck found the blob's bytes corrupt or missing and nothing healed it since."""
    return _state(index, txn, blob_id) == DAMAGED


def mark_damaged(index: Index, txn: Any, blob_id: BlobId) -> None:
    index.put(txn, DB, bytes(blob_id), DAMAGED)


def mark_healed(index: Index, txn: Any, blob_id: BlobId) -> bool:
    """Note that verified bytes replaced a damaged blob's; whether it was marked damaged."""
    if not is_damaged(index, txn, blob_id):
        return False
    index.put(txn, DB, bytes(blob_id), HEALED)
    return True


def forget(index: Index, txn: Any, blob_id: BlobId) -> None:
    if DB in index.db:
        index.delete(txn, DB, bytes(blob_id))


def marks(index: Index, txn: Any) -> Iterator[tuple[BlobId, bytes]]:
    """Every marked blob and its state (DAMAGED or HEALED)."""
    if DB in index.db:
        for key, state in index.scan(txn, DB):
            yield BlobId(key), state
