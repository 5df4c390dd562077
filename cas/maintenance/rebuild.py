"""Rebuild a lost or damaged index from what is durable: blob files, the S3 remote's
objects, and the refs (`<store>/refs/<project>`, and `prefix/refs/<project>` on the remote)
that name each project's head version; small blobs are found in their packs (local files by
their entry headers, S3 pack objects by their indexes). Projects come back as their head
version; blobs no version holds (changes never snapshotted, loose `cas put`s) are pinned, so
that gc keeps them until released."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from cas.blobs.backends.packs import entries
from cas.blobs.catalog import adjust_pin, record_new_blob, scan_blobs
from cas.errors import CasError
from cas.ids import BlobId
from cas.index import Index
from cas.locks import store_lock
from cas.records import S3PACK, BlobRecord
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
                found = [(store.local.location, store.local.list_ids())]
                if store.s3 is not None:
                    found.append((store.s3.location, store.s3.list_ids()))
                for location, listing in found:  # local first: a blob in both places is read locally
                    for blob_id, _where, size in listing:
                        if blob_id is not None and record_new_blob(store.index, txn, blob_id, size, location):
                            report.blobs += 1
                    if location == store.local.location:  # then the packs, read by their entry headers
                        for name, path, _size in store.local.list_packs():
                            if name is None:
                                continue  # not a pack
                            for blob_id, offset, size in entries(path):
                                if record_new_blob(store.index, txn, blob_id, size, packed=(name, offset)):
                                    report.blobs += 1
                    elif store.s3 is not None:  # then the S3 pack objects, read by their indexes
                        for name, _url, size in store.s3.list_packs():
                            if name is None:
                                continue  # not a pack
                            for entry in store.s3.pack_entries(name, size):
                                if record_new_blob(store.index, txn, entry.blob_id, entry.size, S3PACK,
                                                   packed=(name, entry.offset)):
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
