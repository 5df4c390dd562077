"""Store statistics: counts, logical and stored bytes, dedup ratio, bytes by location, cache."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cas.blobs.backends.places import traits
from cas.blobs.cache import stored_totals
from cas.blobs.catalog import count_blobs, raw_blob_getter, scan_blobs
from cas.maintenance.gc import is_garbage, kept_by_versions
from cas.model import namespace
from cas.records import LINK, LOCAL, PACK, S3, S3PACK, BlobRecord, ItemRecord

if TYPE_CHECKING:
    from cas.store import Store


def compute(store: Store) -> dict[str, Any]:
    """One read transaction: one pass over the blobs and one over the items, on raw fields (no
    blob bytes are read; nothing is kept per blob or item)."""
    index = store.index
    store.flush_cache_counters()
    locations = {where: {"blobs": 0, "bytes": 0} for where in (LOCAL, PACK, S3, S3PACK, LINK)}
    unknown_size = 0
    no_refs: list[tuple[bytes, int]] = []  # (id, bytes stored here) of the blobs no item references
    with index.read() as txn:
        stored = 0
        for key, raw in scan_blobs(index, txn):
            size, refcount, location = BlobRecord.raw_summary(raw)
            where = locations.get(location) or locations.setdefault(location, {"blobs": 0, "bytes": 0})
            where["blobs"] += 1
            kind = traits(location)
            ours = size if size > 0 and kind is not None and kind.owns_bytes else 0  # a link's stay at its URL
            if refcount == 0:
                no_refs.append((key, ours))
            if size < 0:
                unknown_size += 1
                continue
            where["bytes"] += size
            stored += ours
        # Logical bytes are what the store holds for its items; link media stays at its URL.
        logical = 0
        blob_record = raw_blob_getter(index, txn)
        has_links = locations[LINK]["blobs"] > 0
        for raw in namespace.item_values(index, txn):
            media, size, json_bytes = ItemRecord.raw_sizes(raw)
            logical += json_bytes
            if size > 0 and not (has_links and BlobRecord.raw_has_url(blob_record(media) or b"")):
                logical += size
        hits, misses, bytes_hit, bytes_fetched = stored_totals(index, txn)
        locations[LINK]["unknown_size"] = unknown_size
        hit_rate = round(hits / (hits + misses), 3) if hits + misses else None
        cache = {"hits": hits, "misses": misses, "hit_rate": hit_rate,
                 "bytes_hit": bytes_hit, "bytes_fetched": bytes_fetched, "max_bytes": store.config.cache_size,
                 "used_bytes": store.cache.used() if (store.root / "cache").exists() else 0}
        counts = {**namespace.counts(index, txn), "blobs": count_blobs(index, txn)}
    # gc's definition: versions keep blobs alive without item references.
    keep = kept_by_versions(store) if no_refs else set()
    garbage: list[int] = []
    kept: list[int] = []
    for key, size in no_refs:
        (garbage if is_garbage(0, key, keep) else kept).append(size)
    return {
        "store": str(store.root),
        **counts,
        "logical_bytes": logical,
        "stored_bytes": stored,
        "dedup_ratio": round(logical / stored, 3) if stored else 1.0,
        "unreferenced_blobs": len(garbage),
        "unreferenced_bytes": sum(garbage),
        "version_only_blobs": len(kept),
        "version_only_bytes": sum(kept),
        "locations": locations,
        "cache": cache,
        "s3": str(store.config.s3) if store.config.s3 else None,
    }

