"""The snapshot tree format, the one place it is spelled out. A version and its trees are
msgpack lists stored as blobs:

    version  ["cas-version", project tree, parent version | None, time ns, message, items, bytes,
              merged version | None]   (a merge keeps the other line of history reachable)
    project  ["cas-project", meta, [DatasetRef, ...]]
    dataset  ["cas-dataset", [BucketRef, ...]]         (in name order)
    bucket   ["cas-bucket", [Entry, ...]]              (in name order; snapshots.BUCKET_ITEMS at most)

    DatasetRef  [dataset path, dataset record, dataset tree]
    BucketRef   [first item name, bucket, items, media bytes]
    Entry       [item name, item record, link record | None]

Other modules build trees with the `encode_*` functions and read them with the `read_*` ones,
as the named tuples and
the `Entry` triple below. `VersionTree` reads one version of a project as the live namespace
is read (`cas.model.reading.NamespaceReader`), so the mount renders either the same way.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

from cas.errors import CasError, NotFound
from cas.ids import BlobId
from cas.locks import renew_after_fork
from cas.model.reading import children_of
from cas.records import ItemRecord, ProjectRecord, unpack

if TYPE_CHECKING:
    from cas.blobs.reader import BlobReader
    from cas.blobs.remote_reader import RemoteReader
    from cas.store import Store

T = TypeVar("T")


@dataclass(frozen=True)
class Version:
    id: BlobId
    tree: BlobId
    parent: BlobId | None
    time: int
    message: str
    items: int
    bytes: int
    merged: BlobId | None = None


class DatasetRef(NamedTuple):
    path: str
    record: bytes | None  # the dataset's index record
    tree: BlobId


class BucketRef(NamedTuple):
    first: str  # the name of its first item: buckets cut a dataset's names in ranges
    tree: BlobId
    items: int
    bytes: int  # media bytes (for `cas log`)


# A bucket entry: (item name, item record encoded, link record | None); a link item's entry
# carries its link record (URL, ETag), so a project can be rebuilt from trees alone. Read as
# decoded (`for name, record, link in read_entries(...)`), not as a named tuple: buckets are
# read by the million items (gc, a version's listing), and a named tuple per item costs more
# than decoding it.
Entry = tuple[str, bytes, bytes | None]


class ProjectTree(NamedTuple):
    meta: dict[str, Any]
    datasets: list[DatasetRef]


# -- building -----------------------------------------------------------------------------------
def encode_version(tree: BlobId, parent: BlobId | None, when: int, message: str, items: int, size: int,
                   merged: BlobId | None = None) -> list[Any]:
    return ["cas-version", tree, parent, when, message, items, size, merged]


def encode_project(meta: dict[str, Any], datasets: list[DatasetRef]) -> list[Any]:
    return ["cas-project", meta, datasets]


def encode_dataset(buckets: list[BucketRef]) -> list[Any]:
    return ["cas-dataset", buckets]


def encode_bucket(entries: list[Entry]) -> list[Any]:
    return ["cas-bucket", entries]


# -- reading ------------------------------------------------------------------------------------
TREES_KEPT = 512  # decoded trees kept per process (a bucket is a few tens of KB)
_trees: OrderedDict[bytes, tuple[str, Any]] = OrderedDict()
_trees_lock = threading.Lock()
renew_after_fork(globals(), "_trees_lock")


def _read(store: Store, blob_id: BlobId, kind: str, decode: Callable[[list[Any]], T]) -> T:
    """A tree of `kind`, decoded. Trees are content addressed and immutable, so decoded ones
    are kept by id (LRU): the versions mount asks for the same buckets often. Callers must not
    change what they get."""
    key, tag = bytes(blob_id), f"cas-{kind}"
    with _trees_lock:
        hit = _trees.get(key)
        if hit is not None:
            _trees.move_to_end(key)
    if hit is None:
        raw = _adopting(store, blob_id, store.read_bytes)
        try:
            obj = unpack(raw)
        except ValueError:  # not msgpack at all (an image, a JSON file)
            obj = None
        found = obj[0] if isinstance(obj, list) and obj and isinstance(obj[0], str) else ""
        hit = (found, decode(obj) if found == tag else None)
        with _trees_lock:
            _trees[key] = hit
            if len(_trees) > TREES_KEPT:
                _trees.popitem(last=False)
    if hit[0] != tag:
        raise CasError(f"blob {blob_id} is not a {kind} tree")
    return cast(T, hit[1])


def _version(obj: list[Any]) -> tuple[Any, ...]:
    _tag, tree, parent, when, message, items, size = obj[:7]
    merged = obj[7] if len(obj) > 7 else None  # versions before merges had seven fields
    return tree, parent, when, message, items, size, merged


def read_version(store: Store, version_id: BlobId) -> Version:
    tree, parent, when, message, items, size, merged = _read(store, version_id, "version", _version)
    return Version(version_id, BlobId(tree), BlobId(parent) if parent else None, when, message, items, size,
                   BlobId(merged) if merged else None)


def read_project(store: Store, tree: BlobId) -> ProjectTree:
    return _read(store, tree, "project", lambda obj: ProjectTree(
        obj[1], [DatasetRef(path, raw, BlobId(t)) for path, raw, t in obj[2]]))


def read_buckets(store: Store, tree: BlobId) -> list[BucketRef]:
    """A dataset tree's buckets, in name order."""
    return _read(store, tree, "dataset", lambda obj: [
        BucketRef(first, BlobId(t), items, size) for first, t, items, size in obj[1]])


def read_entries(store: Store, bucket: BlobId) -> list[Entry]:
    """A bucket's items, in name order."""
    return _read(store, bucket, "bucket", lambda obj: cast(list[Entry], obj[1]))


def version_items(store: Store, version: Version) -> Iterator[tuple[str, str, ItemRecord, bytes | None]]:
    """(dataset, name, item, link record) of every item of a version, in key order."""
    for dataset in read_project(store, version.tree).datasets:
        for bucket in read_buckets(store, dataset.tree):
            for name, record, link in read_entries(store, bucket.tree):
                yield dataset.path, name, ItemRecord.decode(record), link


def _adopting(store: Store, blob_id: BlobId, use: Callable[[BlobId], T]) -> T:
    """`use(blob_id)`; for a blob a version holds that the index does not know but the shared
    remote has (a version pushed from elsewhere: clone and pull record the head's; older
    versions' come on first read), adopted first: recorded as remote, with its size."""
    try:
        return use(blob_id)
    except NotFound:
        if store.adopt_remote(blob_id) is None:
            raise
        return use(blob_id)


def open_version_blob(store: Store, blob_id: BlobId) -> BlobReader | RemoteReader:
    """A reader of a blob an item of a version holds (the versions mount's reads)."""
    return _adopting(store, blob_id, store.open)


class VersionTree:
    """One version of a project, read as the live namespace is (a NamespaceReader). Its
    project's created and modified times are the version's time."""

    def __init__(self, store: Store, project: str, version: Version) -> None:
        tree = read_project(store, version.tree)
        self.store = store
        self.name = project
        self.version = version
        self._record = ProjectRecord(version.time, tree.meta, version.time)
        self._trees = {d.path: d.tree for d in tree.datasets}

    def projects(self) -> list[str]:
        return [self.name]

    def project(self, name: str) -> ProjectRecord:
        if name != self.name:
            raise NotFound(f"version {self.version.id.hex()[:12]} is of project {self.name}, not {name}")
        return self._record

    def datasets(self, project: str) -> list[str]:
        self.project(project)
        return list(self._trees)

    def children(self, project: str, parent: str | None) -> list[str]:
        return children_of(self.datasets(project), parent)

    def has_dataset(self, project: str, dataset: str) -> bool:
        self.project(project)
        return dataset in self._trees

    def _buckets(self, project: str, dataset: str) -> list[BucketRef]:
        self.project(project)
        tree = self._trees.get(dataset)
        if tree is None:
            raise NotFound(f"no dataset {dataset} in version {self.version.id.hex()[:12]} of {project}")
        return read_buckets(self.store, tree)

    def items(self, project: str, dataset: str, txn: Any = None) -> Iterator[tuple[str, ItemRecord]]:
        """A version's items (`txn` is not needed: a version never changes)."""
        for bucket in self._buckets(project, dataset):
            for name, record, _link in read_entries(self.store, bucket.tree):
                yield name, ItemRecord.decode(record)

    def item(self, project: str, dataset: str, name: str) -> ItemRecord:
        """One bisection over the buckets' first names, one within the bucket."""
        buckets = self._buckets(project, dataset)
        i = bisect.bisect_right(buckets, name, key=lambda b: b.first) - 1
        if i >= 0:
            entries = read_entries(self.store, buckets[i].tree)
            j = bisect.bisect_left(entries, name, key=lambda entry: entry[0])
            if j < len(entries):
                found, record, _link = entries[j]
                if found == name:
                    return ItemRecord.decode(record)
        raise NotFound(f"no item {name} in {dataset} of version {self.version.id.hex()[:12]}")
