"""Consistency check of index against bytes, and repair of what is dangling."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cas.blobs import damage
from cas.blobs.backends.packs import HEADER, MAGIC
from cas.blobs.backends.places import traits
from cas.blobs.catalog import (
    delete_blob,
    drop_dangling_pins,
    get_blob,
    has_blob,
    pin_count,
    put_blob,
    raw_blob_getter,
    record_new_blob,
    scan_blobs,
    scan_pins,
)
from cas.blobs.hashing import Hasher, hash_bytes, hash_file
from cas.blobs.spool import Spooled, spool_bytes
from cas.errors import NotFound
from cas.ids import BlobId
from cas.index import SEP, project_key, split_item_key
from cas.ingest import statcache
from cas.ingest.journal import ingest_dirs, is_mount_staging, live_records, try_lock
from cas.maintenance.copies import find_copies
from cas.maintenance.gc import kept_by_versions, orphan_files, remove_path
from cas.model import namespace
from cas.model.annotation import dumps, empty_annotation, empty_video_annotation
from cas.model.layout import sections
from cas.records import BlobRecord, ItemRecord
from cas.units import counted

if TYPE_CHECKING:
    from cas.store import Store

# Kinds that only mean leftover bytes from an interrupted write; no data is at risk.
PROGRESS_EVERY = 256  # blobs checked between two progress reports
ORPHAN_KINDS = frozenset({"orphan-file", "stale-temp"})
# What repair does about each kind (the CLI says it, in the past or, with --dry-run, as a plan).
# A missing or corrupt blob that something still uses is kept, marked damaged, until a re-import
# of its bytes heals it (see SourceNeeded); one nothing uses is removed.
ACTIONS = {"orphan-file": "remove", "stale-temp": "remove", "missing-blob": "forget", "corrupt-blob": "remove",
           "dangling-item": "remove", "damaged-item": "", "dangling-dataset": "remove",
           "damaged-annotation": "reset to empty", "damaged-item-meta": "drop the item meta",
           "bad-refcount": "fix", "pending-journal": "", "misplaced-blob": "re-point its record at the copy",
           "missing-pack": ""}


@dataclass
class Problem:
    kind: str
    subject: str
    detail: str
    repaired: bool = False
    key: bytes = b""  # the index key a namespace problem is about (what repair deletes)
    in_use: bool = False  # a damaged blob something still uses: kept for a re-import to heal

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}: {self.detail}" + (f" [{self.action} (done)]" if self.repaired else "")

    @property
    def action(self) -> str:
        """What `fsck --repair` does about it ('' for nothing: a pending journal is the next mount's,
        a damaged blob in use waits for its source)."""
        return "" if self.in_use else ACTIONS.get(self.kind, "")


MAX_USERS = 5  # item paths named per blob that needs its source


@dataclass
class SourceNeeded:
    """A damaged blob that only its original bytes can heal, and what uses it."""

    blob: BlobId
    users: list[str]  # "image of project/dataset/item", at most MAX_USERS
    more: int = 0  # further items using it
    pins: int = 0  # references held by `cas put`
    in_versions: bool = False

    def __str__(self) -> str:
        held = self.users + ([counted(self.more, "more item")] if self.more else []) \
            + ([counted(self.pins, "`cas put` pin")] if self.pins else []) + (["versions"] if self.in_versions else [])
        return (f"needs-source: {self.blob}: used by {', '.join(held)}; re-import the original file (`cas import`, "
                "`cas put` or a copy into the mount) to heal it, or `cas rm` those items")


@dataclass
class FsckReport:
    blobs_checked: int = 0
    items_checked: int = 0
    bytes_verified: int = 0
    problems: list[Problem] = field(default_factory=list)
    sources_needed: list[SourceNeeded] = field(default_factory=list)  # damaged blobs still in use
    healed: list[BlobId] = field(default_factory=list)  # marked damaged by an earlier fsck, good bytes now

    @property
    def clean(self) -> bool:
        return not self.problems

    @property
    def only_orphans(self) -> bool:
        return all(p.kind in ORPHAN_KINDS for p in self.problems)


def check(store: Store, repair: bool = False, verify: bool = True,
          progress: Callable[[int], object] | None = None, plan_repair: bool = False,
          remote: bool = False) -> FsckReport:
    """Check every blob record against its bytes (size, and digest if `verify`), every item
    against its blobs, every reference count, and find orphan and temp files. `progress` is
    told of the blobs checked. `plan_repair` (a dry run of `repair`) changes nothing but
    reports the blobs that need their source as the repair would leave them. With `remote`
    (and `verify`), the blobs this store keeps in S3 (pack objects and objects of their own) are
    downloaded and hashed too.

    Damaged blobs are marked in the index (`cas.blobs.damage`) and the stat cache forgets the
    files that held them, so that a re-import of their bytes heals them; a healed one is
    reported in `healed`, and its mark dropped."""
    with store.lock(exclusive=True, what="check the store"):
        report = FsckReport()
        bad_blobs = _check_blobs(store, report, verify, progress, remote)
        copies = _misplaced(store, report, bad_blobs)
        if not store.index.read_only:
            _mark(store, report, bad_blobs, verify)
        bad_blobs -= set(copies)
        _check_namespace(store, report, bad_blobs)
        _check_files(store, report, {path for blob_id, rec in copies.items()
                                     if (path := store.places.of(rec).file_of(blob_id, rec)) is not None})
        keep = kept_by_versions(store) if bad_blobs else set()  # what versions hold, walked once
        if repair:
            bad_blobs -= _repair(store, report, bad_blobs, keep, copies)
        report.sources_needed = _sources_needed(store, bad_blobs, keep, resets_counted=not plan_repair)
        in_use = {str(need.blob) for need in report.sources_needed}
        for problem in report.problems:
            problem.in_use = problem.kind in ("missing-blob", "corrupt-blob") and problem.subject in in_use
        return report


def _mark(store: Store, report: FsckReport, bad: set[BlobId], verified: bool) -> None:
    """Mark the damaged blobs, drop the stat-cache entries that name them, and drop the marks
    of blobs that check out again (healed; a size-only check clears only what a heal marked)."""
    index = store.index
    with index.write() as txn:
        for blob_id, state in list(damage.marks(index, txn)):
            if blob_id in bad or not has_blob(index, txn, blob_id):
                damage.forget(index, txn, blob_id)  # marked again below, or gone
            elif state == damage.HEALED or verified:
                damage.forget(index, txn, blob_id)
                report.healed.append(blob_id)
        for blob_id in bad:
            damage.mark_damaged(index, txn, blob_id)
        if bad:
            statcache.prune(index, txn, bad)


def _sources_needed(store: Store, bad: set[BlobId], keep: set[bytes],
                    resets_counted: bool = True) -> list[SourceNeeded]:
    """The damaged blobs still in the index, with the items, pins and versions that use them.
    Without `resets_counted`, annotations and item meta (which a repair resets) are not uses."""
    if not bad:
        return []
    index = store.index
    with index.read() as txn:
        left = {blob_id for blob_id in bad if has_blob(index, txn, blob_id)}
        if not left:
            return []
        needed = {blob_id: SourceNeeded(blob_id, []) for blob_id in left}
        for key, raw in namespace.scan_items(index, txn):
            rec = ItemRecord.decode(raw)
            related = [("related file", blob) for _name, blob, _size in rec.related or ()]
            uses = (("image", rec.media), *related, ("annotation", rec.ann), ("item meta", rec.meta))
            for role, blob in uses if resets_counted else uses[:1 + len(related)]:
                if blob in needed:
                    need = needed[blob]
                    if len(need.users) < MAX_USERS:
                        need.users.append(f"{role} of {_label(key)}")
                    else:
                        need.more += 1
        for blob_id, need in needed.items():
            need.pins = pin_count(index, txn, blob_id)
    for blob_id, need in needed.items():
        need.in_versions = bytes(blob_id) in keep
    return [need for need in needed.values() if need.users or need.pins or need.in_versions]


def _misplaced(store: Store, report: FsckReport, bad: set[BlobId]) -> dict[BlobId, BlobRecord]:
    """The damaged blobs with a good copy elsewhere here (see `cas.maintenance.copies`), each
    with its record re-pointed at it; their problems become misplaced-blob."""
    if not bad:
        return {}
    with store.index.read() as txn:
        records = {blob_id: rec for blob_id in bad if (rec := get_blob(store.index, txn, blob_id)) is not None}
    copies = find_copies(store, records)
    for problem in report.problems:
        blob_id = BlobId.from_hex(problem.subject) if problem.kind in ("missing-blob", "corrupt-blob") else None
        rec = copies.get(blob_id) if blob_id is not None else None
        if blob_id is not None and rec is not None:
            problem.kind = "misplaced-blob"
            problem.detail = f"{problem.detail}; {store.places.of(rec).describe(blob_id, rec)} holds a good copy"
    return copies


def _check_blobs(store: Store, report: FsckReport, verify: bool,
                 progress: Callable[[int], object] | None, remote: bool = False) -> set[BlobId]:
    """Local blobs: size, and digest if `verify`. S3 blobs: the object exists with the
    recorded size (one listing; their bytes are not downloaded, but with `remote` and
    `verify` they are: `_check_s3_pack_contents`, `_check_s3_objects`). Links are not checked:
    their bytes are not ours. A local pack that records point into but that is missing is
    a problem of its own besides its blobs'."""
    bad: set[BlobId] = set()
    in_s3_packs: dict[str, list[tuple[BlobId, int, int]]] = {}  # pack -> (id, offset, size) listed in it
    s3_objects: list[tuple[BlobId, int]] = []  # (id, size) of the objects of their own to download
    missing_packs: Counter[str] = Counter()
    s3_sizes: dict[BlobId, int] | None = None
    with store.index.read() as txn:
        for key, raw in scan_blobs(store.index, txn):
            report.blobs_checked += 1
            if progress is not None and report.blobs_checked % PROGRESS_EVERY == 0:
                progress(PROGRESS_EVERY)
            if BlobRecord.raw_has_url(raw):
                continue  # a link
            blob_id, rec = BlobId(key), BlobRecord.decode(raw)
            kind = traits(rec.location)
            if kind is not None and kind.packed and kind.here:
                problem = _check_packed(store, blob_id, rec, verify)
                report.bytes_verified += rec.size if verify else 0
                if problem is not None:
                    report.problems.append(problem)
                    bad.add(blob_id)
                    if problem.detail.endswith(MISSING_PACK):
                        missing_packs[str(rec.pack)] += 1
                continue
            if kind is not None and kind.packed:  # in an S3 pack object
                problem = _check_in_s3_pack(store, blob_id, rec)
                if problem is not None:
                    report.problems.append(problem)
                    bad.add(blob_id)
                elif remote and verify and rec.pack is not None:
                    in_s3_packs.setdefault(rec.pack, []).append((blob_id, rec.offset, rec.size))
                continue
            if kind is not None and not kind.here:  # an S3 object of its own
                if store.s3 is None:
                    report.problems.append(Problem("missing-blob", str(blob_id),
                                                   "in S3, but no S3 remote is configured"))
                    bad.add(blob_id)
                    continue
                if s3_sizes is None:
                    s3_sizes = {i: size for i, _url, size in store.s3.list_ids() if i is not None}
                if s3_sizes.get(blob_id) != rec.size:
                    found = s3_sizes.get(blob_id)
                    state = "is missing" if found is None else f"has {found} bytes, index says {rec.size}"
                    report.problems.append(Problem("missing-blob" if found is None else "corrupt-blob", str(blob_id),
                                                   f"S3 object {store.s3.url(blob_id)} {state}"))
                    bad.add(blob_id)
                elif remote and verify:
                    s3_objects.append((blob_id, rec.size))
                continue
            path = store.local.path(blob_id)
            try:
                size = os.stat(path).st_size
            except FileNotFoundError:
                report.problems.append(Problem("missing-blob", str(blob_id), "file is missing"))
                bad.add(blob_id)
                continue
            if size != rec.size:
                report.problems.append(Problem("corrupt-blob", str(blob_id),
                                               f"file has {size} bytes, index says {rec.size}"))
                bad.add(blob_id)
                continue
            if verify:
                digest, _ = hash_file(path)
                report.bytes_verified += size
                if digest != blob_id:
                    report.problems.append(Problem("corrupt-blob", str(blob_id), f"content digest is {digest}"))
                    bad.add(blob_id)
    if progress is not None:
        progress(report.blobs_checked % PROGRESS_EVERY)
    for name, listed in sorted(in_s3_packs.items()):
        problems = _check_s3_pack_contents(store, name, listed)
        report.bytes_verified += sum(n for _id, _offset, n in listed)
        report.problems += problems
        bad.update(BlobId.from_hex(p.subject) for p in problems)
    if s3_objects:
        problems = _check_s3_objects(store, s3_objects)
        report.bytes_verified += sum(size for _id, size in s3_objects)
        report.problems += problems
        bad.update(BlobId.from_hex(p.subject) for p in problems)
    report.problems += [Problem("missing-pack", name, f"{counted(n, 'record')} point into it; "
                                                      f"{store.local.pack_path(name)} is not there")
                        for name, n in sorted(missing_packs.items())]
    return bad


MISSING_PACK = "is missing"


def _check_packed(store: Store, blob_id: BlobId, rec: BlobRecord, verify: bool) -> Problem | None:
    """A packed blob: its pack entry names it and holds its size (and, with `verify`, its bytes)."""
    assert rec.pack is not None
    try:
        with open(store.local.pack_path(rec.pack), "rb") as f:
            f.seek(max(rec.offset - HEADER.size, 0))
            header = f.read(HEADER.size)
            data = f.read(rec.size) if verify else b""
            available = os.fstat(f.fileno()).st_size - rec.offset
    except (FileNotFoundError, NotFound):
        return Problem("missing-blob", str(blob_id), f"its pack {rec.pack} {MISSING_PACK}")
    where = f"pack {rec.pack} at offset {rec.offset}"
    if header != HEADER.pack(MAGIC, blob_id, rec.size) or available < rec.size:
        return Problem("corrupt-blob", str(blob_id), f"{where} does not hold this blob of {rec.size} bytes")
    if verify and (digest := hash_bytes(data)) != blob_id:
        return Problem("corrupt-blob", str(blob_id), f"content digest in {where} is {digest}")
    return None


def _check_in_s3_pack(store: Store, blob_id: BlobId, rec: BlobRecord) -> Problem | None:
    """A blob in an S3 pack object: the pack's index lists it at its offset with its size (one
    read of each pack's index; the bytes are not downloaded)."""
    if store.s3 is None:
        return Problem("missing-blob", str(blob_id), "in S3, but no S3 remote is configured")
    found = store.places.of(rec).size_of(blob_id, rec)
    if found == rec.size:
        return None
    assert rec.pack is not None
    where = f"S3 pack object {store.s3.pack_url(rec.pack)}"
    if found is None:
        return Problem("missing-blob", str(blob_id), f"{where} is missing or does not list it at offset {rec.offset}")
    return Problem("corrupt-blob", str(blob_id), f"{where} lists {found} bytes, index says {rec.size}")


def _check_s3_pack_contents(store: Store, name: str, listed: list[tuple[BlobId, int, int]]) -> list[Problem]:
    """The entries of one S3 pack object that records point at, downloaded (one ranged GET,
    from the first to the end of the last) and hashed: a corrupt-blob for each that does not
    match its id."""
    assert store.s3 is not None
    out = []
    for blob_id, offset, data in store.s3.read_entries(name, sorted(listed, key=lambda entry: entry[1])):
        digest = hash_bytes(data)
        if digest != blob_id:
            out.append(Problem("corrupt-blob", str(blob_id),
                               f"content digest in S3 pack object {store.s3.pack_url(name)} at offset {offset} is "
                               f"{digest}"))
    return out


S3_OBJECT_READERS = 8  # objects downloaded at once by a remote check


def _check_s3_objects(store: Store, listed: list[tuple[BlobId, int]]) -> list[Problem]:
    """S3 objects of their own (id, size), downloaded as streams, a few at once, and hashed: a
    corrupt-blob for each whose bytes do not match its id, a missing-blob for one gone since
    the listing; in the order listed."""
    from concurrent.futures import ThreadPoolExecutor
    s3 = store.s3
    assert s3 is not None

    def check(blob_id: BlobId) -> Problem | None:
        hasher = Hasher()
        try:
            stream = s3.fetcher(blob_id).open(0)
            try:
                for chunk in stream.chunks:
                    hasher.update(chunk)
            finally:
                stream.close()
        except NotFound:
            return Problem("missing-blob", str(blob_id), f"S3 object {s3.url(blob_id)} is missing")
        digest = hasher.digest()
        return None if digest == blob_id else \
            Problem("corrupt-blob", str(blob_id), f"content digest of S3 object {s3.url(blob_id)} is {digest}")

    with ThreadPoolExecutor(S3_OBJECT_READERS) as pool:
        return [p for p in pool.map(check, [blob_id for blob_id, _size in listed]) if p is not None]


def _check_namespace(store: Store, report: FsckReport, bad: set[BlobId]) -> None:
    """Datasets against projects, items against datasets and blobs, and reference counts: one
    pass over the items and one over the blobs."""
    index = store.index
    with index.read() as txn:
        blob_record = raw_blob_getter(index, txn)
        nouns = {project_key(p): sections(store.ns.project(p, txn).project_type).noun for p in store.ns.projects(txn)}
        projects = set(nouns)
        datasets = set()
        for key in namespace.scan_dataset_keys(index, txn):
            datasets.add(key)
            if key.split(SEP, 1)[0] not in projects:
                report.problems.append(Problem("dangling-dataset", key.replace(SEP, b"/").decode(),
                                               "its project does not exist", key=key))
        expected = _pinned(store, txn)
        for key, raw in namespace.scan_items(index, txn):
            report.items_checked += 1
            rec = ItemRecord.decode(raw)
            if key.rsplit(SEP, 1)[0] not in datasets:
                report.problems.append(Problem("dangling-item", _label(key), "its dataset does not exist", key=key))
            related = [("related file", blob) for _name, blob, _size in rec.related or ()]
            noun = nouns.get(key.split(SEP, 1)[0], "image")
            for role, blob in (("media", rec.media), ("annotation", rec.ann), ("item meta", rec.meta), *related):
                if blob is None:
                    continue
                expected[blob] += 1
                shown = noun if role == "media" else role
                if blob in bad:
                    why = f"its {shown} blob {blob} is missing or corrupt"
                elif blob_record(blob) is None:
                    why = f"its {shown} blob {blob} is not in the index"
                else:
                    continue
                # Only a lost image (the media) costs the item; a lost annotation or item meta is reset; a lost
                # related file keeps the item, damaged, until a re-import of its bytes heals it.
                kind = {"media": "damaged-item" if blob in bad else "dangling-item", "related file": "damaged-item",
                        "annotation": "damaged-annotation", "item meta": "damaged-item-meta"}[role]
                report.problems.append(Problem(kind, _label(key), why, key=key))
        for key, raw in scan_blobs(index, txn):
            refcount = BlobRecord.raw_summary(raw)[1]
            if refcount != expected.get(key, 0):
                report.problems.append(Problem("bad-refcount", str(BlobId(key)),
                                               f"index says {refcount} references, found {expected.get(key, 0)}"))


def _label(item_key: bytes) -> str:
    return "/".join(split_item_key(item_key))


def _pinned(store: Store, txn: Any) -> Counter[bytes]:
    """The references held by pins (`cas put`)."""
    expected: Counter[bytes] = Counter()
    for key, pins in scan_pins(store.index, txn):
        expected[key] += pins
    return expected


def _expected_refs(store: Store, txn: Any) -> Counter[bytes]:
    """References every blob should have: one per item that uses it, plus its pins."""
    expected = _pinned(store, txn)
    for raw in namespace.item_values(store.index, txn):
        for blob in ItemRecord.decode(raw).blobs():
            expected[blob] += 1
    return expected


def _check_files(store: Store, report: FsckReport, needed: set[str]) -> None:
    """Orphan and temp files (not those in `needed`: they hold copies a repair re-points at)."""
    for path, size in orphan_files(store):
        if path in needed:
            continue
        report.problems.append(Problem("orphan-file", path, f"{size} bytes not in the index"))
    for path, size in store.local.list_tmp():
        if is_mount_staging(os.path.basename(path)):
            continue  # a mount's staging: checked below
        report.problems.append(Problem("stale-temp", path, f"left by an interrupted write ({size} bytes)"))
    for directory in ingest_dirs(store.tmp_dir):
        fd = try_lock(directory)
        if fd is None:
            continue  # a live mount's staging
        os.close(fd)
        if pending := len(live_records(directory)):
            report.problems.append(Problem(
                "pending-journal", str(directory), f"{counted(pending, 'file')} closed in a mount that stopped before "
                "committing them; the next `cas mount` of this store imports them"))


def _install_empty_annotations(store: Store, report: FsckReport) -> dict[bytes, tuple[BlobId, int]]:
    """The empty annotation of each item that lost its annotation (by item key), stored
    durably before the transaction that points the items at them."""
    out: dict[bytes, tuple[BlobId, int]] = {}
    spooled: dict[BlobId, Spooled] = {}
    with store.index.read() as txn:
        for problem in report.problems:
            raw = namespace.raw_item(store.index, txn, problem.key) if problem.kind == "damaged-annotation" else None
            if raw is not None:
                rec = ItemRecord.decode(raw)
                ann = empty_video_annotation(rec.width, rec.height, 0, bytes(rec.media)) \
                    if rec.mime.startswith("video/") else empty_annotation(rec.width, rec.height)
                sp = spool_bytes(dumps(ann))
                spooled.setdefault(sp.id, sp)
                out[problem.key] = (sp.id, sp.size)
    for sp in spooled.values():  # over a damaged file of the same id too: it holds good bytes now
        store.write_backend.install(sp, store.tmp_dir)
    if spooled:
        store.write_backend.sync()
    return out


def _record(store: Store, txn: Any, blob_id: BlobId) -> BlobRecord:
    rec = get_blob(store.index, txn, blob_id)
    assert rec is not None  # read by _check_blobs under the same exclusive lock
    return rec


def _repair(store: Store, report: FsckReport, bad: set[BlobId], keep: set[bytes],
            copies: dict[BlobId, BlobRecord]) -> set[BlobId]:
    """Re-point the records of misplaced blobs at their `copies`; remove orphans, temp files
    and the items whose image is not in the index; reset lost annotations; fix counts; then
    remove the damaged blobs nothing uses any more. A damaged blob still in use stays,
    marked, with its items: only its original bytes heal it. Returns the damaged blobs dealt
    with (removed, or good bytes again); `keep`: the blobs versions hold."""
    index = store.index
    for problem in report.problems:
        if problem.kind in ORPHAN_KINDS:
            remove_path(problem.subject)
            problem.repaired = True
    empties = _install_empty_annotations(store, report)
    with index.write() as txn:
        for blob_id, rec in copies.items():
            put_blob(index, txn, blob_id, rec)
            damage.forget(index, txn, blob_id)
        for problem in report.problems:
            problem.repaired |= problem.kind == "misplaced-blob"
        reinstalled = {blob for blob, _size in empties.values()}
        for blob_id in bad & reinstalled:  # good bytes again, where new blobs go (not in the damaged pack)
            rec = _record(store, txn, blob_id)
            put_blob(index, txn, blob_id, replace(rec, location=store.write_backend.location, pack=None, offset=0))
            damage.forget(index, txn, blob_id)
        for problem in report.problems:
            if problem.kind == "dangling-item":
                store.ns.delete_item(txn, problem.key)
                problem.repaired = True
            elif problem.kind == "dangling-dataset":
                namespace.forget_dataset_key(index, txn, problem.key)
                problem.repaired = True
        for problem in report.problems:  # after the removals
            if problem.kind in ("damaged-annotation", "damaged-item-meta"):
                raw = namespace.raw_item(index, txn, problem.key)
                if raw is not None:
                    item = ItemRecord.decode(raw)
                    if problem.kind == "damaged-annotation":
                        blob, size = empties[problem.key]
                        record_new_blob(index, txn, blob, size, store.write_backend.location)
                        item = replace(item, ann=blob, ann_size=size)
                    else:
                        item = replace(item, meta=None, meta_size=0)
                    store.ns.write_item(txn, problem.key, item.encode())
                    index.log_change(txn, *split_item_key(problem.key))
                problem.repaired = True
        # Recount references from what remains.
        drop_dangling_pins(index, txn)
        expected = _expected_refs(store, txn)
        for key, raw in list(scan_blobs(index, txn)):
            rec = BlobRecord.decode(raw)
            if rec.refcount != expected.get(key, 0):
                put_blob(index, txn, BlobId(key), rec.with_refcount(expected.get(key, 0)))
        unused = {blob_id for blob_id in bad - reinstalled if not expected.get(blob_id) and blob_id not in keep}
        for blob_id in unused:
            rec = _record(store, txn, blob_id)
            delete_blob(index, txn, blob_id)
            damage.forget(index, txn, blob_id)
            if (kind := traits(rec.location)) is not None and kind.here:  # a remote copy is gc's to delete
                store.places.of(rec).delete(blob_id, rec)
        for problem in report.problems:
            if problem.kind == "bad-refcount" or (problem.kind in ("missing-blob", "corrupt-blob")
                                                   and BlobId.from_hex(problem.subject) in unused | reinstalled):
                problem.repaired = True
    return unused | (bad & reinstalled)
