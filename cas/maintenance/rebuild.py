"""Rebuild a lost or damaged index from what is durable: blob files, the S3 remote's
objects, and the refs (`<store>/refs/<project>`, and `prefix/refs/<project>` on the remote)
that name each project's head version; small blobs are found in their packs (local files by
their entry headers, S3 pack objects by their indexes). Projects come back as their head
version; blobs no version holds (changes never snapshotted, loose `cas put`s) are pinned, so
that gc keeps them until released."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cas.blobs.backends.packs import entries
from cas.blobs.catalog import adjust_pin, record_new_blob, scan_blobs
from cas.errors import CasError
from cas.ids import BlobId
from cas.index import Index
from cas.locks import store_lock
from cas.records import LOCAL, PACK, S3, S3PACK, BlobRecord
from cas.store import Store
from cas.versions.snapshots import materialize, reachable, set_head
from cas.versions.trees import read_version


@dataclass
class RebuildReport:
    blobs: int = 0
    projects: int = 0
    items: int = 0
    pinned: int = 0
    moved_aside: str = ""


def _local_heads(root: Path) -> dict[str, BlobId]:
    heads = {}
    for path in sorted((root / "refs").glob("*")) if (root / "refs").is_dir() else []:
        if path.name.startswith("."):
            continue
        try:
            heads[path.name] = BlobId.from_hex(path.read_text().strip())
        except CasError:
            continue
    return heads


def rebuild_index(root: str | Path) -> RebuildReport:
    """Move the index aside (never deleted) and build a new one. The store must not be open
    in this process, and no other cas process may use it meanwhile."""
    root = Path(root).expanduser().resolve()
    report = RebuildReport()
    with store_lock(root, exclusive=True, what="rebuild the index"):
        old = root / "index"
        if old.exists():
            aside = root / f"index.old-{time.strftime('%Y%m%d-%H%M%S')}"
            old.rename(aside)
            report.moved_aside = str(aside)
        Index(old, create=True).close()
        store = Store(root)
        try:
            with store.index.write() as txn:
                for blob_id, size, location, packed in _stored(store):
                    if record_new_blob(store.index, txn, blob_id, size, location, packed=packed):
                        report.blobs += 1
            remote = store.s3.refs.list() if store.s3 is not None else {}
            heads = {**remote, **_local_heads(root)}  # this store's own refs win
            for project, version_id in sorted(heads.items()):
                version = read_version(store, version_id)
                with store.index.write() as txn:
                    report.items += materialize(store, txn, project, version)
                    set_head(store, txn, project, version_id)
                report.projects += 1
            keep = reachable(store)
            with store.index.write() as txn:
                for key, raw in list(scan_blobs(store.index, txn)):
                    if BlobRecord.decode(raw).refcount == 0 and key not in keep:
                        adjust_pin(store.index, txn, BlobId(key), +1)
                        report.pinned += 1
        finally:
            store.close()
    return report


def _stored(store: Store) -> Iterator[tuple[BlobId, int, str, tuple[str, int] | None]]:
    """Every blob whose bytes the store holds, as (id, size, location, (pack, offset) or None):
    local ones first, so that a blob both here and in S3 is read here; loose files before the
    packs (read by their entry headers), S3 objects before the pack objects (read by their indexes)."""
    for blob_id, _where, size in store.local.list_ids():
        if blob_id is not None:
            yield blob_id, size, LOCAL, None
    for name, path, _size in store.local.list_packs():
        if name is not None:  # else not a pack
            for blob_id, offset, size in entries(path):
                yield blob_id, size, PACK, (name, offset)
    if store.s3 is None:
        return
    for blob_id, _where, size in store.s3.list_ids():
        if blob_id is not None:
            yield blob_id, size, S3, None
    for name, _url, size in store.s3.list_packs():
        if name is not None:
            for entry in store.s3.pack_entries(name, size):
                yield entry.blob_id, entry.size, S3PACK, (name, entry.offset)
