"""`/<project>/.versions/<version id>/...`: each version of a project, read-only, in the
same Supervisely layout, answered from its trees (`cas.versions.snapshots`). Versions never
change, so their trees, once decoded, are cached. `.versions` is not listed in the
project directory (tools that walk a project see only its datasets); it is there to be
opened by name."""

from __future__ import annotations

import bisect
import functools
import json
from collections.abc import Iterator
from typing import Any

from cas.errors import CasError, InvalidName, NotFound
from cas.ids import BlobId
from cas.model.layout import JSON_SECTIONS, META_NAME, NESTED, media_section
from cas.records import ItemRecord
from cas.store import Store
from cas.versions.snapshots import Version, history, read_tree, read_version

from .paths import Kind, Target
from .view import DIR_MODE, RO_FILE_MODE, Attrs, _attrs, item_attrs

RO_DIR_MODE = DIR_MODE & ~0o222


def _read_only(attrs: Attrs) -> Attrs:
    # a link imported without its size shows 0 (it is opened with direct I/O)
    return {**attrs, "st_mode": RO_FILE_MODE, "st_size": max(attrs["st_size"], 0)}


class VersionView:
    def __init__(self, store: Store) -> None:
        self.store = store
        # caches of this view's own (not a class-wide cache that would keep every view alive)
        self.version = functools.lru_cache(maxsize=256)(self._version)
        self._tree = functools.lru_cache(maxsize=256)(self._read_tree)

    def _version(self, project: str, version_id: str) -> Version:
        try:
            vid = BlobId.from_hex(version_id)
        except InvalidName:
            raise NotFound(f"no version {version_id!r} of {project}") from None
        try:
            version = read_version(self.store, vid)
        except CasError:  # not a version object here, nor one the shared remote has
            raise NotFound(f"no version {version_id} of {project}") from None
        return version

    def _read_tree(self, tree: BlobId) -> tuple[dict[str, Any], dict[str, BlobId]]:
        _tag, meta, datasets = read_tree(self.store, tree, "project")
        return meta, {path: BlobId(t) for path, _raw, t in datasets}

    def _datasets(self, t: Target) -> tuple[Version, dict[str, Any], dict[str, BlobId]]:
        version = self.version(t.project, t.version)
        meta, datasets = self._tree(version.tree)
        return version, meta, datasets

    def media_dir(self, t: Target) -> str:
        return media_section(self._datasets(t)[1].get("projectType", "images"))

    def project_meta(self, t: Target) -> bytes:
        return json.dumps(self._datasets(t)[1], indent=4, ensure_ascii=False).encode()

    def _children(self, datasets: dict[str, BlobId], parent: str | None) -> list[str]:
        depth = 0 if parent is None else parent.count("/") + 1
        return sorted(p.rsplit("/", 1)[-1] for p in datasets if p.count("/") == depth
                      and (parent is None or p.startswith(parent + "/")))

    def _items(self, tree: BlobId) -> Iterator[tuple[str, ItemRecord]]:
        for bucket in read_tree(self.store, tree, "dataset")[1]:
            for name, raw, _link in read_tree(self.store, BlobId(bucket[1]), "bucket")[1]:
                yield name, ItemRecord.decode(raw)

    def item(self, t: Target) -> ItemRecord:
        _v, _meta, datasets = self._datasets(t)
        tree = datasets.get(t.dataset)
        if tree is None:
            raise NotFound(f"no dataset {t.dataset} in version {t.version}")
        buckets = read_tree(self.store, tree, "dataset")[1]
        i = bisect.bisect_right([b[0] for b in buckets], t.item) - 1
        if i >= 0:
            for name, raw, _link in read_tree(self.store, BlobId(buckets[i][1]), "bucket")[1]:
                if name == t.item:
                    return ItemRecord.decode(raw)
        raise NotFound(f"no item {t.item} in {t.dataset} of version {t.version}")

    # -- what the mount asks ------------------------------------------------------------------
    def getattr(self, t: Target) -> Attrs:
        if t.kind is Kind.VERSIONS:
            self.store.ns.project(t.project)
            return _attrs(RO_DIR_MODE, 0, self.store.ns.project(t.project).created)
        version, _meta, datasets = self._datasets(t)
        if t.kind is Kind.PROJECT:
            return _attrs(RO_DIR_MODE, 0, version.time)
        if t.kind is Kind.PROJECT_META:
            return _attrs(RO_FILE_MODE, len(self.project_meta(t)), version.time)
        if t.dataset not in datasets:
            raise NotFound(f"no dataset {t.dataset} in version {t.version}")
        if t.kind is Kind.DATASET:
            return _attrs(RO_DIR_MODE, 0, version.time)
        if t.section not in (self.media_dir(t), *JSON_SECTIONS, NESTED) or \
                (t.section == NESTED and not self._children(datasets, t.dataset)):
            raise NotFound(f"{t.section}/ does not exist here")
        if t.kind is Kind.SECTION:
            return _attrs(RO_DIR_MODE, 0, version.time)
        if t.section == NESTED:
            raise NotFound("datasets/ holds only datasets")
        item = self.item(t)
        if t.section == "meta" and item.meta is None:
            raise NotFound(f"item {t.item} has no item meta")
        return _read_only(item_attrs(t.section, t.item, item))

    def readdir(self, t: Target) -> Iterator[tuple[str, Attrs | None]]:
        yield ".", None
        yield "..", None
        if t.kind is Kind.VERSIONS:
            for v in history(self.store, t.project):
                yield v.id.hex(), _attrs(RO_DIR_MODE, 0, v.time)
            return
        version, _meta, datasets = self._datasets(t)
        if t.kind is Kind.PROJECT:
            yield META_NAME, self.getattr(Target(Kind.PROJECT_META, t.project, version=t.version))
            for child in self._children(datasets, None):
                yield child, _attrs(RO_DIR_MODE, 0, version.time)
        elif t.kind is Kind.DATASET:
            self.getattr(t)
            for section in (self.media_dir(t), *JSON_SECTIONS):
                yield section, _attrs(RO_DIR_MODE, 0, version.time)
            if self._children(datasets, t.dataset):
                yield NESTED, _attrs(RO_DIR_MODE, 0, version.time)
        elif t.kind is Kind.SECTION:
            self.getattr(t)
            if t.section == NESTED:
                for child in self._children(datasets, t.dataset):
                    yield child, _attrs(RO_DIR_MODE, 0, version.time)
                return
            suffix = ".json" if t.section in JSON_SECTIONS else ""
            for name, item in self._items(datasets[t.dataset]):
                if t.section == "meta" and item.meta is None:
                    continue
                yield name + suffix, _read_only(item_attrs(t.section, name, item))
        else:
            raise NotADirectoryError(t)
