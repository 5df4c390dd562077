"""Versions of a project: its namespace frozen as trees stored as blobs (the format is in
`cas.versions.trees`), with history, diff, restore and what gc must keep.

Trees are content addressed, so an unchanged dataset or bucket is the same blob in every
version: a version costs only its changed trees. Every item write marks its key in the
index's `dirty` database; a snapshot rebuilds only the buckets whose name ranges hold
dirty keys, so its cost follows the change, not the project.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cas.blobs.backends.packs import PACK_MAX, PackWriter
from cas.blobs.backends.s3packs import new_pack_name
from cas.blobs.catalog import apply_deltas, raw_blob_getter, record_link, record_new_blob
from cas.blobs.spool import Spooled, spool_bytes
from cas.errors import CasError, NotFound
from cas.ids import BlobId
from cas.index import SEP, item_key, item_prefix, project_key
from cas.model import namespace
from cas.records import S3PACK, BlobRecord, DatasetRecord, ItemRecord, pack
from cas.versions.trees import (
    BucketRef,
    DatasetRef,
    Entry,
    Version,
    encode_bucket,
    encode_dataset,
    encode_project,
    encode_version,
    read_buckets,
    read_entries,
    read_project,
    read_version,
    version_items,
)

if TYPE_CHECKING:
    from cas.store import Store

BUCKET_ITEMS = 256  # small enough that a snapshot after a few changes rewrites little
INSTALL_THREADS = 8
WRITE_GROUP = 256  # trees held in memory before they are written


class TreeWriter:
    """New tree blobs of one snapshot, written as they come in groups of WRITE_GROUP (so a
    snapshot holds at most one group in memory), one sync at the end, and recorded in the
    caller's transaction. In a local store they are appended to a pack of the writer's own
    (a first snapshot of a million items writes 4,000 buckets: a file each cost a directory
    lookup and a rename apiece). To an S3 remote, with `packs`, a group goes up as one pack
    object (cas.blobs.backends.s3packs): one PUT per WRITE_GROUP trees, not one each."""

    def __init__(self, store: Store, packs: bool = True) -> None:
        self.store = store
        self.s3_packs = packs and store.s3 is not None and store.write_backend is store.s3
        self.pending: dict[BlobId, Spooled] = {}
        self.written: dict[BlobId, int] = {}  # id -> size of every tree written, for `record`
        self.packed: dict[BlobId, tuple[str, int]] = {}  # id -> (pack, offset) of the trees written in packs
        self.local_pack = PackWriter(store.local.pack_dir) if store.write_backend is store.local else None

    def put(self, obj: Any) -> BlobId:
        sp = spool_bytes(pack(obj))
        if sp.id not in self.pending and sp.id not in self.written and not self.store.has(sp.id):
            self.pending[sp.id] = sp
            if len(self.pending) >= WRITE_GROUP:
                self._write_pending()
        return sp.id

    def _write_pending(self) -> None:
        """Write the pending trees: locally into the pack, to S3 in one pack object or several
        at once (each is a round trip)."""
        backend = self.store.write_backend
        if self.local_pack is not None:
            for blob_id, sp in self.pending.items():
                if sp.data is not None and sp.size <= PACK_MAX:
                    self.packed[blob_id] = self.local_pack.append(blob_id, sp.data)
                else:
                    backend.install(sp, self.store.tmp_dir)
        else:
            for blob_id, sp in self.pending.items():  # the next snapshot reads these trees back: keep them at hand
                self.store.cache.put(blob_id, sp.data or b"")
            if self.s3_packs and self.pending:
                assert self.store.s3 is not None
                name = new_pack_name()
                entries = self.store.s3.upload_pack(name, ((b, sp.data or b"") for b, sp in self.pending.items()),
                                                    self.store.tmp_dir)
                self.packed.update((e.blob_id, (name, e.offset)) for e in entries)
            else:
                with ThreadPoolExecutor(INSTALL_THREADS) as pool:
                    list(pool.map(lambda sp: backend.install(sp, self.store.tmp_dir), self.pending.values()))
        self.written.update((blob_id, sp.size) for blob_id, sp in self.pending.items())
        self.pending = {}

    def install(self) -> None:
        """Write what is pending, then make every tree written durable with one sync."""
        self._write_pending()
        if self.local_pack is not None:
            self.local_pack.close()
        if self.written:
            self.store.write_backend.sync()

    def record(self, txn: Any) -> None:
        # A tree in a local pack is recorded so by `packed` alone; with S3 packs every tree is in one.
        location = S3PACK if self.s3_packs else self.store.write_backend.location
        for blob_id, size in self.written.items():
            record_new_blob(self.store.index, txn, blob_id, size, location, packed=self.packed.get(blob_id))


# -- refs -------------------------------------------------------------------------------------
def head(store: Store, project: str, txn: Any = None) -> BlobId | None:
    if txn is None:
        with store.index.read() as txn:
            return head(store, project, txn)
    raw = store.index.get(txn, "refs", project_key(project))
    return BlobId(raw) if raw else None


def set_head(store: Store, txn: Any, project: str, version: BlobId) -> None:
    store.index.put(txn, "refs", project_key(project), bytes(version))
    refs_dir = store.root / "refs"  # also a file, so that a lost index can be rebuilt
    refs_dir.mkdir(exist_ok=True)
    tmp = refs_dir / f".{project}.tmp"
    tmp.write_text(version.hex() + "\n")
    tmp.replace(refs_dir / project)


def drop_head(store: Store, project: str) -> None:
    """Forget a project's versions (with the project: `cas rm P`); gc then frees their blobs."""
    with store.index.write() as txn:
        store.index.delete(txn, "refs", project_key(project))
    (store.root / "refs" / project).unlink(missing_ok=True)


def remove_with_history(store: Store, project: str) -> int:
    """Remove a project with its datasets, items and versions (`cas rm P`, `rm -rf` in the
    mount); returns the items removed. `gc` then frees what nothing else holds."""
    removed = store.ns.remove_project(project)
    drop_head(store, project)
    return removed


def history(store: Store, project: str) -> Iterator[Version]:
    """Versions from the head back to the first."""
    current = head(store, project)
    while current is not None:
        version = read_version(store, current)
        yield version
        current = version.parent


def resolve_version(store: Store, project: str, text: str) -> Version:
    """A version by its id or a unique prefix of it (from `cas log`), or as git names them:
    HEAD is the newest, HEAD~N the Nth before it (first parents)."""
    back = _head_offset(text)
    if back is not None:
        versions = list(itertools.islice(history(store, project), back, back + 1))
        if not versions:
            raise NotFound(f"no version {text} in the history of {project} (see `cas log {project}`)")
        return versions[0]
    text = text.lower()
    matches = [v for v in history(store, project) if v.id.hex().startswith(text)]
    if not matches:
        raise NotFound(f"no version {text!r} in the history of {project} (see `cas log {project}`)")
    if len(matches) > 1:
        raise CasError(f"version prefix {text!r} is ambiguous in {project}; give more characters")
    return matches[0]


def _head_offset(text: str) -> int | None:
    """N of 'HEAD~N' (0 for 'HEAD'), or None when text is not such a name."""
    if text == "HEAD":
        return 0
    if text.startswith("HEAD~") and text[5:].isdigit():
        return int(text[5:])
    return None


# -- building trees ---------------------------------------------------------------------------
def _buckets(store: Store, txn: Any, project: str, dataset: str, lo: str | None, hi: str | None,
             writer: TreeWriter) -> list[BucketRef]:
    """The buckets of the items named from `lo` (None: the first) up to `hi` (excluded; None:
    the last), written as the scan goes: one bucket's entries in memory at a time. A link
    item's entry carries its link record. One loop, no call per item but the lookups: a first
    snapshot of a million links runs it a million times."""
    prefix = item_prefix(project, dataset)
    start = item_key(project, dataset, lo) if lo is not None else prefix
    stop = item_key(project, dataset, hi) if hi is not None else None
    blob_record, has_url, sizes = raw_blob_getter(store.index, txn), BlobRecord.raw_has_url, ItemRecord.raw_sizes
    rows = namespace.scan_items(store.index, txn, prefix, start, stop)
    plen = len(prefix)
    out: list[BucketRef] = []
    while True:
        entries: list[Entry] = []
        media_bytes = 0
        for key, raw in itertools.islice(rows, BUCKET_ITEMS):
            media, size, _json_bytes = sizes(raw)
            blob = blob_record(media)
            entries.append((key[plen:].decode(), raw, blob if blob is not None and has_url(blob) else None))
            if size > 0:
                media_bytes += size
        if not entries:
            return out
        out.append(BucketRef(entries[0][0], writer.put(encode_bucket(entries)), len(entries), media_bytes))


def _dataset_tree(store: Store, txn: Any, project: str, dataset: str, old: list[BucketRef],
                  touched: set[int], writer: TreeWriter) -> list[BucketRef]:
    """Buckets of a dataset: all rebuilt without a previous tree, else only the `touched` ones
    (cut again at BUCKET_ITEMS, so a grown bucket splits)."""
    if not old:
        return _buckets(store, txn, project, dataset, None, None, writer)
    out: list[BucketRef] = []
    keep_from = 0
    for i in sorted(touched):
        out.extend(old[keep_from:i])
        lo = old[i].first if i > 0 else None
        hi = old[i + 1].first if i + 1 < len(old) else None
        out.extend(_buckets(store, txn, project, dataset, lo, hi, writer))
        keep_from = i + 1
    out.extend(old[keep_from:])
    return out


def _touched_buckets(store: Store, txn: Any, project: str,
                     previous: dict[str, list[BucketRef]]) -> dict[str, set[int]]:
    """Datasets with items written since the head, each with the indices of its previous
    buckets whose name ranges hold them (empty for a dataset the head does not have: all of
    it is built). One pass over the dirty keys; no name is kept."""
    prefix = project_key(project) + SEP
    firsts: dict[str, list[str]] = {}
    touched: dict[str, set[int]] = {}
    start = prefix
    while True:
        for key in namespace.dirty_keys(store.index, txn, project, start):
            dataset, _, name = key[len(prefix):].rpartition(SEP)
            path = dataset.decode()
            indices = touched.setdefault(path, set())
            if path not in previous:  # built whole: the rest of its marks are skipped, not read
                start = prefix + dataset + SEP + b"\xff"  # above every UTF-8 name
                break
            if path not in firsts:
                firsts[path] = [b.first for b in previous[path]]
            indices.add(max(bisect.bisect_right(firsts[path], name.decode()) - 1, 0))
        else:
            return touched


def _clear_dirty(index: Any, snapped: Any, txn: Any, project: str) -> None:
    """Drop the dirty marks of items the snapshot holds as they are now: an item written again
    since the snapshot's read transaction `snapped` stays dirty for the next snapshot."""
    if txn.id() == snapped.id() + 1:  # nothing was committed since `snapped`: no item was written again
        namespace.clear_dirty(index, txn, project)
        return
    now, then = namespace.raw_item_getter(index, txn), namespace.raw_item_getter(index, snapped)
    namespace.clear_dirty(index, txn, project, keep=lambda key: now(key) != then(key))


def snapshot(store: Store, project: str, message: str = "", merged: BlobId | None = None,
             progress: Callable[[int], object] | None = None, packs: bool = True) -> tuple[Version, bool]:
    """Freeze the project's current state; returns (the version, whether it is new). With
    nothing changed since the head, the head is returned. `merged`: the other parent of a
    merge. Memory stays flat in the project's size: trees are written as they are built.
    `progress` is told of the items frozen, a dataset at a time. `packs`: see TreeWriter."""
    index = store.index
    with store.lock(what="snapshot"):
        writer = TreeWriter(store, packs)
        with index.read() as txn:
            rec = store.ns.project(project, txn)
            current = head(store, project, txn)
            previous: dict[str, list[BucketRef]] = {}  # dataset path -> its buckets in the head
            previous_trees: dict[str, BlobId] = {}
            if current is not None:
                version = read_version(store, current)
                for dataset in read_project(store, version.tree).datasets:
                    previous_trees[dataset.path] = dataset.tree
                    previous[dataset.path] = read_buckets(store, dataset.tree)
            touched = _touched_buckets(store, txn, project, previous)
            datasets = []
            items = size = 0
            for path in store.ns.datasets(project, txn):
                raw = namespace.raw_dataset(index, txn, project, path)
                if path in previous and path not in touched:
                    tree_id, buckets = previous_trees[path], previous[path]
                else:
                    buckets = _dataset_tree(store, txn, project, path, previous.get(path, []),
                                            touched.get(path, set()), writer)
                    tree_id = writer.put(encode_dataset(buckets))
                datasets.append(DatasetRef(path, raw, tree_id))
                in_dataset = sum(b.items for b in buckets)
                items += in_dataset
                size += sum(b.bytes for b in buckets)
                if progress is not None:
                    progress(in_dataset)
            tree = writer.put(encode_project(rec.meta, datasets))
            unchanged = current is not None and version.tree == tree and merged is None
            if not unchanged:
                version_id = writer.put(encode_version(tree, current, time.time_ns(), message, items, size, merged))
            writer.install()
            with index.write() as wtxn:  # beside the read transaction, which `_clear_dirty` compares with
                writer.record(wtxn)
                if not unchanged:
                    set_head(store, wtxn, project, version_id)
                _clear_dirty(index, txn, wtxn, project)
        if unchanged:
            return version, False
        return read_version(store, version_id), True


# -- reading versions -------------------------------------------------------------------------
def learn_remote_blobs(store: Store, sizes: dict[BlobId, int]) -> None:
    """Record blobs that are in the shared remote (not fetched), with their sizes, where the
    remote has them (`Store.record_remote`); blobs the index knows already stay as they are."""
    store.record_remote(sizes)


def add_remote_sizes(sizes: dict[BlobId, int], rec: ItemRecord, link: bytes | None) -> None:
    """Add the blobs an item of a version keeps in the shared remote, with their sizes (a
    link's media stays at its URL)."""
    if link is None:
        sizes[rec.media] = rec.size
    sizes[rec.ann] = rec.ann_size
    if rec.meta is not None:
        sizes[rec.meta] = rec.meta_size
    for _name, blob, size in rec.related or ():
        sizes[blob] = size


def adopt_version(store: Store, version: Version, batch: int = 50_000) -> None:
    """With a shared remote, record the item blobs of `version` that this index does not know
    (a version pushed from elsewhere) as remote, so its items read from the remote on demand.
    The explicit step before a restore puts its items back (their references move)."""
    if store.s3 is None:
        return
    sizes: dict[BlobId, int] = {}
    for _path, _name, rec, link in version_items(store, version):
        add_remote_sizes(sizes, rec, link)
        if len(sizes) >= batch:
            learn_remote_blobs(store, sizes)
            sizes = {}
    learn_remote_blobs(store, sizes)


def reachable(store: Store, heads: list[BlobId] | None = None) -> set[bytes]:
    """Every blob a version needs (of every project here, or from `heads`): trees and the
    items' blobs (for gc)."""
    keep: set[bytes] = set()
    if heads is None:
        with store.index.read() as txn:
            heads = [BlobId(raw) for _key, raw in store.index.scan(txn, "refs")]
    todo = list(heads)
    while todo:
        current: BlobId | None = todo.pop()
        while current is not None and bytes(current) not in keep:
            keep.add(bytes(current))
            version = read_version(store, current)
            if version.merged is not None:
                todo.append(version.merged)
            if bytes(version.tree) not in keep:
                keep.add(bytes(version.tree))
                for dataset in read_project(store, version.tree).datasets:
                    if dataset.tree in keep:
                        continue
                    keep.add(dataset.tree)
                    for bucket in read_buckets(store, dataset.tree):
                        if bucket.tree in keep:
                            continue
                        keep.add(bucket.tree)
                        for _name, record, _link in read_entries(store, bucket.tree):
                            keep.update(bytes(b) for b in ItemRecord.decode(record).blobs())
            current = version.parent
    return keep


@dataclass
class Diff:
    added: list[str]
    removed: list[str]
    changed: list[str]


def _state(store: Store, project: str, version: Version | None) -> dict[str, ItemRecord]:
    if version is not None:
        return {f"{d}/{n}": rec for d, n, rec, _link in version_items(store, version)}
    with store.index.read() as txn:
        return {f"{d}/{n}": rec for d in store.ns.datasets(project, txn) for n, rec in store.ns.items(project, d, txn)}


def diff(store: Store, project: str, old: Version, new: Version | None) -> Diff:
    """Items added, removed and changed (media, annotation or item meta) from `old` to `new`
    (None: the current state)."""
    a, b = _state(store, project, old), _state(store, project, new)
    return Diff(sorted(b.keys() - a.keys()), sorted(a.keys() - b.keys()),
                sorted(k for k in a.keys() & b.keys() if not a[k].same_content(b[k])))


def materialize(store: Store, txn: Any, project: str, version: Version) -> int:
    """Make the project's namespace exactly `version` (inside the caller's transaction):
    datasets, items, meta; references moved; link records restored. Returns items."""
    index, ns = store.index, store.ns
    tree = read_project(store, version.tree)
    if ns.has_project(project, txn):
        ns.clear_project(txn, project)
        ns.write_meta(txn, project, tree.meta)
    else:
        ns.put_new_project(txn, project, tree.meta)
    deltas: Counter[BlobId] = Counter()
    count = 0
    for dataset in tree.datasets:
        namespace.put_raw_dataset(index, txn, project, dataset.path,
                                  dataset.record or DatasetRecord(time.time_ns()).encode())
    for path, name, rec, link in version_items(store, version):
        if link is not None:
            record_link(index, txn, rec.media, BlobRecord.decode(link).with_refcount(0))
        ns.put_item(txn, project, path, name, rec, True, deltas)
        count += 1
    apply_deltas(index, txn, deltas)
    namespace.clear_dirty(index, txn, project)
    index.log_change(txn, project)
    return count


def restore(store: Store, project: str, target: Version) -> Version:
    """Make `target` the current state. The state it replaces is snapshotted first, and the
    restore is a new version on top of it, so nothing becomes unreachable."""
    before, _new = snapshot(store, project, "before restore")
    adopt_version(store, target)
    with store.lock(what="restore"):
        writer = TreeWriter(store)
        version_id = writer.put(encode_version(target.tree, before.id, time.time_ns(),
                                               f"restore {target.id.hex()[:12]}", target.items, target.bytes))
        writer.install()
        with store.index.write() as txn:
            writer.record(txn)
            materialize(store, txn, project, target)
            set_head(store, txn, project, version_id)
    return read_version(store, version_id)
