"""Store statistics: counts, logical and stored bytes, dedup ratio."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .records import BlobRecord, ItemRecord

if TYPE_CHECKING:
    from .store import Store


def compute(store: "Store") -> dict[str, Any]:
    """One read transaction; scans items and blobs (no blob bytes are read)."""
    index = store.index
    with index.read() as txn:
        logical = 0
        for _key, raw in index.scan(txn, "items"):
            rec = ItemRecord.decode(raw)
            logical += rec.size + rec.ann_size + rec.meta_size
        stored = unreferenced = unreferenced_bytes = 0
        for _key, raw in index.scan(txn, "blobs"):
            blob = BlobRecord.decode(raw)
            stored += blob.size
            if blob.refs == 0:
                unreferenced += 1
                unreferenced_bytes += blob.size
        return {
            "store": str(store.root),
            "projects": index.count(txn, "projects"),
            "datasets": index.count(txn, "datasets"),
            "items": index.count(txn, "items"),
            "blobs": index.count(txn, "blobs"),
            "logical_bytes": logical,
            "stored_bytes": stored,
            "dedup_ratio": round(logical / stored, 3) if stored else 1.0,
            "unreferenced_blobs": unreferenced,
            "unreferenced_bytes": unreferenced_bytes,
        }
