"""What the mount shows: the Supervisely layout (`cas.model.layout`) rendered over a
NamespaceReader (`cas.model.reading`), as attributes, listings and generated contents.

The live mount reads the namespace with what was written through the mount laid over it:
items closed but not committed yet (the WriteBack, itself a NamespaceReader), annotations
waiting for their image, scratch files with temporary names, and the entries `Hidden` keeps
out of a copy's way. A version of a project (`cas.versions.trees.VersionTree`) is rendered
by the same View, read-only, with nothing laid over it. Never touches blob bytes: sizes
come from item records. Generated files (meta.json, img_info/*.json, .cas/stats.json) are
small and built on demand.
"""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from cas.blobs.catalog import raw_blob_getter
from cas.errors import NotFound
from cas.ids import BlobId
from cas.ingest import WriteBack
from cas.ingest.scratch import Node
from cas.maintenance.stats import compute as compute_stats
from cas.model.layout import (
    EPISODE_ANNOTATION,
    INFO_SECTIONS,
    JSON_SECTIONS,
    MEDIA_SECTIONS,
    META_NAME,
    NESTED,
    RELATED_SECTIONS,
    Sections,
    sections,
)
from cas.model.reading import NamespaceReader
from cas.records import UNKNOWN_SIZE, BlobRecord, ItemRecord
from cas.store import Store

from .hidden import Hidden
from .paths import CAS_DIR_NAME, STATS_NAME, Kind, Target

DIR_MODE = stat.S_IFDIR | 0o755
FILE_MODE = stat.S_IFREG | 0o644
RO_FILE_MODE = stat.S_IFREG | 0o444
WRITE_BITS = 0o222
Attrs = dict[str, int]


def _attrs(mode: int, size: int, mtime: int) -> Attrs:
    return {"st_mode": mode, "st_nlink": 2 if mode & stat.S_IFDIR else 1, "st_size": size,
            "st_blocks": (size + 511) // 512, "st_mtime": mtime, "st_ctime": mtime, "st_atime": mtime,
            "st_uid": 0, "st_gid": 0}


def dir_attrs(mtime: int, read_only: bool = False) -> Attrs:
    return _attrs(DIR_MODE & ~WRITE_BITS if read_only else DIR_MODE, 0, mtime)


def new_file_attrs(mtime: int) -> Attrs:
    """Attributes of a file being written that is not in the store yet."""
    return _attrs(FILE_MODE, 0, mtime)


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat().replace("+00:00", "Z")


_IMG_INFO = """{
    "name": %s,
    "hash": "%s",
    "blob": "%s",
    "size": %s,
    "width": %s,
    "height": %s,
    "mime": %s,
    "ext": %s,
    "link": null,
    "created_at": "%s",
    "updated_at": "%s"
}"""


def img_info(name: str, item: ItemRecord) -> bytes:
    """The img_info/<item>.json of an item (Supervisely-like keys plus the blob id), as
    `json.dumps(..., indent=4)` writes it; filled in a template because a listing of img_info/
    sizes every entry this way (json's indented encoder is pure Python, 10x slower). What is not
    known yet (a link's size before any HEAD or read, its dimensions) is null, not a sentinel."""
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    media, when = item.media.hex(), _iso(item.mtime)
    size = "null" if item.size == UNKNOWN_SIZE else item.size
    return (_IMG_INFO % (json.dumps(name), media, media, size, item.width or "null", item.height or "null",
                         json.dumps(item.mime), json.dumps(ext), when, when)).encode()


def item_blob(section: str, name: str, item: ItemRecord) -> tuple[BlobId, int]:
    """The blob (and its size) behind an item's file in img/ (video/), ann/, meta/, its
    related file `name` ('<folder>/<file>') in related_images/, or (no section) its episode's
    file `name` (`cas.model.episode`)."""
    if not section:
        if name == EPISODE_ANNOTATION:
            return item.ann, item.ann_size
        section = "meta"
    if section in RELATED_SECTIONS:
        try:
            _name, blob, size = item.related_file(name.partition("/")[2])
        except KeyError:
            raise NotFound(f"no related file {name}") from None
        return blob, size
    if section == "ann":
        return item.ann, item.ann_size
    if section == "meta":
        if item.meta is None:
            raise NotFound(f"item {name} has no item meta")
        return item.meta, item.meta_size
    return item.media, item.size


def item_attrs(section: str, name: str, item: ItemRecord) -> Attrs:
    """Attributes of an item's file in one section (img/, ann/, meta/, img_info/)."""
    if section in INFO_SECTIONS:
        return _attrs(RO_FILE_MODE, len(img_info(name, item)), item.mtime)
    return _attrs(FILE_MODE if section else RO_FILE_MODE, item_blob(section, name, item)[1], item.mtime)


class View:
    """Resolution of targets against `source`: the live namespace (`writeback`, when the
    mount is writable) or a version tree. `read_only` takes the write bits off every mode."""

    def __init__(self, store: Store, source: NamespaceReader, writeback: WriteBack | None = None,
                 hidden: Hidden | None = None, read_only: bool = False) -> None:
        self.store = store
        self.source = source
        self.wb = writeback  # None on a read-only mount and in a version
        self.hidden = hidden if hidden is not None else Hidden()  # nothing hidden: nothing written here
        self.read_only = read_only
        self.mounted_at = time.time_ns()
        self._sections: dict[str, tuple[float, Sections]] = {}

    # -- records -------------------------------------------------------------------------
    def sections(self, project: str) -> Sections:
        """The folders of the project's datasets (by its type); cached for a second (asked on
        every file lookup)."""
        now = time.monotonic()
        hit = self._sections.get(project)
        if hit is None or now - hit[0] > 1.0:
            hit = self._sections[project] = (now, sections(self.source.project(project).project_type))
        return hit[1]

    def forget_sections(self, project: str) -> None:
        """Drop the cached folders of `project`, whose type may change (its meta.json written, the
        project made here turned into a drop)."""
        self._sections.pop(project, None)

    def item(self, t: Target, sized: bool = True) -> ItemRecord:
        """The item a file stands for; without `sized`, as recorded (size -1: a link whose
        size is not known yet)."""
        if t.section in RELATED_SECTIONS:
            item = self.related_owner(t)
        elif not t.section:  # a file of the dataset itself: an episode's, on each of its frames
            first = next(self.source.items(t.project, t.dataset), None)
            if first is None:
                raise NotFound(f"episode {t.dataset} has no frames")
            item = first[1]
        else:
            item = self.source.item(t.project, t.dataset, t.item)
        return self.sized(item) if sized else item

    def related_owner(self, t: Target) -> ItemRecord:
        """The item whose related folder `t` is in (or is): a volume's masks are in a folder of
        its name; 'a_pcd' is a.pcd's, as a rule (the folder is the item's name with each '.'
        made '_'); else a scan of the dataset."""
        folder = t.name.partition("/")[0]
        kind = self.sections(t.project)
        base, _, ext = folder.rpartition("_")
        try:
            item = self.source.item(t.project, t.dataset, folder if kind.related_as_item else f"{base}.{ext}")
            if item.related:
                return item
        except NotFound:
            pass
        if kind.related_as_item:  # no other item's folder has this name
            raise NotFound(f"no item has related files in {t.path}")
        for name, item in self.source.items(t.project, t.dataset):
            if item.related and kind.related_folder(name) == folder:
                return item
        raise NotFound(f"no item has related files in {t.path}")

    def sized(self, item: ItemRecord, txn: Any = None) -> ItemRecord:
        """A link item imported without its size shows the size a first read learned, else 0
        (such files are opened with direct I/O, so a reader still gets every byte)."""
        if item.size >= 0:
            return item
        if txn is None:
            with self.store.index.read() as txn:
                return self.sized(item, txn)
        raw = raw_blob_getter(self.store.index, txn)(bytes(item.media))
        return item.with_size(max(BlobRecord.raw_summary(raw)[0], 0) if raw is not None else 0)

    def scratch(self, path: str) -> Node | None:
        return self.wb.scratch.get(path) if self.wb is not None else None

    def project_meta(self, project: str) -> bytes:
        """meta.json: the bytes written through this mount while they are still the meta."""
        rec = self.source.project(project)
        written = self.wb.written_meta(project, rec.mtime) if self.wb is not None else None
        return written if written is not None else json.dumps(rec.meta, indent=4, ensure_ascii=False).encode()

    def stats(self) -> bytes:
        return json.dumps(compute_stats(self.store), indent=2).encode()

    # -- attributes ------------------------------------------------------------------------
    def getattr(self, t: Target) -> Attrs:
        attrs = self._getattr(t)
        if self.read_only:
            attrs["st_mode"] &= ~WRITE_BITS
        return attrs

    def _getattr(self, t: Target) -> Attrs:
        if t.kind in (Kind.ROOT, Kind.CAS_DIR):
            return _attrs(DIR_MODE, 0, self.mounted_at)
        if t.kind is Kind.STATS:
            return _attrs(RO_FILE_MODE, len(self.stats()), time.time_ns())
        if t.kind is Kind.STAGED:
            return self.scratch_attrs(t.path)
        if t.kind is Kind.FILE:  # the hot path: one index lookup
            return self.file_attrs(t)
        self._check_section(t)
        project = self.source.project(t.project)
        if t.kind is Kind.PROJECT:
            return _attrs(DIR_MODE, 0, project.created)
        if t.kind is Kind.PROJECT_META:
            if self.hidden.meta_hidden(t.project):
                raise NotFound(f"{t.project}/meta.json is not written yet")
            return _attrs(FILE_MODE, len(self.project_meta(t.project)), project.mtime or project.created)
        if not self.source.has_dataset(t.project, t.dataset):
            raise NotFound(f"no dataset {t.project}/{t.dataset}")
        if t.kind is Kind.DATASET:
            return _attrs(DIR_MODE, 0, project.created)
        if t.kind is Kind.RELATED:
            if not self.item(t).related:
                raise NotFound(f"no related files in {t.path}")
            return _attrs(DIR_MODE, 0, project.created)
        # a section: img/, ann/, ..., datasets/
        if self.hidden.section_hidden(t.project, t.dataset, t.section):
            raise NotFound(f"{t.section}/ of new dataset {t.dataset} is not made yet")
        if t.section == NESTED and not self.hidden.is_new(t.project, t.dataset) \
                and not self.hidden.has_nested(t.project, t.dataset) and not self.source.children(t.project, t.dataset):
            raise NotFound(f"dataset {t.dataset} has no nested datasets")
        return _attrs(DIR_MODE, 0, project.created)

    def scratch_attrs(self, path: str) -> Attrs:
        node = self.scratch(path)
        if node is None:
            raise NotFound(f"nothing at {path}")
        if node.file is None:
            return _attrs(DIR_MODE, 0, node.mtime)
        return _attrs(FILE_MODE, node.file.size, node.mtime)

    def _check_section(self, t: Target) -> None:
        if t.section and t.section != NESTED and t.section not in self.sections(t.project).listed:
            raise NotFound(f"{t.section}/ does not exist in project {t.project}")

    def check_file(self, t: Target) -> None:
        """NotFound for a file no listing shows: in a section of another project type or in
        datasets/, or hidden until it is written."""
        self._check_section(t)
        if t.section == NESTED:
            raise NotFound("datasets/ holds only datasets")
        if not t.section and t.name not in self.sections(t.project).files:
            raise NotFound(f"a dataset of project {t.project} has no {t.name}")
        if self.hidden.file_hidden(t.project, t.dataset, t.section, t.item):
            raise NotFound(f"{t.section}/{t.name} is not written yet")

    def file_attrs(self, t: Target) -> Attrs:
        if self.scratch(t.path) is not None:  # an img_info/ write, an empty new file
            self._check_section(t)
            return self.scratch_attrs(t.path)
        self.check_file(t)
        item_name = t.item
        try:
            item = self.item(t)
        except NotFound:
            waiting = self.wb.waiting_file(t.project, t.dataset, item_name, t.section) if self.wb else None
            if waiting is not None:
                return _attrs(FILE_MODE, waiting.size, waiting.mtime)
            raise
        return item_attrs(t.section, item_name, item)

    # -- listings --------------------------------------------------------------------------
    def readdir(self, t: Target) -> Iterator[tuple[str, Attrs | None]]:
        """(name, attributes) of every entry; one prefix scan for a section."""
        if not self.read_only:
            yield from self._entries(t)
            return
        for name, attrs in self._entries(t):
            if attrs is not None:
                attrs["st_mode"] &= ~WRITE_BITS
            yield name, attrs

    def _entries(self, t: Target) -> Iterator[tuple[str, Attrs | None]]:
        yield ".", None
        yield "..", None
        if t.kind is Kind.ROOT:
            for project in self.source.projects():
                yield project, self.getattr(Target(Kind.PROJECT, project))
            yield CAS_DIR_NAME, self.getattr(Target(Kind.CAS_DIR))
        elif t.kind is Kind.CAS_DIR:
            yield STATS_NAME, self.getattr(Target(Kind.STATS))
            return
        elif t.kind is Kind.PROJECT:
            if not self.hidden.meta_hidden(t.project):
                yield META_NAME, self.getattr(Target(Kind.PROJECT_META, t.project))
            for child in self.source.children(t.project, None):
                yield child, self.getattr(Target(Kind.DATASET, t.project, child))
        elif t.kind is Kind.DATASET:
            self.source.project(t.project)
            self.hidden.dataset_listed(t.project, t.dataset)
            for section in self.sections(t.project).listed:
                yield section, self.getattr(Target(Kind.SECTION, t.project, t.dataset, section))
            for name in self.sections(t.project).files:
                try:
                    yield name, self.getattr(Target(Kind.FILE, t.project, t.dataset, "", name))
                except NotFound:  # an episode with no frames
                    continue
            if self.source.children(t.project, t.dataset) or self.hidden.has_nested(t.project, t.dataset):
                yield NESTED, self.getattr(Target(Kind.SECTION, t.project, t.dataset, NESTED))
        elif t.kind is Kind.SECTION:
            self.getattr(t)
            yield from self._section(t)
        elif t.kind is Kind.RELATED:
            self.getattr(t)
            item = self.item(t, sized=False)
            for name, _blob, _size in item.related or ():
                yield name, item_attrs(t.section, f"{t.name}/{name}", item)
        elif t.kind is Kind.STAGED:
            if self.scratch_attrs(t.path)["st_mode"] & stat.S_IFDIR == 0:
                raise NotADirectoryError(t.path)
        else:
            raise NotADirectoryError(t)
        yield from self._scratch_entries(t.path)

    def _scratch_entries(self, path: str) -> Iterator[tuple[str, Attrs]]:
        if self.wb is not None:
            for name, _node in self.wb.scratch.children(path):
                yield name, self.scratch_attrs(f"{path.rstrip('/')}/{name}")

    def section_entries(self, t: Target) -> Iterator[tuple[str, Attrs | None]]:
        """What a section lists (its scratch files aside)."""
        if t.section == NESTED:
            for child in self.source.children(t.project, t.dataset):
                yield child, self.getattr(Target(Kind.DATASET, t.project, f"{t.dataset}/{child}"))
            return
        if t.section in RELATED_SECTIONS:
            created = self.source.project(t.project).created
            kind = self.sections(t.project)
            for name, item in self.source.items(t.project, t.dataset):
                if item.related:
                    yield kind.related_folder(name), _attrs(DIR_MODE, 0, created)
            return
        suffix = ".json" if t.section in JSON_SECTIONS else ""
        shadows = set()
        if t.section in INFO_SECTIONS and self.wb is not None:
            shadows = {name for name, _ in self.wb.scratch.children(t.path)}
        sized = t.section in MEDIA_SECTIONS or t.section in INFO_SECTIONS  # ann/, meta/ never show a link's size
        with self.store.index.read() as txn:  # the items and their links' sizes, from one snapshot
            for name, item in self.source.items(t.project, t.dataset, txn):
                if t.section == "meta" and item.meta is None:
                    continue
                if self.hidden.file_hidden(t.project, t.dataset, t.section, name) or name + suffix in shadows:
                    continue
                yield name + suffix, item_attrs(t.section, name, self.sized(item, txn) if sized else item)
        if self.wb is not None and t.section in ("ann", "meta"):
            for name, size, mtime in self.wb.waiting(t.project, t.dataset, t.section):
                yield name + ".json", _attrs(FILE_MODE, size, mtime)

    def _section(self, t: Target) -> Iterator[tuple[str, Attrs | None]]:
        self.hidden.section_listed(t.project, t.dataset, t.section)  # a person looked: show what is there
        yield from self.section_entries(t)
