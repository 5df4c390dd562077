"""Projects, datasets (nested with '/'), items and project meta over the index.

Keys: projects `P`; datasets `P\\0a/b`; items `P\\0a/b\\0name`. Listing a
dataset is one prefix scan; nothing loads the whole tree.

The only module that names the projects, datasets, items and dirty tables: the functions
below the class give the other layers raw (undecoded) access where they decode lazily.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from cas.blobs.catalog import adjust_refcount
from cas.errors import AlreadyExists, Conflict, InvalidInput, NotFound, shown
from cas.ids import BlobId
from cas.index import SEP, Index, dataset_key, item_key, item_prefix, project_key, split_dataset_key
from cas.model.annotation import Meta, default_meta
from cas.model.layout import sections
from cas.model.names import check_dataset_path, check_name
from cas.model.reading import children_of
from cas.records import DatasetRecord, ItemRecord, ProjectRecord, content_differences

if TYPE_CHECKING:
    import lmdb


class Namespace:
    """Read and change projects, datasets and items. Every change is one transaction. The
    live `NamespaceReader` (cas.model.reading)."""

    def __init__(self, index: Index) -> None:
        self.index = index

    # -- the one place item records are written (snapshots learn what changed here) -------
    def write_item(self, txn: lmdb.Transaction[bytes], key: bytes, raw: bytes, overwrite: bool = True) -> bool:
        """Write an item record; without `overwrite`, only if the key is new (whether it was)."""
        if not self.index.put(txn, "items", key, raw, overwrite=overwrite):
            return False
        self.index.put(txn, "dirty", key, b"")
        return True

    def delete_item(self, txn: lmdb.Transaction[bytes], key: bytes) -> None:
        self.index.delete(txn, "items", key)
        self.index.put(txn, "dirty", key, b"")

    # -- projects -------------------------------------------------------------
    def projects(self, txn: lmdb.Transaction[bytes] | None = None) -> list[str]:
        if txn is None:
            with self.index.read() as txn:
                return self.projects(txn)
        return [k.decode() for k, _ in self.index.scan(txn, "projects")]

    def project(self, name: str, txn: lmdb.Transaction[bytes] | None = None) -> ProjectRecord:
        if txn is None:
            with self.index.read() as txn:
                return self.project(name, txn)
        raw = self.index.get(txn, "projects", project_key(name))
        if raw is None:
            raise NotFound(f"no project named {name!r}")
        return ProjectRecord.decode(raw)

    def has_project(self, name: str, txn: lmdb.Transaction[bytes] | None = None) -> bool:
        if txn is None:
            with self.index.read() as txn:
                return self.has_project(name, txn)
        return self.index.get(txn, "projects", project_key(name)) is not None

    def create_project(self, name: str, meta: dict[str, Any] | None = None) -> ProjectRecord:
        check_name(name, "project name")
        meta = Meta(meta if meta is not None else default_meta()).raw
        with self.index.write() as txn:
            if self.has_project(name, txn):
                raise AlreadyExists(f"project {name!r} exists")
            return self.put_new_project(txn, name, meta)

    def put_new_project(self, txn: lmdb.Transaction[bytes], name: str, meta: dict[str, Any]) -> ProjectRecord:
        """Record a project (its meta already validated) inside `txn`."""
        now = time.time_ns()
        rec = ProjectRecord(now, meta, now)
        self.index.put(txn, "projects", project_key(name), rec.encode())
        return rec

    def write_meta(self, txn: lmdb.Transaction[bytes], name: str, meta: dict[str, Any]) -> None:
        """Store an already validated meta for an existing project."""
        rec = self.project(name, txn)
        self.index.put(txn, "projects", project_key(name), ProjectRecord(rec.created, meta, time.time_ns()).encode())
        self.index.log_change(txn, name)

    # -- datasets -------------------------------------------------------------
    def datasets(self, project: str, txn: lmdb.Transaction[bytes] | None = None) -> list[str]:
        """Every dataset path of a project, parents before children."""
        if txn is None:
            with self.index.read() as txn:
                return self.datasets(project, txn)
        prefix = project_key(project) + b"\x00"
        return [split_dataset_key(k)[1] for k, _ in self.index.scan(txn, "datasets", prefix)]

    def children(self, project: str, parent: str | None, txn: lmdb.Transaction[bytes] | None = None) -> list[str]:
        """Dataset names directly under `parent` (None: top level)."""
        return children_of(self.datasets(project, txn), parent)

    def has_dataset(self, project: str, dataset: str, txn: lmdb.Transaction[bytes] | None = None) -> bool:
        if txn is None:
            with self.index.read() as txn:
                return self.has_dataset(project, dataset, txn)
        return self.index.get(txn, "datasets", dataset_key(project, dataset)) is not None

    def ensure_dataset(self, txn: lmdb.Transaction[bytes], project: str, dataset: str) -> bool:
        """Create a dataset and its parents inside `txn`; True if anything was created."""
        check_dataset_path(dataset)
        created = False
        parts = dataset.split("/")
        for depth in range(1, len(parts) + 1):
            key = dataset_key(project, "/".join(parts[:depth]))
            if self.index.get(txn, "datasets", key) is None:
                self.index.put(txn, "datasets", key, DatasetRecord(time.time_ns()).encode())
                created = True
        return created

    def create_dataset(self, project: str, dataset: str) -> None:
        with self.index.write() as txn:
            self.project(project, txn)
            if self.has_dataset(project, dataset, txn):
                raise AlreadyExists(f"dataset {project}/{dataset} exists")
            self.ensure_dataset(txn, project, dataset)

    # -- items ----------------------------------------------------------------
    def items(self, project: str, dataset: str, txn: lmdb.Transaction[bytes] | None = None,
              after: str | None = None) -> Iterator[tuple[str, ItemRecord]]:
        """Items of one dataset in name order (one prefix scan)."""
        with self.index.read() if txn is None else contextlib.nullcontext(txn) as txn:
            prefix = item_prefix(project, dataset)
            plen = len(prefix)
            decode = ItemRecord.decode
            for key, raw in self.index.scan(txn, "items", prefix):
                name = key[plen:].decode()
                if after is not None and name <= after:
                    continue
                yield name, decode(raw)

    def item_names(self, project: str, dataset: str, starting: str = "", limit: int | None = None) -> list[str]:
        """Names of a dataset's items that start with `starting`, in order (one prefix scan,
        nothing decoded)."""
        prefix = item_prefix(project, dataset)
        with self.index.read() as txn:
            keys = (key for key, _raw in self.index.scan(txn, "items", prefix + starting.encode()))
            return [key[len(prefix):].decode() for key in itertools.islice(keys, limit)]

    def count_items(self, project: str, dataset: str, txn: lmdb.Transaction[bytes] | None = None) -> int:
        if txn is None:
            with self.index.read() as txn:
                return self.count_items(project, dataset, txn)
        return sum(1 for _ in self.index.scan(txn, "items", item_prefix(project, dataset)))

    def has_items(self, project: str, dataset: str) -> bool:
        """Whether a dataset holds any item (the first key of its range, not a count)."""
        with self.index.read() as txn:
            return next(self.index.scan(txn, "items", item_prefix(project, dataset)), None) is not None

    def item(self, project: str, dataset: str, name: str, txn: lmdb.Transaction[bytes] | None = None) -> ItemRecord:
        if txn is None:
            with self.index.read() as txn:
                return self.item(project, dataset, name, txn)
        raw = self.index.get(txn, "items", item_key(project, dataset, name))
        if raw is None:
            raise NotFound(f"no item {project}/{dataset}/{name}")
        return ItemRecord.decode(raw)

    def put_item(self, txn: lmdb.Transaction[bytes], project: str, dataset: str, name: str,
                 rec: ItemRecord, overwrite: bool, deltas: Counter[BlobId] | None = None,
                 encoded: bytes | None = None) -> str:
        """Insert or replace one item, moving references (or adding the moves to `deltas`,
        for the caller to apply once per blob). `encoded`: the record encoded, when the caller
        has it. Returns 'added', 'skipped' or 'replaced'."""
        key = item_key(project, dataset, name)
        encoded = encoded if encoded is not None else rec.encode()
        if self.write_item(txn, key, encoded, overwrite=False):  # a new item: one search of the table, not two
            outcome = "added"
        else:
            old_raw = self.index.get(txn, "items", key)
            assert old_raw is not None  # the write above found the key
            old = ItemRecord.decode(old_raw)
            if old.same_content(rec):
                return "skipped"
            if not overwrite:
                differs = content_differences((old.media, rec.media), (old.ann, rec.ann), (old.meta, rec.meta),
                                              sections(self.project(project, txn).project_type).noun)
                raise Conflict(f"item {project}/{dataset}/{name} exists with a different {differs} "
                               "(use --overwrite to replace it)")
            for blob in old.blobs():
                self._move_ref(txn, blob, -1, deltas)
            outcome = "replaced"
            self.index.log_change(txn, project, dataset, name)
            self.write_item(txn, key, encoded)
        for blob in rec.blobs():
            self._move_ref(txn, blob, +1, deltas)
        return outcome

    def _move_ref(self, txn: lmdb.Transaction[bytes], blob: BlobId, delta: int, deltas: Counter[BlobId] | None) -> None:
        if deltas is None:
            adjust_refcount(self.index, txn, blob, delta)
        else:
            deltas[blob] += delta

    def _drop_items(self, txn: lmdb.Transaction[bytes], prefix: bytes) -> int:
        keys = []
        for key, raw in self.index.scan(txn, "items", prefix):
            for blob in ItemRecord.decode(raw).blobs():
                adjust_refcount(self.index, txn, blob, -1)
            keys.append(key)
        for key in keys:
            self.delete_item(txn, key)
        return len(keys)

    def remove_item(self, project: str, dataset: str, name: str) -> None:
        with self.index.write() as txn:
            for blob in self.item(project, dataset, name, txn).blobs():
                adjust_refcount(self.index, txn, blob, -1)
            self.delete_item(txn, item_key(project, dataset, name))
            self.index.log_change(txn, project, dataset, name)

    def rename_item(self, project: str, dataset: str, name: str, new_dataset: str, new_name: str,
                    overwrite: bool = True) -> None:
        """Move an item (its blobs and header facts) to another name or dataset of the project."""
        check_name(new_name, "item name")
        with self.index.write() as txn:
            rec = self.item(project, dataset, name, txn)
            if not self.has_dataset(project, new_dataset, txn):
                raise NotFound(f"no dataset {project}/{new_dataset}")
            new_key = item_key(project, new_dataset, new_name)
            if new_key == item_key(project, dataset, name):
                return
            old = self.index.get(txn, "items", new_key)
            if old is not None:
                if not overwrite:
                    raise AlreadyExists(f"item {project}/{new_dataset}/{new_name} exists")
                for blob in ItemRecord.decode(old).blobs():
                    adjust_refcount(self.index, txn, blob, -1)
            self.write_item(txn, new_key, rec.encode())
            self.delete_item(txn, item_key(project, dataset, name))
            self.index.log_change(txn, project, dataset, name)
            self.index.log_change(txn, project, new_dataset, new_name)

    def rename_dataset(self, project: str, dataset: str, new_dataset: str) -> int:
        """Rename a dataset with its nested datasets and items (one transaction); returns items moved."""
        check_dataset_path(new_dataset)
        if new_dataset == dataset or new_dataset.startswith(dataset + "/"):
            raise InvalidInput(f"{project}/{new_dataset}", "cannot move a dataset into itself")
        with self.index.write() as txn:
            if not self.has_dataset(project, dataset, txn):
                raise NotFound(f"no dataset {project}/{dataset}")
            if self.has_dataset(project, new_dataset, txn):
                raise AlreadyExists(f"dataset {project}/{new_dataset} exists")
            parent = new_dataset.rpartition("/")[0]
            if parent and not self.has_dataset(project, parent, txn):
                raise NotFound(f"no dataset {project}/{parent}")
            moved = 0
            for path in [d for d in self.datasets(project, txn) if d == dataset or d.startswith(dataset + "/")]:
                target = new_dataset + path[len(dataset):]
                for key, raw in list(self.index.scan(txn, "items", item_prefix(project, path))):
                    name = key[len(item_prefix(project, path)):].decode()
                    self.write_item(txn, item_key(project, target, name), raw)
                    self.delete_item(txn, key)
                    moved += 1
                record = self.index.get(txn, "datasets", dataset_key(project, path))
                assert record is not None  # listed by self.datasets in this transaction
                self.index.put(txn, "datasets", dataset_key(project, target), record)
                self.index.delete(txn, "datasets", dataset_key(project, path))
            self.index.log_change(txn, project, dataset)
            return moved

    def remove_dataset(self, project: str, dataset: str) -> int:
        """Remove a dataset, its nested datasets and their items; returns items removed."""
        with self.index.write() as txn:
            if not self.has_dataset(project, dataset, txn):
                raise NotFound(f"no dataset {project}/{dataset}")
            removed = 0
            for path in [d for d in self.datasets(project, txn) if d == dataset or d.startswith(dataset + "/")]:
                removed += self._drop_items(txn, item_prefix(project, path))
                self.index.delete(txn, "datasets", dataset_key(project, path))
            self.index.log_change(txn, project, dataset)
            return removed

    def clear_project(self, txn: lmdb.Transaction[bytes], project: str) -> int:
        """Remove every dataset and item of a project, keeping the project (in `txn`)."""
        removed = 0
        for path in self.datasets(project, txn):
            removed += self._drop_items(txn, item_prefix(project, path))
            self.index.delete(txn, "datasets", dataset_key(project, path))
        return removed

    def remove_project(self, project: str) -> int:
        with self.index.write() as txn:
            self.project(project, txn)
            removed = 0
            for path in self.datasets(project, txn):
                removed += self._drop_items(txn, item_prefix(project, path))
                self.index.delete(txn, "datasets", dataset_key(project, path))
            self.index.delete(txn, "projects", project_key(project))
            self.index.log_change(txn, project)
            return removed


# -- raw rows, for the passes that decode lazily (snapshots, fsck, gc, stats, usage) ----------------
def raw_item(index: Index, txn: lmdb.Transaction[bytes], key: bytes) -> bytes | None:
    """The encoded record of the item under `key` (see cas.index.item_key), or None."""
    return index.get(txn, "items", key)


def raw_item_getter(index: Index, txn: lmdb.Transaction[bytes]) -> Callable[[bytes], bytes | None]:
    """A fast lookup of encoded item records by key, for loops over many items in one transaction."""
    return index.getter(txn, "items")


def scan_items(index: Index, txn: lmdb.Transaction[bytes], prefix: bytes = b"", start: bytes = b"",
               stop: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
    """(key, encoded record) of the items whose key starts with `prefix` (a project's
    `project_key(P) + SEP`, a dataset's `item_prefix`), in key order, from `start` up to
    `stop` (excluded; None: no bound)."""
    if not start and stop is None:
        return index.scan(txn, "items", prefix)
    return index.scan_range(txn, "items", start, stop, prefix)


def item_values(index: Index, txn: lmdb.Transaction[bytes]) -> Iterator[bytes]:
    """Every encoded item record, of every project (for whole-store passes: iterated in C)."""
    return index.values(txn, "items")


def scan_dataset_keys(index: Index, txn: lmdb.Transaction[bytes]) -> Iterator[bytes]:
    """The key of every dataset of every project, in key order (fsck: datasets without a project)."""
    return (key for key, _raw in index.scan(txn, "datasets"))


def raw_dataset(index: Index, txn: lmdb.Transaction[bytes], project: str, dataset: str) -> bytes | None:
    """A dataset's encoded record (a version keeps it as it is), or None."""
    return index.get(txn, "datasets", dataset_key(project, dataset))


def put_raw_dataset(index: Index, txn: lmdb.Transaction[bytes], project: str, dataset: str, raw: bytes) -> None:
    """Record a dataset from its encoded record (a version's restore; its parents are the caller's)."""
    index.put(txn, "datasets", dataset_key(project, dataset), raw)


def forget_dataset_key(index: Index, txn: lmdb.Transaction[bytes], key: bytes) -> None:
    """Drop one dataset record by key, leaving its items (fsck's repair of a dataset without a project)."""
    index.delete(txn, "datasets", key)


def counts(index: Index, txn: lmdb.Transaction[bytes]) -> dict[str, int]:
    """How many projects, datasets and items the store has (from the tables' statistics)."""
    return {"projects": index.count(txn, "projects"), "datasets": index.count(txn, "datasets"),
            "items": index.count(txn, "items")}


def dirty_keys(index: Index, txn: lmdb.Transaction[bytes], project: str, start: bytes = b"") -> Iterator[bytes]:
    """The keys of a project's items written (or removed) since its last snapshot, in key order
    (from `start`, a key within the project, if given)."""
    prefix = project_key(project) + SEP
    return (key for key, _raw in index.scan_range(txn, "dirty", start or prefix, None, prefix))


def clear_dirty(index: Index, txn: lmdb.Transaction[bytes], project: str,
                keep: Callable[[bytes], bool] | None = None) -> None:
    """Drop a project's dirty marks, except those of the item keys `keep` holds for."""
    prefix = project_key(project) + SEP
    if keep is None:
        index.prune(txn, "dirty", prefix)
    else:
        index.prune(txn, "dirty", prefix, lambda key, _value: not keep(key))


def widen_meta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two metas of one import (one per source folder) as one: classes and tags by name; a
    class that has two shapes becomes `any`. Only widens: what `a` accepts, the result does."""
    classes = {c["title"]: dict(c) for c in a.get("classes", [])}
    for cls in b.get("classes", []):
        old = classes.setdefault(cls["title"], dict(cls))
        if old["shape"] != cls["shape"]:
            old["shape"] = "any"
    tags = {t["name"]: t for t in a.get("tags", [])}
    for tag in b.get("tags", []):
        tags.setdefault(tag["name"], tag)
    return {**a, "classes": list(classes.values()), "tags": list(tags.values())}


def merge_meta(current: dict[str, Any], incoming: dict[str, Any], file: str) -> dict[str, Any]:
    """Union of classes and tags by name; the same name with a different shape or type is an error."""
    merged = {**current, "classes": list(current.get("classes", [])), "tags": list(current.get("tags", []))}
    if incoming.get("projectType", "images") != current.get("projectType", "images"):
        raise InvalidInput(file, f"project type {shown(incoming.get('projectType'))} differs from the existing "
                                 f"project's {shown(current.get('projectType'))}", "projectType")
    classes = {c["title"]: c for c in merged["classes"]}
    for i, cls in enumerate(incoming.get("classes", [])):
        old = classes.get(cls["title"])
        if old is None:
            merged["classes"].append(cls)
        elif old["shape"] != cls["shape"]:
            raise InvalidInput(file, f"class {cls['title']!r} has shape {cls['shape']} but the existing project "
                                     f"has {old['shape']}", f"classes[{i}].shape")
    tags = {t["name"]: t for t in merged["tags"]}
    for i, tag in enumerate(incoming.get("tags", [])):
        old = tags.get(tag["name"])
        if old is None:
            merged["tags"].append(tag)
        elif old["value_type"] != tag["value_type"] or old.get("values") != tag.get("values"):
            raise InvalidInput(file, f"tag {tag['name']!r} differs from the existing project's tag of that name",
                               f"tags[{i}]")
    return merged
