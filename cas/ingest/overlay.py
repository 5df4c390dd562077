"""What the mount shows before a commit: the namespace with the files closed through the
mount laid over it (a NamespaceReader, cas.model.reading).

A closed file is journaled, then accepted here: its item record (or its removal) is pending
until the committer has written it; an annotation (or item meta) whose image has not
arrived waits, and is attached, checked against the image, when it does. Projects and
datasets change in the index at once, so only items are laid over it. Read-your-writes:
everyone who reads through this mount sees a closed file at once; other processes see it
once its batch commits.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cas.blobs.hashing import hash_bytes
from cas.blobs.reader import BlobReader
from cas.errors import InvalidInput, NotFound
from cas.ids import BlobId
from cas.ingest.closed import ANN, MEDIA, META, REMOVE, Closed, Key
from cas.ingest.journal import COMPACT_BYTES, Journal
from cas.model.annotation import Meta, dumps, empty_annotation, empty_item_annotation, loads
from cas.records import ItemRecord, ProjectRecord

if TYPE_CHECKING:
    from cas.blobs.remote_reader import RemoteReader
    from cas.ingest.committer import Committer
    from cas.store import Store

log = logging.getLogger("cas.mount")
_ABSENT: Any = object()


class Overlay:
    """The pending state of one mount's write-back, and the reads over it. Every change
    happens under `_lock`, which the committer shares (`_cond`)."""

    committer: Committer  # set by the write-back before the first file is accepted

    def __init__(self, store: Store, journal: Journal) -> None:
        self.store = store
        self.journal = journal
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._pending: dict[tuple[str, str], dict[str, ItemRecord | None]] = {}  # None: removed
        self._waiting: dict[tuple[str, str, str, str], Closed] = {}  # project, dataset, item, section
        self._files: dict[BlobId, str] = {}  # uncommitted blobs: their staged files
        self._generated: dict[BlobId, bytes] = {}  # empty annotations made here
        self._empties: dict[tuple[int, int], tuple[BlobId, int]] = {}
        self._metas: dict[str, tuple[int, Meta]] = {}

    # -- reading: the store as it will be once everything closed is committed ------------------
    def projects(self) -> list[str]:
        return self.store.ns.projects()

    def project(self, name: str) -> ProjectRecord:
        return self.store.ns.project(name)

    def datasets(self, project: str) -> list[str]:
        return self.store.ns.datasets(project)

    def children(self, project: str, parent: str | None) -> list[str]:
        return self.store.ns.children(project, parent)

    def has_dataset(self, project: str, dataset: str) -> bool:
        return self.store.ns.has_dataset(project, dataset)

    def item(self, project: str, dataset: str, name: str) -> ItemRecord:
        with self._lock:
            rec = self._pending.get((project, dataset), {}).get(name, _ABSENT)
        if rec is _ABSENT:
            return self.store.ns.item(project, dataset, name)
        if rec is None:
            raise NotFound(f"no item {project}/{dataset}/{name}")
        return rec

    def _current(self, project: str, dataset: str, name: str) -> ItemRecord | None:
        try:
            return self.item(project, dataset, name)
        except NotFound:
            return None

    def items(self, project: str, dataset: str, txn: Any = None) -> Iterator[tuple[str, ItemRecord]]:
        """A dataset's items: the index's (one prefix scan) with uncommitted changes laid over."""
        with self._lock:
            extra = dict(self._pending.get((project, dataset), {}))
        for name, rec in self.store.ns.items(project, dataset, txn):
            current = extra.pop(name, rec) if extra else rec  # None: removed meanwhile
            if current is not None:
                yield name, current
        for name, added in sorted(extra.items()):
            if added is not None:
                yield name, added

    def has_items(self, project: str, dataset: str) -> bool:
        with self._lock:
            pending = self._pending.get((project, dataset), {})
            if any(rec is not None for rec in pending.values()):
                return True
            removed = {name for name, rec in pending.items() if rec is None}
        return any(name not in removed for name, _ in self.store.ns.items(project, dataset))

    def waiting(self, project: str, dataset: str, section: str) -> list[tuple[str, int, int]]:
        """(item, size, mtime) of the annotations (or item meta) waiting for their image."""
        with self._lock:
            return sorted((c.item, c.size, c.mtime) for (p, d, _, s), c in self._waiting.items()
                          if (p, d, s) == (project, dataset, section))

    def take_waiting(self, project: str, dataset: str) -> list[tuple[str, str, bytes]]:
        """(section, item, bytes) of the annotations (or item meta) of a dataset waiting for
        their image, forgotten here: a folder turning into a drop takes them."""
        with self._lock:
            taken = [c for key, c in self._waiting.items() if key[:2] == (project, dataset)]
            for c in taken:
                del self._waiting[c.key + (c.section,)]
        out = [(c.section, c.item, self.closed_bytes(c)) for c in taken if c.id is not None]  # None: reset to empty
        for c in taken:
            self._drop(c)
        return out

    def waiting_file(self, project: str, dataset: str, item: str, section: str) -> Closed | None:
        with self._lock:
            return self._waiting.get((project, dataset, item, section))

    def open_blob(self, blob_id: BlobId) -> bytes | BlobReader | RemoteReader:
        """A reader of a blob, committed or not (generated content comes as bytes)."""
        with self._lock:
            data = self._generated.get(blob_id)
            path = self._files.get(blob_id)
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC) if path is not None else -1
        if fd >= 0:
            return BlobReader(fd, blob_id, os.fstat(fd).st_size)
        if data is not None and not self.store.has(blob_id):
            return data
        return self.store.open(blob_id)

    def read_blob(self, blob_id: BlobId) -> bytes:
        reader = self.open_blob(blob_id)
        if isinstance(reader, bytes):
            return reader
        with reader:
            return reader.readall()

    def closed_bytes(self, c: Closed) -> bytes:
        """The bytes of a closed (journaled) file: its spool file, or the blob it duplicates."""
        if c.file is not None:
            with open(c.file, "rb") as f:
                return f.read()
        assert c.id is not None
        return self.read_blob(c.id)

    def empty_annotation(self, width: int, height: int) -> tuple[BlobId, int]:
        """The id and size of the empty annotation of an image of that size."""
        with self._lock:
            hit = self._empties.get((width, height))
            if hit is None:
                data = dumps(empty_annotation(width, height))
                hit = self._empties[(width, height)] = (hash_bytes(data), len(data))
                self._generated[hit[0]] = data
            return hit

    def empty_for(self, project: str, item: ItemRecord | Closed) -> tuple[BlobId, int]:
        """The id and size of the empty annotation of an item (or a media file closed): an
        image's is shared by every image of its size; a video's and a point cloud's are keyed
        by the media (`empty_item_annotation`)."""
        media = item.media if isinstance(item, ItemRecord) else item.id
        project_type = self.meta(project).project_type
        if project_type == "images" or media is None:
            return self.empty_annotation(item.width, item.height)
        data = dumps(empty_item_annotation(project_type, item.width, item.height, media, item.facts))
        blob = hash_bytes(data)
        with self._lock:
            self._generated[blob] = data  # a few hundred bytes per video or cloud written here
        return blob, len(data)

    def meta(self, project: str) -> Meta:
        """The project's meta, parsed once per change."""
        rec = self.store.ns.project(project)
        hit = self._metas.get(project)
        if hit is None or hit[0] != rec.mtime:
            hit = self._metas[project] = (rec.mtime, Meta(rec.meta, f"{project}/meta.json"))
        return hit[1]

    # -- laying closed files over the namespace (lock held) --------------------------------------
    def _accept(self, c: Closed, wait: bool = False) -> None:
        """Lay a journaled record over the pending state and queue it."""
        current = self._current(*c.key)
        if c.section == REMOVE:
            self._set(c.key, None)
            self.committer.push(c)
        elif c.section == MEDIA:
            assert c.id is not None
            if current is not None and current.ann != self.empty_for(c.project, current)[0]:
                ann, ann_size = current.ann, current.ann_size
            else:
                ann, ann_size = self.empty_for(c.project, c)
            if c.file is not None:
                self._files[c.id] = c.file
            self._set(c.key, ItemRecord(c.id, ann, c.size, ann_size, c.width, c.height, c.mime, c.mtime,
                                        current.meta if current else None, current.meta_size if current else 0,
                                        c.facts))
            self.committer.push(c)
            for section in (ANN, META):
                waiting = self._waiting.pop((*c.key, section), None)
                if waiting is not None:
                    self._attach(waiting)
        elif current is None and c.id is None:
            self.journal.done([c.seq])  # clearing what is gone already
        elif current is None or wait:
            old = self._waiting.get((*c.key, c.section))
            self._waiting[(*c.key, c.section)] = c
            if old is not None:
                self._drop(old)
        else:
            self._apply_json(c, current)

    def _attach(self, c: Closed) -> None:
        """A waiting annotation whose image is here: checked against it, else it keeps waiting."""
        current = self._current(*c.key)
        assert current is not None
        if c.section == ANN and c.id is not None:
            try:
                ann = loads(self.closed_bytes(c), c.label)
                self.meta(c.project).check_item_annotation(ann, c.label, current.width, current.height)
            except InvalidInput as e:
                log.info("%s keeps waiting: %s", c.label, e)
                self._waiting[(*c.key, c.section)] = c
                return
        self._apply_json(c, current)

    def _apply_json(self, c: Closed, current: ItemRecord) -> None:
        if c.section == ANN:
            ann, size = (c.id, c.size) if c.id is not None else self.empty_for(c.project, current)
            rec = replace(current, ann=ann, ann_size=size, mtime=c.mtime)
        else:
            rec = replace(current, meta=c.id, meta_size=c.size, mtime=c.mtime)
        if c.file is not None and c.id is not None:
            self._files[c.id] = c.file
        self._set(c.key, rec)
        self.committer.push(c)

    def _set(self, key: Key, rec: ItemRecord | None) -> None:
        self._pending.setdefault(key[:2], {})[key[2]] = rec

    def _drop(self, c: Closed) -> None:
        """Forget a journaled file that will never be committed."""
        self.journal.done([c.seq])
        if c.file is not None:
            try:
                os.unlink(c.file)
            except FileNotFoundError:
                pass

    # -- what the committer takes and gives back (lock held) ------------------------------------
    def batch(self, batch: list[Closed]) -> tuple[dict[Key, ItemRecord | None], dict[BlobId, str | bytes]]:
        """The records a batch commits, and the source of each blob it may have to install."""
        records = {c.key: self._pending[c.key[:2]][c.item] for c in batch}
        sources: dict[BlobId, str | bytes] = {}
        for c in batch:
            if c.file is not None and c.id is not None:
                sources.setdefault(c.id, c.file)
        for rec in records.values():
            if rec is not None and rec.ann in self._generated:
                sources.setdefault(rec.ann, self._generated[rec.ann])
        return records, sources

    def committed(self, batch: list[Closed], records: dict[Key, ItemRecord | None]) -> None:
        """A batch is in the index: what it laid over the namespace goes (unless written again)."""
        for key, rec in records.items():
            pending = self._pending.get(key[:2])
            if pending is not None and pending.get(key[2], _ABSENT) is rec:
                del pending[key[2]]
                if not pending:
                    del self._pending[key[:2]]
        for c in batch:
            if c.file is not None and c.id is not None and self._files.get(c.id) == c.file:
                del self._files[c.id]

    def compact(self) -> None:
        """With nothing queued, the journal needs only the waiting files."""
        if not self._waiting:
            if self.journal.size():
                self.journal.truncate()
        elif self.journal.size() > COMPACT_BYTES:
            self.journal.rewrite([c.encode() for c in sorted(self._waiting.values(), key=lambda c: c.seq)])
