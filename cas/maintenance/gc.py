"""Garbage collection: delete unreferenced blobs and stale temp files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cas.blobs import damage
from cas.blobs.backends.places import traits
from cas.blobs.catalog import delete_blob, raw_blob_getter, scan_blobs
from cas.blobs.repack import Rewrite, compact_packs, compaction_plan, unused_packs
from cas.errors import NotFound
from cas.ids import BlobId
from cas.ingest import statcache
from cas.ingest.journal import is_mount_staging
from cas.maintenance import s3repack
from cas.maintenance.s3repack import S3PackPlan
from cas.records import LOCAL, BlobRecord

if TYPE_CHECKING:
    from cas.store import Store

DELETE_BATCH = 10_000


@dataclass
class GcReport:
    blobs_removed: int = 0
    bytes_freed: int = 0
    temp_removed: int = 0
    orphans_removed: int = 0
    stat_entries_dropped: int = 0  # stat-cache entries of files whose blob is gone
    young_kept: int = 0  # unreferenced S3 objects younger than the grace period, left in place
    packs_compacted: int = 0  # packs rewritten without their dead entries, or removed with none left
    pack_bytes_copied: int = 0  # live entries those rewrites copy into new packs
    packs_not_rewritten: int = 0  # planned rewrites that met an entry whose bytes are damaged (fsck names it)
    s3_packs_compacted: int = 0  # S3 pack objects rewritten without their dead entries, or deleted with none left
    s3_pack_bytes_copied: int = 0  # live entries those rewrites copy into new pack objects
    s3_packs_not_rewritten: int = 0  # planned rewrites of S3 packs that met an entry whose bytes are damaged
    s3_packs_kept: int = 0  # S3 packs due for compaction left in place: too young, or shared (see s3repack)
    dry_run: bool = False  # nothing was removed: the counts are what a gc would do now


def kept_by_versions(store: Store) -> set[bytes]:
    """Blobs that versions keep alive without an item reference: this store's versions and,
    with an S3 remote, every version pushed to the shared bucket."""
    here, shared = kept_here_and_shared(store)
    return here | shared


def kept_here_and_shared(store: Store) -> tuple[set[bytes], set[bytes]]:
    """(the blobs this store's versions reach, those the versions pushed to the shared bucket
    reach: other stores may have recorded them where they are)."""
    from cas.versions.snapshots import reachable
    shared = reachable(store, list(store.s3.refs.list().values())) if store.s3 is not None else set()
    return reachable(store), shared


def is_garbage(refcount: int, key: bytes, keep: set[bytes]) -> bool:
    """The one definition of an unreferenced blob (gc frees it; stats counts it)."""
    return refcount == 0 and key not in keep


@dataclass
class GcPlan:
    """What a gc removes, computed once (with the store alone): the dry run reports it, the
    real run executes it."""

    temp: list[str] = field(default_factory=list)  # entries of tmp/ (a killed import's staging among them)
    doomed: list[tuple[BlobId, BlobRecord]] = field(default_factory=list)  # unreferenced blobs
    young_kept: int = 0
    unused_packs: list[tuple[str, int]] = field(default_factory=list)  # (name, size): no live entry left
    rewrites: list[Rewrite] = field(default_factory=list)
    orphans: list[tuple[str, int]] = field(default_factory=list)  # (path, size) the index does not know
    stat_entries: int = 0  # stat-cache entries whose blob is gone or doomed
    s3_packs: S3PackPlan = field(default_factory=S3PackPlan)

    def report(self, dry_run: bool, skipped: Collection[str] = (), s3_skipped: Collection[str] = ()) -> GcReport:
        """The counts of this plan: what the dry run says and the real run did (`skipped`,
        `s3_skipped`: the local and S3 packs whose rewrite stopped at an entry found damaged)."""
        blob_bytes = sum(max(rec.size, 0) for _id, rec in self.doomed if _frees_own_file(rec))
        rewrites = [r for r in self.rewrites if r.name not in skipped]
        s3_rewrites = [r for r in self.s3_packs.rewrites if r.name not in s3_skipped]
        pack_bytes = sum(size for _name, size in self.unused_packs + self.s3_packs.unused) \
            + sum(r.size - r.live_bytes for r in rewrites + s3_rewrites)
        orphan_bytes = sum(size for _p, size in self.orphans)
        return GcReport(
            blobs_removed=len(self.doomed), bytes_freed=blob_bytes + pack_bytes + orphan_bytes,
            temp_removed=len(self.temp), orphans_removed=len(self.orphans), stat_entries_dropped=self.stat_entries,
            young_kept=self.young_kept, packs_compacted=len(self.unused_packs) + len(rewrites),
            pack_bytes_copied=sum(r.live_bytes for r in rewrites),
            packs_not_rewritten=len(self.rewrites) - len(rewrites),
            s3_packs_compacted=len(self.s3_packs.unused) + len(s3_rewrites),
            s3_pack_bytes_copied=sum(r.live_bytes for r in s3_rewrites),
            s3_packs_not_rewritten=len(self.s3_packs.rewrites) - len(s3_rewrites), s3_packs_kept=self.s3_packs.kept,
            dry_run=dry_run)


def collect(store: Store, dry_run: bool = False, progress: Callable[[int], object] | None = None) -> GcReport:
    """Remove every blob with no reference, orphan blob files and temp files. Needs the store
    alone (no import running), dry run or not. With `dry_run`, change nothing and report what a
    gc would remove now: the real run executes the same plan.

    Records go first, then files: a crash in between leaves orphan files that
    fsck reports and removes, never a record whose file is gone. `progress` is told of the
    blobs removed.
    """
    with store.lock(exclusive=True, what="dry-run gc" if dry_run else "collect garbage"):
        gc_plan = plan(store)
        return gc_plan.report(True) if dry_run else gc_plan.report(False, *_execute(store, gc_plan, progress))


def plan(store: Store) -> GcPlan:
    """What a gc would remove now (the caller holds the exclusive lock)."""
    out = GcPlan()
    here, shared = kept_here_and_shared(store)
    keep = here | shared
    listing = store.s3.pack_ages() if store.s3 is not None else {}
    young = {name for name, (_size, age) in listing.items() if s3repack.is_young(store, age)}
    # A mount's staging is live, or holds files acknowledged to writers that its next mount imports.
    out.temp = [e.path for e in os.scandir(store.tmp_dir) if not is_mount_staging(e.name)]
    index = store.index
    with index.read() as txn:
        for key, raw in scan_blobs(index, txn):
            size, refcount, location = BlobRecord.raw_summary(raw)
            if not is_garbage(refcount, key, keep):
                continue
            kind = traits(location)
            remote = kind is not None and kind.owns_bytes and not kind.here
            if remote and not BlobRecord.raw_is_packed(raw) and _young(store, BlobId(key)):
                out.young_kept += 1  # may belong to a push in progress elsewhere: a later gc
                continue
            rec = BlobRecord.decode(raw)
            if remote and rec.pack in young:
                out.young_kept += 1  # its record stays, so that a later gc still finds its pack ours
                continue
            out.doomed.append((BlobId(key), rec))
        dead = {bytes(blob_id) for blob_id, _rec in out.doomed}
        out.stat_entries = sum(1 for _key in statcache.stale(index, txn, dead))
    out.unused_packs, out.rewrites = compaction_plan(store, dead)
    if store.s3 is not None:
        out.s3_packs = s3repack.plan(store, dead, shared, listing)
    unused_paths = {store.local.pack_path(name) for name, _size in out.unused_packs}
    out.orphans = [(path, size) for path, size in orphan_files(store) if path not in unused_paths]
    return out


def _execute(store: Store, gc_plan: GcPlan,
             progress: Callable[[int], object] | None) -> tuple[set[str], set[str]]:
    """Carry out a plan; the local and the S3 packs whose rewrite it skipped (see `compact_packs`)."""
    index = store.index
    if store.s3 is not None:  # before the dead records go: their packs stay known as this store's
        s3repack.note_pending(store, gc_plan.s3_packs)
    for path in gc_plan.temp:
        remove_path(path)
    for start in range(0, len(gc_plan.doomed), DELETE_BATCH):  # short write transactions
        batch = gc_plan.doomed[start:start + DELETE_BATCH]
        with index.write() as txn:
            for blob_id, _rec in batch:
                delete_blob(index, txn, blob_id)
                damage.forget(index, txn, blob_id)
        for blob_id, rec in batch:
            try:  # files and S3 objects go; packed bytes when their pack is rewritten; a link's are not ours
                place = store.places.of(rec)
                place.delete(blob_id, rec)
            except NotFound:  # in S3, with no remote configured any more: nothing to delete
                place = None
            if place is None or not place.here:
                store.cache.drop(blob_id)
        if progress is not None:
            progress(len(batch))
    with index.write() as txn:
        statcache.prune(index, txn)
    packs = compact_packs(store, (gc_plan.unused_packs, gc_plan.rewrites))
    s3_packs = s3repack.compact(store, gc_plan.s3_packs) if store.s3 is not None else set()
    # With the store to ourselves, a blob file the index does not know is garbage
    # (installed by an import that was killed before it could record it).
    for path, _size in gc_plan.orphans:
        remove_path(path)
    return packs, s3_packs


def _young(store: Store, blob_id: BlobId) -> bool:
    assert store.s3 is not None
    age = store.s3.age_seconds(blob_id)
    return age is not None and age < store.config.s3_grace_seconds


def orphan_files(store: Store) -> list[tuple[str, int]]:
    """(path, size) of every file under blobs/ that no record of a loose blob points at (a
    push that moved the blob to S3, or a repair that re-pointed it, may leave its old file),
    and of every file under packs/ that no record points into."""
    with store.index.read() as txn:
        record = raw_blob_getter(store.index, txn)
        orphans = [(path, size) for blob_id, path, size in store.local.list_ids()
                   if blob_id is None or (raw := record(bytes(blob_id))) is None
                   or BlobRecord.raw_summary(raw)[2] != LOCAL]
    return orphans + unused_packs(store)


def remove_path(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _frees_own_file(rec: BlobRecord) -> bool:
    """Whether deleting the blob frees bytes of its own (not a pack's entry, not a link's URL)."""
    kind = traits(rec.location)
    return kind is not None and kind.owns_bytes and not kind.packed
