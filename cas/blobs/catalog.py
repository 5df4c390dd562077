"""The blobs and pins tables: each blob's record (size, where its bytes are, reference count)
and the references `Store.put` callers hold. The only module that names these tables: the
others read and write blob records through the functions here."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from cas.blobs import damage
from cas.blobs.backends.places import traits
from cas.errors import CasError, NotFound
from cas.ids import BlobId
from cas.index import Index
from cas.records import LOCAL, PACK, BlobRecord

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Callable, Iterator

    import lmdb


def get_blob(index: Index, txn: lmdb.Transaction[bytes], blob_id: BlobId) -> BlobRecord | None:
    raw = index.get(txn, "blobs", bytes(blob_id))
    return BlobRecord.decode(raw) if raw is not None else None


def has_blob(index: Index, txn: lmdb.Transaction[bytes], blob_id: bytes) -> bool:
    """Whether the index records the blob (`blob_id`: a BlobId or its raw bytes)."""
    return index.get(txn, "blobs", bytes(blob_id)) is not None


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
    return index.scan_range(txn, "blobs", after + b"\x00" if after else b"", None, b"")


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
        BlobRecord(size, refcount, location if _packed(location) else PACK, created, pack=packed[0], offset=packed[1])
    index.put(txn, "blobs", bytes(blob_id), rec.encode())
    return True


def _packed(location: str) -> bool:
    kind = traits(location)
    return kind is not None and kind.packed


def known_intact(index: Index, txn: lmdb.Transaction[bytes], blob_id: BlobId) -> bool:
    """Whether the index has the blob and no fsck found its bytes damaged since: a dedup hit.
    A damaged blob is absent to the dedup paths, which write its bytes again (the heal)."""
    return has_blob(index, txn, blob_id) and not damage.is_damaged(index, txn, blob_id)


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


def pin_count(index: Index, txn: lmdb.Transaction[bytes], blob_id: BlobId) -> int:
    """The references `put` callers hold on a blob."""
    raw = index.get(txn, "pins", bytes(blob_id))
    return int(raw) if raw is not None else 0


def scan_pins(index: Index, txn: lmdb.Transaction[bytes]) -> Iterator[tuple[bytes, int]]:
    """(raw id, pin count) of every pinned blob, in id order."""
    for key, raw in index.scan(txn, "pins"):
        yield key, int(raw)


def drop_dangling_pins(index: Index, txn: lmdb.Transaction[bytes]) -> None:
    """Forget the pins of blobs the index no longer records (fsck's repair)."""
    for key, _raw in list(index.scan(txn, "pins")):
        if not has_blob(index, txn, key):
            index.delete(txn, "pins", key)


def adjust_pin(index: Index, txn: lmdb.Transaction[bytes], blob_id: BlobId, delta: int) -> None:
    """Pins are references held by `put` callers rather than by items."""
    key = bytes(blob_id)
    count = pin_count(index, txn, blob_id)
    if count + delta < 0:
        raise NotFound(f"blob {blob_id} has no reference to release")
    adjust_refcount(index, txn, blob_id, delta)
    if count + delta == 0:
        index.delete(txn, "pins", key)
    else:
        index.put(txn, "pins", key, str(count + delta).encode())
