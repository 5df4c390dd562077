"""Garbage collection: delete unreferenced blobs and stale temp files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cas.blobs.repack import compact_packs, compaction_plan, unused_packs
from cas.ids import BlobId
from cas.ingest import statcache
from cas.ingest.journal import is_mount_staging
from cas.records import LINK, LOCAL, PACK, S3, BlobRecord

if TYPE_CHECKING:
    from cas.store import Store

DELETE_BATCH = 10_000
S3_GRACE_SECONDS = 3600  # a younger S3 object may belong to a push in progress elsewhere


@dataclass
class GcReport:
    blobs_removed: int = 0
    bytes_freed: int = 0
    temp_removed: int = 0
    orphans_removed: int = 0
    stat_entries_dropped: int = 0  # stat-cache entries of files whose blob is gone
    young_kept: int = 0  # unreferenced S3 objects younger than the grace period, left in place
    packs_compacted: int = 0  # packs rewritten without their dead entries, or removed with none left
    dry_run: bool = False  # nothing was removed: the counts are what a gc would do now


def kept_by_versions(store: Store) -> set[bytes]:
    """Blobs that versions keep alive without an item reference: this store's versions and,
    with an S3 remote, every version pushed to the shared bucket."""
    from cas.versions.snapshots import reachable
    keep = reachable(store)
    if store.s3 is not None:
        keep |= reachable(store, list(store.s3.list_refs().values()))
    return keep


def is_garbage(refs: int, key: bytes, keep: set[bytes]) -> bool:
    """The one definition of an unreferenced blob (gc frees it; stats counts it)."""
    return refs == 0 and key not in keep


def collect(store: Store, dry_run: bool = False, progress: Callable[[int], object] | None = None) -> GcReport:
    """Remove every blob with no reference, orphan blob files and temp files.
    Needs the store alone (no import running). With `dry_run`, change nothing and report
    what a gc would remove now.

    Records go first, then files: a crash in between leaves orphan files that
    fsck reports and removes, never a record whose file is gone. `progress` is told of the
    blobs removed.
    """
    if dry_run:
        return _survey(store)
    report = GcReport()
    index = store.index
    with store.lock(exclusive=True, what="collect garbage"):
        keep = kept_by_versions(store)
        for entry in os.scandir(store.tmp_dir):
            if is_mount_staging(entry.name):
                continue  # a mount's staging: live, or files acknowledged to writers that its next mount imports
            remove_path(entry.path)
            report.temp_removed += 1
        while True:
            doomed: list[tuple[BlobId, BlobRecord]] = []
            with index.write() as txn:
                for key, raw in index.scan(txn, "blobs"):
                    rec = BlobRecord.decode(raw)
                    if is_garbage(rec.refs, key, keep):
                        if rec.location == S3 and _young(store, BlobId(key)):
                            keep.add(key)  # may belong to a push in progress elsewhere: a later gc
                            report.young_kept += 1
                            continue
                        doomed.append((BlobId(key), rec))
                        if len(doomed) >= DELETE_BATCH:
                            break
                for blob_id, _rec in doomed:
                    index.delete(txn, "blobs", bytes(blob_id))
            for blob_id, rec in doomed:
                report.blobs_removed += 1
                if rec.location == PACK:
                    continue  # its bytes go (and count) when its pack is compacted, below
                if rec.location == LOCAL:
                    store.backend.delete(blob_id)
                else:  # S3 objects go; a link's bytes are not ours to delete
                    if rec.location == S3 and store.s3 is not None:
                        store.s3.delete(blob_id)
                    store.cache.drop(blob_id)
                if rec.location != LINK:
                    report.bytes_freed += max(rec.size, 0)
            if progress is not None:
                progress(len(doomed))
            if len(doomed) < DELETE_BATCH:
                break
        with index.write() as txn:
            report.stat_entries_dropped = statcache.prune(index, txn)
        report.packs_compacted, freed = compact_packs(store)
        report.bytes_freed += freed
        # With the store to ourselves, a blob file the index does not know is garbage
        # (installed by an import that was killed before it could record it).
        for path, size in orphan_files(store):
            remove_path(path)
            report.orphans_removed += 1
            report.bytes_freed += size
        return report


def _survey(store: Store) -> GcReport:
    """What collect would remove now, read under the shared lock (imports may go on)."""
    report = GcReport(dry_run=True)
    with store.lock(exclusive=False, what="survey garbage"):
        keep = kept_by_versions(store)
        report.temp_removed = sum(1 for e in os.scandir(store.tmp_dir) if not is_mount_staging(e.name))
        dead: set[bytes] = set()
        with store.index.read() as txn:
            for key, raw in store.index.scan(txn, "blobs"):
                size, refs, location = BlobRecord.raw_summary(raw)
                if not is_garbage(refs, key, keep):
                    continue
                if location == S3 and _young(store, BlobId(key)):
                    report.young_kept += 1
                    continue
                report.blobs_removed += 1
                dead.add(key)
                if location not in (PACK, LINK):  # packed bytes go with their pack, below
                    report.bytes_freed += max(size, 0)
        orphans = orphan_files(store)  # the packs unused already among them
        unused, rewrites = compaction_plan(store, dead)
        unused = [(name, size) for name, size in unused if store.backend.pack_path(name) not in dict(orphans)]
        report.packs_compacted = len(unused) + len(rewrites)
        report.bytes_freed += sum(size for _name, size in unused) + sum(r.size - r.live_bytes for r in rewrites)
        report.orphans_removed = len(orphans)
        report.bytes_freed += sum(size for _path, size in orphans)
    return report


def _young(store: Store, blob_id: BlobId) -> bool:
    assert store.s3 is not None
    age = store.s3.age_seconds(blob_id)
    return age is not None and age < S3_GRACE_SECONDS


def orphan_files(store: Store) -> list[tuple[str, int]]:
    """(path, size) of every file under blobs/ that the index does not record, and of every
    file under packs/ that no record points into."""
    index = store.index
    with index.read() as txn:
        orphans = [(path, size) for blob_id, path, size in store.backend.list_ids()
                   if blob_id is None or index.get(txn, "blobs", bytes(blob_id)) is None]
    return orphans + unused_packs(store)


def remove_path(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
