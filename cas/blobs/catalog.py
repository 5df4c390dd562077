"""The blobs and pins tables: each blob's record (size, where its bytes are, reference count)
and the references `Store.put` callers hold. The only module that names these tables: the
others read and write blob records through the functions here."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from cas.blobs import damage
from cas.errors import CasError, NotFound
from cas.ids import BlobId
from cas.index import Index
from cas.records import LOCAL, PACK, PACKED, BlobRecord

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Callable, Iterator

    import lmdb


def get_blob(index: Index, txn: lmdb.Transaction[bytes], blob_id: BlobId) -> BlobRecord | None:
    raw = index.get(txn, "blobs", bytes(blob_id))
    return BlobRecord.decode(raw) if raw is not None else None


def raw_blob_getter(index: Index, txn: lmdb.Transaction[bytes]) -> Callable[[bytes], bytes | None]:
    """A fast lookup of encoded records by raw id, for loops over many blobs in one transaction."""
    return index.getter(txn, "blobs")


def put_blob(index: Index, txn: lmdb.Transaction[bytes], blob_id: BlobId, rec: BlobRecord) -> None:
    """Replace a blob's record (its bytes moved, or a link learned its content)."""
    index.put(txn, "blobs", bytes(blob_id), rec.encode())


def delete_blob(index: Index, txn: lmdb.Transaction[bytes], blob_id: BlobId) -> bool:
    """Forget a blob's record (gc, fsck)."""
    return index.delete(txn, "blobs", bytes(blob_id))


def scan_blobs(index: Index, txn: lmdb.Transaction[bytes], after: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
    """(raw id, encoded record) of every blob in id order, from the first id past `after`."""
    for key, raw in index.scan_range(txn, "blobs", after, None, b""):
        if key != after or not after:
            yield key, raw


def count_blobs(index: Index, txn: lmdb.Transaction[bytes]) -> int:
    return index.count(txn, "blobs")


def record_new_blob(index: Index, txn: lmdb.Transaction[bytes], blob_id: BlobId, size: int,
                    location: str = LOCAL, refcount: int = 0, packed: tuple[str, int] | None = None) -> bool:
    """Record a blob whose bytes are already durable (in a pack at `packed`: its name and the
    offset of the bytes; a local pack unless `location` says S3PACK); False if it was known
    already. A blob marked damaged is healed: its record moves to the new bytes (keeping its
    references), and True is returned."""
    old = get_blob(index, txn, blob_id)
    if old is not None and not damage.mark_healed(index, txn, blob_id):
        return False
    refcount, created = (old.refcount, old.created) if old is not None else (refcount, time.time_ns())
    rec = BlobRecord(size, refcount, location, created) if packed is None else \
        BlobRecord(size, refcount, location if location in PACKED else PACK, created, pack=packed[0], offset=packed[1])
    index.put(txn, "blobs", bytes(blob_id), rec.encode())
    return True


def known_intact(index: Index, txn: lmdb.Transaction[bytes], blob_id: BlobId) -> bool:
    """Whether the index has the blob and no fsck found its bytes damaged since: a dedup hit.
    A damaged blob is absent to the dedup paths, which write its bytes again (the heal)."""
    return index.get(txn, "blobs", bytes(blob_id)) is not None and not damage.is_damaged(index, txn, blob_id)


def adjust_refcount(index: Index, txn: lmdb.Transaction[bytes], blob_id: BlobId, delta: int) -> BlobRecord:
    """Add `delta` to a blob's reference count (never below zero)."""
    rec = get_blob(index, txn, blob_id)
    if rec is None:
        raise NotFound(f"blob {blob_id} is not in the index")
    refcount = rec.refcount + delta
    if refcount < 0:
        raise CasError(f"reference count of blob {blob_id} would drop below zero; `cas fsck --repair` recounts "
                       "references")
    rec = rec.with_refcount(refcount)
    index.put(txn, "blobs", bytes(blob_id), rec.encode())
    return rec


def record_link(index: Index, txn: lmdb.Transaction[bytes], blob_id: BlobId, rec: BlobRecord) -> bool:
    """Record a link entry (with the references `rec` gives) unless it is known; False if it was."""
    return index.put(txn, "blobs", bytes(blob_id), rec.encode(), overwrite=False)


def apply_deltas(index: Index, txn: lmdb.Transaction[bytes], deltas: Counter[BlobId]) -> None:
    """Reference moves gathered over many items (see `Namespace.put_item`), once per blob."""
    for blob_id, delta in deltas.items():
        if delta:
            adjust_refcount(index, txn, blob_id, delta)


def adjust_pin(index: Index, txn: lmdb.Transaction[bytes], blob_id: BlobId, delta: int) -> None:
    """Pins are references held by `put` callers rather than by items."""
    key = bytes(blob_id)
    raw = index.get(txn, "pins", key)
    count = int(raw) if raw is not None else 0
    if count + delta < 0:
        raise NotFound(f"blob {blob_id} has no reference to release")
    adjust_refcount(index, txn, blob_id, delta)
    if count + delta == 0:
        index.delete(txn, "pins", key)
    else:
        index.put(txn, "pins", key, str(count + delta).encode())
