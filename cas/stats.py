"""Store statistics: counts, logical and stored bytes, dedup ratio, bytes by location, cache."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .records import LINK, LOCAL, PACK, S3, BlobRecord, ItemRecord, unpack
from .store import CACHE_COUNTERS_KEY

if TYPE_CHECKING:
    from .store import Store


def compute(store: "Store") -> dict[str, Any]:
    """One read transaction: one pass over the blobs and one over the items, on raw fields (no
    blob bytes are read; nothing is kept per blob or item)."""
    index = store.index
    store.flush_cache_counters()
    locations = {where: {"blobs": 0, "bytes": 0} for where in (LOCAL, PACK, S3, LINK)}
    unknown_size = 0
    with index.read() as txn:
        stored = unreferenced = unreferenced_bytes = 0
        for raw in index.values(txn, "blobs"):
            size, refs, location = BlobRecord.raw_summary(raw)
            where = locations.get(location) or locations.setdefault(location, {"blobs": 0, "bytes": 0})
            where["blobs"] += 1
            if size < 0:
                unknown_size += 1
                continue
            where["bytes"] += size
            if location == LINK:
                continue  # not stored by us
            stored += size
            if refs == 0:
                unreferenced += 1
                unreferenced_bytes += size
        # Logical bytes are what the store holds for its items; link media stays at its URL.
        logical = 0
        blobs_db = index.db["blobs"]
        has_links = locations[LINK]["blobs"] > 0
        for raw in index.values(txn, "items"):
            media, size, json_bytes = ItemRecord.raw_sizes(raw)
            logical += json_bytes
            if size > 0 and not (has_links and BlobRecord.raw_has_url(txn.get(media, b"", db=blobs_db))):
                logical += size
        raw = txn.get(CACHE_COUNTERS_KEY, db=index.db["meta"])
        hits, misses, bytes_hit, bytes_fetched = unpack(raw) if raw is not None else (0, 0, 0, 0)
        locations[LINK]["unknown_size"] = unknown_size
        cache = {"hits": hits, "misses": misses, "hit_rate": round(hits / (hits + misses), 3) if hits + misses else None,
                 "bytes_hit": bytes_hit, "bytes_fetched": bytes_fetched, "max_bytes": store.config.cache_size,
                 "used_bytes": store.cache.used() if (store.root / "cache").exists() else 0}
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
            "locations": locations,
            "cache": cache,
            "s3": str(store.config.s3) if store.config.s3 else None,
        }

