"""Write-back for the mount: files closed at Supervisely positions become items in batches.

close() validates what the bytes allow (image header, annotation JSON against the
project meta and the image size), appends one record to the journal and returns. A
file's bytes are written once: a new blob's into the spool file that is hard-linked
into place at the commit, a duplicate's never (see staged.py). A committer thread makes
each batch durable the way `cas import` does: blobs into place, one sync, one index
transaction. A batch is committed BATCH_DELAY after its first file, once BATCH_FILES
are queued, or at once when a barrier asks: `barrier()` (fsync, unmount)
returns when everything closed before it is committed. Until then a closed file is
served from its staged bytes to everyone who reads through this mount
(read-your-writes); other processes that read the store see it once its batch commits.

An annotation (or item meta) closed before its image waits in the journal, not only
in memory, and is attached when the image arrives (or when the project's meta.json
makes it valid). A SIGKILLed daemon leaves its staging directory; the next WriteBack
on the store replays it (see journal.py).
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cas.blobs.hashing import hash_bytes, hash_file
from cas.blobs.reader import BlobReader
from cas.blobs.refcounts import apply_deltas, get_blob, record_new_blob
from cas.blobs.spool import HEAD, Spooled, spool_bytes
from cas.errors import CasError, InvalidInput, NotFound, StoreBusy
from cas.ids import BlobId
from cas.index import item_key
from cas.ingest.journal import (
    COMPACT_BYTES,
    INSTALLING,
    PREFIX,
    Journal,
    ingest_dirs,
    installing,
    live_records,
    try_lock,
)
from cas.ingest.scratch import ScratchTree
from cas.ingest.staged import StagedFile
from cas.model.annotation import Meta, dumps, empty_annotation, loads
from cas.model.media import MediaInfo, probe_image, probe_video
from cas.records import ItemRecord, ProjectRecord

if TYPE_CHECKING:
    from cas.blobs.remote_reader import RemoteReader
    from cas.store import Store

log = logging.getLogger("cas.mount")

MEDIA, ANN, META, REMOVE = "media", "ann", "meta", "remove"
BATCH_DELAY = 0.5  # seconds a batch waits for more files after its first (unless a barrier asks) ...
BATCH_FILES = 1000  # ... or until this many are queued: as `cas import` batches
RETRY_DELAY = 1.0  # after a failed commit (a full disk): the batch stays queued and is retried
MAX_JSON = 64 << 20  # an annotation or meta file larger than this is refused
Key = tuple[str, str, str]  # project, dataset, item
_ABSENT: Any = object()


@dataclass(slots=True)
class Closed:
    """A file closed at a Supervisely position (or an item removed): journaled, not committed."""

    seq: int
    section: str  # MEDIA, ANN, META or REMOVE
    project: str
    dataset: str
    item: str
    file: str | None  # its staged bytes; None: an empty annotation, no item meta, a removal
    id: BlobId | None
    size: int = 0
    width: int = 0
    height: int = 0
    mime: str = ""
    mtime: int = 0

    @property
    def key(self) -> Key:
        return self.project, self.dataset, self.item

    @property
    def label(self) -> str:
        suffix = "" if self.section in (MEDIA, REMOVE) else ".json"
        section = "img" if self.section in (MEDIA, REMOVE) else self.section
        return f"{self.project}/{self.dataset}/{section}/{self.item}{suffix}"

    def encode(self) -> list[Any]:
        return [self.seq, self.section, self.project, self.dataset, self.item,
                os.path.basename(self.file) if self.file else None, bytes(self.id) if self.id else None,
                self.size, self.width, self.height, self.mime, self.mtime]

    @classmethod
    def decode(cls, record: list[Any], directory: Path) -> Closed:
        seq, section, project, dataset, item, file, blob, *rest = record
        return cls(seq, section, project, dataset, item, str(directory / file) if file else None,
                   BlobId(blob) if blob else None, *rest)


def _as_os_error(e: BaseException) -> OSError:
    """A failed commit as the errno a writer should see (a full disk is ENOSPC, even from LMDB)."""
    if isinstance(e, OSError) and e.errno:
        return e
    if "No space left" in str(e):
        return OSError(errno.ENOSPC, str(e))
    return OSError(errno.EIO, str(e))


class WriteBack:
    """The engine behind a writable mount (see the module docstring). One per daemon."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._queue: list[Closed] = []
        self._pending: dict[tuple[str, str], dict[str, ItemRecord | None]] = {}  # None: removed
        self._waiting: dict[tuple[str, str, str, str], Closed] = {}  # project, dataset, item, section
        self._files: dict[BlobId, str] = {}  # uncommitted blobs: their staged files
        self._generated: dict[BlobId, bytes] = {}  # empty annotations made here
        self._empties: dict[tuple[int, int], tuple[BlobId, int]] = {}
        self._metas: dict[str, tuple[int, Meta]] = {}
        self._written_meta: dict[str, tuple[int, bytes]] = {}  # project -> (its mtime, meta.json as written)
        self._pushed = self._committed = self._failures = 0
        self._error: OSError | None = None
        self._urgent = self._stopping = False
        self.directory, self._lock_fd, adopted = self._claim_directory()
        self.journal = Journal(self.directory)
        self.scratch = ScratchTree(str(self.directory))
        self._seq = itertools.count(1)
        self._maybe_orphans: set[bytes] = set()
        self._replay(adopted)
        self._thread = threading.Thread(target=self._run, name="cas-commit", daemon=True)
        self._thread.start()
        if self._maybe_orphans:
            self._remove_orphans()

    # -- reading: the store as it will be once everything closed is committed ------------------
    # (a NamespaceReader, cas.model.reading: projects and datasets change in the index at once)
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

    def empty_annotation(self, width: int, height: int) -> tuple[BlobId, int]:
        """The id and size of the empty annotation of an image of that size."""
        with self._lock:
            hit = self._empties.get((width, height))
            if hit is None:
                data = dumps(empty_annotation(width, height))
                hit = self._empties[(width, height)] = (hash_bytes(data), len(data))
                self._generated[hit[0]] = data
            return hit

    # -- closing files -----------------------------------------------------------------------
    def close_media(self, project: str, dataset: str, name: str, staged: StagedFile, label: str) -> None:
        """An image (video) closed at `<dataset>/img/<name>`: probe it and queue it. A bad file
        raises InvalidInput and changes nothing."""
        meta = self.meta(project)
        blob_id, size = staged.digest()
        info = self._probe(staged, meta, label)
        current = self._current(project, dataset, name)
        if current is not None and (current.width, current.height) != (info.width, info.height) \
                and current.ann != self.empty_annotation(current.width, current.height)[0]:
            ann_label = f"{project}/{dataset}/ann/{name}.json"
            ann = loads(self.read_blob(current.ann), ann_label)
            try:
                self._check_ann(meta, ann, ann_label, info.width, info.height)
            except InvalidInput as e:
                raise InvalidInput(label, f"the item's annotation does not fit the new image ({e}); "
                                          "write the new annotation first") from None
        staged.seal()
        self._close(Closed(0, MEDIA, project, dataset, name, self._bytes_for(staged, blob_id), blob_id, size,
                           info.width, info.height, info.mime, time.time_ns()))

    def close_json(self, project: str, dataset: str, section: str, item: str, staged: StagedFile, label: str,
                   defer: bool = False) -> None:
        """An annotation (section 'ann') or item meta ('meta') closed: checked against the project
        meta and the image size, or with `defer` (a project whose meta.json has not arrived)
        kept waiting unchecked. Its bytes are stored as written."""
        if staged.size > MAX_JSON:
            raise InvalidInput(label, f"larger than {MAX_JSON >> 20} MiB")
        parsed = loads(staged.getvalue(), label)
        if section == META and not isinstance(parsed, dict):
            raise InvalidInput(label, "expected a JSON object", "$")
        if section == ANN and not defer:
            current = self._current(project, dataset, item)
            self._check_ann(self.meta(project), parsed, label, current.width if current else None,
                            current.height if current else None)
        blob_id, size = staged.digest()
        staged.seal()
        self._close(Closed(0, section, project, dataset, item, self._bytes_for(staged, blob_id), blob_id, size,
                           mtime=time.time_ns()), wait=defer)

    def _bytes_for(self, staged: StagedFile, blob_id: BlobId) -> str | None:
        """The spool file that will become the blob; None for a duplicate of a blob that is
        stored (and referenced) or pending already: its bytes are never written."""
        if staged.path is None:
            with self._lock:
                pending = blob_id in self._files
            if pending:
                return None
            with self.store.index.read() as txn:
                rec = get_blob(self.store.index, txn, blob_id)
            if rec is not None and rec.refs > 0:  # an unreferenced one may be gc's before the commit
                return None
        return staged.spill()

    def closed_bytes(self, c: Closed) -> bytes:
        """The bytes of a closed (journaled) file: its spool file, or the blob it duplicates."""
        if c.file is not None:
            with open(c.file, "rb") as f:
                return f.read()
        assert c.id is not None
        return self.read_blob(c.id)

    def remove_item(self, project: str, dataset: str, name: str) -> None:
        self.item(project, dataset, name)
        self._close(Closed(0, REMOVE, project, dataset, name, None, None, mtime=time.time_ns()))

    def clear_json(self, project: str, dataset: str, section: str, item: str) -> None:
        """Reset an item's annotation to empty, or remove its item meta; a waiting one is dropped."""
        with self._lock:
            waiting = self._waiting.pop((project, dataset, item, section), None)
            if waiting is not None:
                self._drop(waiting)
                return
        self.item(project, dataset, item)
        self._close(Closed(0, section, project, dataset, item, None, None, mtime=time.time_ns()))

    def set_project_meta(self, project: str, meta: dict[str, Any], raw: bytes | None = None) -> None:
        """Replace a project's meta (every annotation is checked against it), then attach the
        waiting annotations it makes valid. `raw`: the bytes it was written as, which
        `written_meta` gives back while it stays the meta."""
        self.barrier()
        self.store.set_meta(project, meta)
        if raw is not None:
            self._written_meta[project] = (self.store.ns.project(project).mtime, raw)
        with self._lock:
            for key in [k for k in self._waiting if k[0] == project]:
                closed = self._waiting.pop(key, None)
                if closed is not None and self._current(*closed.key) is not None:
                    self._attach(closed)
                elif closed is not None:
                    self._waiting[key] = closed

    def written_meta(self, project: str, mtime: int) -> bytes | None:
        """meta.json as written through the mount, if the project's meta is still that one
        (its record's `mtime`)."""
        hit = self._written_meta.get(project)
        return hit[1] if hit is not None and hit[0] == mtime else None

    def meta(self, project: str) -> Meta:
        """The project's meta, parsed once per change."""
        rec = self.store.ns.project(project)
        hit = self._metas.get(project)
        if hit is None or hit[0] != rec.mtime:
            hit = self._metas[project] = (rec.mtime, Meta(rec.meta, f"{project}/meta.json"))
        return hit[1]

    def _probe(self, staged: StagedFile, meta: Meta, label: str) -> MediaInfo:
        if meta.project_type == "videos":
            return probe_video(staged.spill(), label)
        size = staged.size
        head = staged.read(HEAD, 0)
        tail = staged.read(64, max(size - 64, 0))
        fallback = staged.read(16 << 20, 0) if size > len(head) else None
        return probe_image(head, tail, label, fallback)

    @staticmethod
    def _check_ann(meta: Meta, ann: Any, label: str, width: int | None, height: int | None) -> None:
        if meta.project_type == "videos":
            meta.check_video_annotation(ann, label, width, height)
        else:
            meta.check_annotation(ann, label, width, height)

    def _close(self, closed: Closed, wait: bool = False) -> None:
        with self._lock:
            closed.seq = next(self._seq)
            self.journal.append(closed.encode())  # the promise: from here on it survives a crash
            self._accept(closed, wait)

    def _accept(self, c: Closed, wait: bool = False) -> None:
        """Lay a journaled record over the pending state and queue it (lock held)."""
        current = self._current(*c.key)
        if c.section == REMOVE:
            self._set(c.key, None)
            self._push(c)
        elif c.section == MEDIA:
            assert c.id is not None
            if current is not None and current.ann != self.empty_annotation(current.width, current.height)[0]:
                ann, ann_size = current.ann, current.ann_size
            else:
                ann, ann_size = self.empty_annotation(c.width, c.height)
            if c.file is not None:
                self._files[c.id] = c.file
            self._set(c.key, ItemRecord(c.id, ann, c.size, ann_size, c.width, c.height, c.mime, c.mtime,
                                        current.meta if current else None, current.meta_size if current else 0))
            self._push(c)
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
                self._check_ann(self.meta(c.project), ann, c.label, current.width, current.height)
            except InvalidInput as e:
                log.info("%s keeps waiting: %s", c.label, e)
                self._waiting[(*c.key, c.section)] = c
                return
        self._apply_json(c, current)

    def _apply_json(self, c: Closed, current: ItemRecord) -> None:
        if c.section == ANN:
            ann, size = (c.id, c.size) if c.id is not None else self.empty_annotation(current.width, current.height)
            rec = replace(current, ann=ann, ann_size=size, mtime=c.mtime)
        else:
            rec = replace(current, meta=c.id, meta_size=c.size, mtime=c.mtime)
        if c.file is not None and c.id is not None:
            self._files[c.id] = c.file
        self._set(c.key, rec)
        self._push(c)

    def _set(self, key: Key, rec: ItemRecord | None) -> None:
        self._pending.setdefault(key[:2], {})[key[2]] = rec

    def _push(self, c: Closed) -> None:
        self._queue.append(c)
        self._pushed += 1
        if len(self._queue) in (1, BATCH_FILES):  # the committer sleeps until then: no wake-up per file
            self._cond.notify_all()

    def _drop(self, c: Closed) -> None:
        """Forget a journaled file that will never be committed (lock held)."""
        self.journal.done([c.seq])
        if c.file is not None:
            try:
                os.unlink(c.file)
            except FileNotFoundError:
                pass

    # -- committing ----------------------------------------------------------------------------
    def pending(self) -> int:
        """Files closed and not committed yet."""
        with self._lock:
            return self._pushed - self._committed

    def barrier(self) -> None:
        """Return once everything closed before the call is committed; OSError if a commit
        failed meanwhile (ENOSPC for a full disk)."""
        with self._cond:
            target, failures = self._pushed, self._failures
            while self._committed < target:
                if self._failures != failures and self._error is not None:
                    raise OSError(self._error.errno, f"commit of files written into the mount failed: "
                                                     f"{self._error.strerror or self._error}")
                self._urgent = True
                self._cond.notify_all()
                self._cond.wait(1.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                deadline = time.monotonic() + BATCH_DELAY
                while not self._urgent and not self._stopping and len(self._queue) < BATCH_FILES \
                        and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                batch, self._queue = self._queue, []
                records = {c.key: self._pending[c.key[:2]][c.item] for c in batch}
                sources: dict[BlobId, str | bytes] = {}
                for c in batch:
                    if c.file is not None and c.id is not None:
                        sources.setdefault(c.id, c.file)
                for rec in records.values():
                    if rec is not None and rec.ann in self._generated:
                        sources.setdefault(rec.ann, self._generated[rec.ann])
            try:
                self._commit(batch, records, sources)
            except Exception as e:  # noqa: BLE001 - a failed batch stays queued; writers see it at fsync
                error = _as_os_error(e)
                if error.errno == errno.EIO:
                    log.exception("commit of %d files failed", len(batch))
                else:
                    log.error("commit of %d files failed: %s", len(batch), error.strerror or error)
                with self._cond:
                    self._queue[:0] = batch
                    self._error = error
                    self._failures += 1
                    self._cond.notify_all()
                    if self._stopping:
                        return
                    self._cond.wait(RETRY_DELAY)
                continue
            with self._cond:
                self._committed += len(batch)
                self._error = None
                for key, rec in records.items():
                    pending = self._pending.get(key[:2])
                    if pending is not None and pending.get(key[2], _ABSENT) is rec:
                        del pending[key[2]]
                        if not pending:
                            del self._pending[key[:2]]
                for c in batch:
                    if c.file is not None and c.id is not None and self._files.get(c.id) == c.file:
                        del self._files[c.id]
                if not self._queue:
                    self._urgent = False
                    self._compact()
                self._cond.notify_all()
            for c in batch:
                if c.file is not None:
                    try:
                        os.unlink(c.file)
                    except FileNotFoundError:
                        pass

    def _commit(self, batch: list[Closed], records: dict[Key, ItemRecord | None],
                sources: dict[BlobId, str | bytes]) -> None:
        """One batch: new blobs into place, one sync, one transaction, one journal record."""
        store, index, ns = self.store, self.store.index, self.store.ns
        with store.lock(what="commit files written into the mount"):
            with index.read() as txn:
                new = {blob: src for blob, src in sources.items() if get_blob(index, txn, blob) is None}
            made: list[str] = []
            if new:  # so that a crash between the files and the transaction leaves no orphan behind
                self.journal.append([INSTALLING, [bytes(blob) for blob in new]])
            try:
                sizes = {blob: self._install(blob, src, made) for blob, src in new.items()}
                if sizes:
                    store.write_backend.sync()
                with index.write() as txn:
                    for blob, size in sizes.items():
                        record_new_blob(index, txn, blob, size, store.write_backend.location)
                    deltas: Counter[BlobId] = Counter()
                    for (project, dataset, name), rec in records.items():
                        if index.get(txn, "projects", project.encode()) is None:
                            log.warning("project %s was removed before %s/%s was committed", project, dataset, name)
                            continue
                        if rec is None:
                            raw = index.get(txn, "items", item_key(project, dataset, name))
                            if raw is not None:
                                deltas.subtract(ItemRecord.decode(raw).blobs())
                                ns.delete_item(txn, item_key(project, dataset, name))
                                index.log_change(txn, project, dataset, name)
                            continue
                        ns.ensure_dataset(txn, project, dataset)
                        ns.put_item(txn, project, dataset, name, rec, True, deltas)
                    apply_deltas(index, txn, deltas)
            except BaseException:
                for path in made:  # not recorded: leave no orphan behind
                    os.unlink(path)
                raise
        self.journal.done([c.seq for c in batch])

    def _install(self, blob: BlobId, source: str | bytes, made: list[str]) -> int:
        """Put one new blob in place; its size. A staged file is hard-linked, never copied."""
        backend = self.store.write_backend
        if isinstance(source, bytes):
            backend.install(spool_bytes(source), str(self.directory))
            if backend is self.store.backend:
                made.append(self.store.backend.path(blob))
            return len(source)
        size = os.stat(source).st_size
        if backend is self.store.backend:
            if self.store.backend.link_in(source, blob):
                made.append(self.store.backend.path(blob))
            return size
        upload = f"{source}.upload"
        os.link(source, upload)
        backend.install(Spooled(blob, size, b"", b"", tmp=upload), str(self.directory))
        return size

    def _compact(self) -> None:
        """With nothing queued, the journal needs only the waiting files (lock held)."""
        if not self._waiting:
            if self.journal.size():
                self.journal.truncate()
        elif self.journal.size() > COMPACT_BYTES:
            self.journal.rewrite([c.encode() for c in sorted(self._waiting.values(), key=lambda c: c.seq)])

    # -- the staging directory: claimed, replayed, released ------------------------------------
    def _claim_directory(self) -> tuple[Path, int, list[Path]]:
        """Take over the staging directories of dead daemons (the first becomes ours), or make one."""
        dead: list[tuple[Path, int]] = []
        for directory in ingest_dirs(self.store.tmp_dir):
            fd = try_lock(directory)
            if fd is not None:
                dead.append((directory, fd))
        if dead:
            (mine, fd), others = dead[0], dead[1:]
            for _, other_fd in others:
                os.close(other_fd)  # replayed into ours below; relocked there
            return mine, fd, [mine, *(d for d, _ in others)]
        mine = Path(tempfile.mkdtemp(prefix=PREFIX, dir=self.store.tmp_dir))
        fd = try_lock(mine)
        if fd is None:
            raise CasError(f"cannot lock the new staging directory {mine}")
        return mine, fd, []

    def _replay(self, directories: list[Path]) -> None:
        """Re-apply what dead daemons journaled and did not commit (ours first, in order)."""
        replayed = 0
        for directory in directories:
            if directory != self.directory and try_lock(directory) is None:
                continue  # another mount took it meanwhile
            records = live_records(directory)
            self._maybe_orphans |= installing(directory)
            self._seq = itertools.count(max((r[0] for r in records), default=0) + 1) \
                if directory == self.directory else self._seq
            keep = {"journal", "lock"}
            for record in records:
                closed = Closed.decode(record, directory)
                if directory != self.directory:
                    closed = self._move_in(closed)
                if not self._still_whole(closed):
                    continue
                if closed.file is not None:
                    keep.add(os.path.basename(closed.file))
                with self._lock:
                    self._accept(closed)
                replayed += 1
            if directory != self.directory:
                shutil.rmtree(directory, ignore_errors=True)
            else:
                for entry in os.scandir(directory):  # scratch files of the dead daemon
                    if entry.name not in keep:
                        os.unlink(entry.path)
        if replayed:
            log.info("replayed %d files closed in a mount that stopped before committing them", replayed)

    def _remove_orphans(self) -> None:
        """Blob files a killed daemon put in place without committing them: once the replay is
        committed (it may reference some of them again), those the index lacks are deleted."""
        try:
            self.barrier()
        except OSError as e:
            log.error("replay not committed (%s); blob files it left are kept", e.strerror)
            return
        backend = self.store.backend
        if backend is not self.store.write_backend:
            return  # S3 objects: gc removes unreferenced ones once they are an hour old
        try:  # alone, as gc: an import running meanwhile may be about to record the same blob
            with self.store.lock(exclusive=True, what="remove blob files a stopped mount left"):
                for raw in self._maybe_orphans:
                    if not self.store.has(BlobId(raw)):
                        backend.delete(BlobId(raw))
        except StoreBusy:
            log.info("blob files a stopped mount left are kept for `cas gc` (an import is running)")
        self._maybe_orphans.clear()

    def _move_in(self, closed: Closed) -> Closed:
        """Journal another dead directory's record here, then move its file in."""
        old = closed.file
        closed.seq = next(self._seq)
        if old is not None:
            closed.file = new = f"{self.directory}/r{closed.seq}-{os.path.basename(old)}"
        self.journal.append(closed.encode())
        if old is not None and os.path.exists(old):
            os.rename(old, new)
        return closed

    def _still_whole(self, closed: Closed) -> bool:
        """A replayed file must still hash to its recorded id (power loss may have torn it);
        a missing one is fine if its blob was committed before the crash."""
        if closed.id is None:
            return True
        if closed.file is None:  # a duplicate: of a blob stored, or of an earlier record replayed
            if closed.id in self._files or self.store.has(closed.id):
                return True
            log.error("%s: the blob it duplicates is gone; not imported", closed.label)
            self.journal.done([closed.seq])
            return False
        if os.path.exists(closed.file):
            if hash_file(closed.file)[0] == closed.id:
                return True
            log.error("%s: its staged bytes no longer match what was closed; not imported", closed.label)
        elif self.store.has(closed.id):
            closed.file = None
            return True
        else:
            log.error("%s: its staged bytes are gone; not imported", closed.label)
        self.journal.done([closed.seq])
        return False

    def close(self) -> None:
        """Unmount: commit everything, drop scratch files and annotations whose image never came."""
        try:
            self.barrier()
        except OSError as e:
            log.error("unmounted with files not committed (%s); the next mount retries them", e.strerror)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()
        self.scratch.clear()
        with self._lock:
            if not self._queue:
                for c in sorted(self._waiting.values(), key=lambda c: c.seq):
                    log.warning("%s: its image never arrived; not kept after unmount", c.label)
                self._waiting.clear()
        self.journal.close()
        if not self._queue:
            shutil.rmtree(self.directory, ignore_errors=True)
        os.close(self._lock_fd)
