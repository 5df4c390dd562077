"""Atomic, batched import of items into one project.

Workers (threads, and worker processes once an import is large enough to pay
for them) read each file once, hash it and install new blobs (see
`cas.ingest.prepare`). Per batch the session makes the new blobs durable with one
sync and records them in one LMDB transaction, with no references yet. Items
are staged in a file under the session's temp dir and published in a single
transaction at `commit`: nothing of an unfinished import is visible, and every
blob it wrote is reclaimed by the next `gc`.
"""

from __future__ import annotations

import functools
import mimetypes
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgpack

from cas.blobs.catalog import apply_deltas, known_intact, record_link, record_new_blob
from cas.blobs.links import UrlChecker, check_url, link_id
from cas.blobs.spool import Spooled, spool_bytes
from cas.errors import CasError, InvalidInput, InvalidName, NotFound
from cas.ids import BlobId
from cas.index import item_key
from cas.ingest import statcache
from cas.ingest.prepare import (
    Part,
    PrepareConfig,
    Prepared,
    Preparer,
    Task,
    holds_image,
    init_worker,
    item_record,
    record_new_parts,
    run_chunk,
)
from cas.ingest.statcache import Seen
from cas.ingest.workers import SafePoints, forkserver, stop_pool
from cas.model.annotation import Meta, default_meta, dumps, empty_annotation
from cas.model.episode import EpisodeFiles
from cas.model.names import check_dataset_path, check_name
from cas.model.namespace import merge_meta, widen_meta
from cas.records import LINK, UNKNOWN_SIZE, BlobRecord, ItemRecord, ProjectRecord
from cas.units import counted, human

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    from cas.store import Source, Store

# A converter's annotation builder: ann(width, height) -> annotation, or (annotation, {note: count})
AnnBuilder = Callable[[int, int], "dict[str, Any] | tuple[dict[str, Any], dict[str, int]]"]

BATCH_ITEMS = 1000
CHUNK_ITEMS = 32
PROCESS_THRESHOLD = 2000  # items queued before worker processes are worth their start-up
MAX_REPORTED_INVALID = 20
MAX_DELTAS = 100_000  # reference moves gathered per blob before they are applied
PROGRESS_STEP = 1024  # links queued between two calls of the progress callback

Results = Future[list[Prepared | InvalidInput]]


@dataclass
class ImportReport:
    """What an import did."""

    project: str
    items_added: int = 0
    items_skipped: int = 0
    items_replaced: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # what --skip-invalid left out: "item" -> n, ...
    invalid: list[str] = field(default_factory=list)
    blobs_new: int = 0
    bytes_new: int = 0
    bytes_read: int = 0
    datasets: int = 0
    links: int = 0
    files_unread: int = 0  # known from the stat cache: unchanged since an earlier import
    notes: Counter[str] = field(default_factory=Counter)  # e.g. "objects clipped to the image" -> n
    seconds: float = 0.0
    dataset_items: Counter[str] = field(default_factory=Counter)  # a dry run's items per dataset

    @property
    def items_invalid(self) -> int:
        return self.rejected["item"]

    def line(self) -> str:
        """What `cas import` prints: 'imported P: 12 items (12 added, ...), ...'."""
        total = self.items_added + self.items_skipped + self.items_replaced
        rate = self.bytes_read / self.seconds if self.seconds else 0
        return (f"imported {self.project}: {counted(total, 'item')} ({self.items_added} added, "
                f"{self.items_skipped} unchanged, {self.items_replaced} replaced), "
                + (f"{counted(self.links, 'link')}, " if self.links else "")
                + f"{counted(self.blobs_new, 'new blob')}, {human(self.bytes_new)} written of "
                f"{human(self.bytes_read)} read in {self.seconds:.1f} s ({human(rate)}/s)"
                + (f"; {counted(self.files_unread, 'unchanged file')} not read (stat cache)"
                   if self.files_unread else ""))


@functools.lru_cache(maxsize=256)
def _mime_of_suffix(suffix: str) -> str:
    return mimetypes.guess_type("x" + suffix)[0] or "application/octet-stream"


def mime_of(name: str) -> str:
    """The MIME type a file name suggests (by its suffix, cached)."""
    base, dot, suffix = name.rpartition(".")
    return _mime_of_suffix(dot + suffix.lower() if base else "")


def _light(task: Task) -> bool:
    """Whether a task has no work for a worker: media known from the stat cache, and no
    annotation to build."""
    return isinstance(task[2], Seen) and not callable(task[3]) and not task[7]


class ImportSession:
    """Add items with `add_item`, then `commit` (all visible at once) or `abort` (nothing visible)."""

    def __init__(self, store: Store, project: str, meta: dict[str, Any] | None = None,
                 overwrite: bool = False, verify_dedup: bool = False, skip_invalid: bool = False,
                 workers: int | None = None, processes: bool = True,
                 progress: Callable[[int], object] | None = None, project_type: str = "images",
                 stat_cache: bool = True, take_files: bool = False, dry_run: bool = False) -> None:
        self.store = store
        self.project = check_name(project, "project name")
        self.overwrite = overwrite
        self.verify_dedup = verify_dedup
        self.skip_invalid = skip_invalid
        self.progress = progress
        self.report = ImportReport(project)
        self._queued = 0
        self._heavy = 0  # queued items with work for a worker: a file to read or an annotation to build
        self._expected = 0  # items a converter said are coming (see expect_items)
        # A stat-cache hit compares no bytes; a store that has no entry yet (a first import) has
        # nothing to look up for any file.
        self._stat_cache = stat_cache and not verify_dedup and not statcache.is_empty(store.index)
        self._take_files = take_files  # the source files are the store's own (a mount's drop): linked, not copied
        self._started = time.perf_counter()
        self._stack = ExitStack()
        self._stack.enter_context(store.lock(what="import"))
        self._interrupts = self._stack.enter_context(SafePoints())  # Ctrl-C raises between items
        self.tmp = tempfile.mkdtemp(prefix=f"import-{os.getpid()}-", dir=store.tmp_dir)
        self._stack.callback(shutil.rmtree, self.tmp, ignore_errors=True)
        try:
            self._existing: ProjectRecord | None = store.ns.project(project)
        except NotFound:
            self._existing = None
        self.meta = Meta(self._existing.meta if self._existing else default_meta(project_type),
                         f"{project}/meta.json")
        self._meta_given = False
        self._meta_version = 0  # changes of the meta; a worker process started before one is sent it
        self._preparer: Preparer | None = None  # for threads and for chunks prepared in place
        if meta is not None:
            self.set_meta(meta)
        self._meta_changed = self._existing is None
        self._datasets: set[str] = set()
        self._workers = workers or 2 * (os.cpu_count() or 1)
        self._use_processes = processes and (os.cpu_count() or 1) > 1
        self._threads: ThreadPoolExecutor | None = None
        self._processes: ProcessPoolExecutor | None = None
        self._chunk: list[Task] = []
        self._batch: list[Results] = []
        self._previous: list[Results] = []
        self._batch_items = 0
        self._staging = open(os.path.join(self.tmp, "items.staging"), "wb")
        self._stack.callback(self._staging.close)
        self._pack = msgpack.Packer(use_bin_type=True).pack
        self._empty_anns: dict[tuple[int, int], Spooled] = {}  # (width, height) -> the empty annotation
        self._link_anns: dict[BlobId, int] = {}  # annotation blobs of link items: id -> size, -1 if known
        self._closed = False
        self.dry_run = dry_run  # commit reports what it would do (blobs_new: not in the store) and writes nothing
        self._dry_new: set[BlobId] = set()

    # -- building the import ----------------------------------------------------
    def set_meta(self, meta: dict[str, Any], file: str = "meta.json") -> None:
        """Merge a project meta into the project's (classes and tags by name; a class of
        another shape is an error). An import of several source folders gives one meta per
        folder, the later ones after items: they widen the import's meta (a class seen with
        two shapes becomes `any`), so that every item queued before stays valid."""
        incoming = Meta(meta, file)
        if self._existing:
            merged = merge_meta(self.meta.raw, incoming.raw, file)
        elif self._meta_given:
            merged = widen_meta(self.meta.raw, incoming.raw)
        else:
            merged = incoming.raw
        self._meta_given = True
        if merged != self.meta.raw:
            self.meta = Meta(merged, file)
            self._meta_changed = True
            self._meta_version += 1
            if self._preparer is not None:  # threads read it from here; processes get it with their chunks
                self._preparer.meta = self.meta

    @property
    def items_queued(self) -> int:
        """Items and links added so far."""
        return self._queued

    def expect_items(self, count: int) -> None:
        """Say that about `count` more items are coming, each with work for a worker (a file to
        read or an annotation to build): past PROCESS_THRESHOLD the worker processes start with
        the first chunk, not after PROCESS_THRESHOLD items prepared by threads."""
        self._expected += count

    def add_dataset(self, dataset: str) -> None:
        if dataset not in self._datasets:
            self._datasets.add(check_dataset_path(dataset))

    def add_item(self, dataset: str, name: str, media: Source,
                 ann: dict[str, Any] | bytes | AnnBuilder | EpisodeFiles | None = None,
                 item_meta: dict[str, Any] | None = None, label: str | None = None,
                 ann_label: str | None = None, related: tuple[tuple[str, str, str], ...] = ()) -> None:
        """Queue one item; it is read, hashed and checked by a worker.

        `media` is a path, bytes or a binary stream. `ann` is a Supervisely annotation
        (dict or JSON bytes), None for an empty one sized from the image header, or a
        picklable callable `ann(width, height)` run by the worker with the image's size,
        returning the annotation or (annotation, {note: count}), or a frame's episode files.
        `label`/`ann_label` name the sources in error messages. `related`: the item's related
        files (`cas.model.related`), as (name, path, label).
        """
        self._interrupts.check()
        self.add_dataset(dataset)
        label = label or f"{dataset}/img/{name}"
        try:
            check_name(name, "item name")
            for rel, _path, rel_label in related:
                check_name(rel, f"related file name ({rel_label})")
        except InvalidName as e:
            self._refuse_name(e, label)
            return
        task: Task = (dataset, name, media, ann, item_meta, label,
                      ann_label or f"{dataset}/ann/{name}.json", related)
        self._queued += 1
        if not isinstance(media, (str, bytes, os.PathLike)):
            self._submit([task], self._thread_pool())  # streams cannot cross into a process
            return
        self._chunk.append(task)
        if len(self._chunk) >= CHUNK_ITEMS:
            self._flush_chunk()

    def add_link(self, dataset: str, name: str, url: str, size: int = UNKNOWN_SIZE, etag: str | None = None,
                 ann: dict[str, Any] | None = None, width: int = 0, height: int = 0,
                 label: str | None = None) -> None:
        """Queue a link item: its bytes stay at `url` (read on demand) and nothing is fetched
        now. `size`/`etag` come from a HEAD when the caller made one (unknown otherwise);
        `ann` and the image size from the source format when it has them."""
        self._interrupts.check()
        self.add_dataset(dataset)
        label = label or f"{dataset}/img/{name}"
        try:
            check_name(name, "item name")
        except InvalidName as e:
            self._refuse_name(e, label)
            return
        check_url(url, self.store.config.allow_roots, label, public_only=self.store.net.public_links_only)
        if ann is None:
            ann_sp = self._empty_link_annotation(width, height)
        else:
            self.meta.check_annotation(ann, f"{dataset}/ann/{name}.json", width or None, height or None)
            ann_sp = self._link_annotation(spool_bytes(dumps(ann)))
        self._stage_link(dataset, name, url, size, etag, ann_sp, width, height)
        if self.progress is not None:
            self.progress(1)

    def add_links(self, dataset: str, links: Iterable[tuple[str, str, int, str | None, int]], source: str) -> None:
        """Queue link items with empty annotations, as `add_link` does: (name, url, size, etag,
        line) each, `line` being where `source` gives it (an error names 'source:line'). A link
        whose URL is refused is rejected (see `reject`); the work that is the same for every
        link is done once (lists of millions)."""
        self.add_dataset(dataset)
        ann_sp = self._empty_link_annotation(0, 0)
        check = UrlChecker(self.store.config.allow_roots, self.store.net.public_links_only)
        interrupts, stage, progress = self._interrupts, self._stage_link, self.progress
        staged = 0
        for name, url, size, etag, line in links:
            interrupts.check()
            try:
                check_name(name, "item name")
            except InvalidName as e:
                self._refuse_name(e, f"{source}:{line}")
                continue
            try:
                check(url, source)
            except InvalidInput as e:
                self.reject(InvalidInput(f"{source}:{line}", e.message))
                continue
            stage(dataset, name, url, size, etag, ann_sp, 0, 0)
            staged += 1
            if progress is not None and staged % PROGRESS_STEP == 0:
                progress(PROGRESS_STEP)
        if progress is not None and staged % PROGRESS_STEP:
            progress(staged % PROGRESS_STEP)

    def _empty_link_annotation(self, width: int, height: int) -> Spooled:
        ann_sp = self._empty_anns.get((width, height))
        if ann_sp is None:
            ann_sp = self._empty_anns[(width, height)] = self._link_annotation(
                spool_bytes(dumps(empty_annotation(width, height))))
        return ann_sp

    def _link_annotation(self, ann_sp: Spooled) -> Spooled:
        """A link's annotation blob, installed (or in a dry run only counted) the first time."""
        if ann_sp.id not in self._link_anns:
            with self.store.index.read() as txn:
                known = known_intact(self.store.index, txn, ann_sp.id)
            if known:
                self._link_anns[ann_sp.id] = -1
            else:  # new: installed now, or in a dry run only counted
                if not self.dry_run:
                    self.store.write_backend.install(ann_sp, self.tmp)
                self._link_anns[ann_sp.id] = ann_sp.size
        return ann_sp

    def _stage_link(self, dataset: str, name: str, url: str, size: int, etag: str | None, ann_sp: Spooled,
                    width: int, height: int) -> None:
        rec = ItemRecord(link_id(url), ann_sp.id, size, ann_sp.size, width, height, mime_of(name), time.time_ns())
        self._queued += 1
        self.report.links += 1
        self._staging.write(self._pack([dataset, name, rec.encode(), [url, size, etag]]))

    def _publish_new_link(self, txn: Any, deltas: Counter[BlobId], dataset: str, name: str, raw: bytes,
                          link: list[Any], now: int) -> bool:
        """Publish a staged link item whose name is new, with the link's record (one reference,
        or one more on a link the index knows): whether the name was new. Nothing is decoded:
        an import of a million links publishes a million."""
        if not self.store.ns.write_item(txn, item_key(self.project, dataset, name), raw, overwrite=False):
            return False
        media, ann = ItemRecord.raw_ids(raw)
        deltas[ann] += 1
        url, size, etag = link
        if not record_link(self.store.index, txn, media, BlobRecord(size, 1, LINK, now, url, etag)):
            deltas[media] += 1
        return True

    def _refuse_name(self, error: InvalidName, label: str) -> None:
        """An item's bad name fails the import as an InvalidName, or with `skip_invalid` leaves
        the item out (rejected, named by `label`)."""
        if not self.skip_invalid:
            raise error
        self.reject(InvalidInput(label, str(error)))

    def reject(self, error: InvalidInput, what: str = "item") -> None:
        """Bad input found by a converter: fail the import, or count it with `skip_invalid`
        (`what` it leaves out: an item, or a part of one such as an annotation)."""
        if not self.skip_invalid:
            raise error
        self.report.rejected[what] += 1
        if len(self.report.invalid) < MAX_REPORTED_INVALID:
            self.report.invalid.append(str(error))

    # -- workers -------------------------------------------------------------------
    def _config(self) -> PrepareConfig:
        return PrepareConfig(str(self.store.root), self.tmp, self.project, self.meta.raw,
                             check_conflicts=not self.overwrite and self._existing is not None,
                             project_existed=self._existing is not None,
                             verify_dedup=self.verify_dedup, client_pid=os.getpid(), take_files=self._take_files,
                             dry_run=self.dry_run)

    def _thread_pool(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self._workers, thread_name_prefix="cas-import")
            self._stack.callback(self._threads.shutdown, wait=True, cancel_futures=True)
        return self._threads

    def _thread_preparer(self) -> Preparer:
        """The preparer of this process (threads, and chunks prepared in place)."""
        if self._preparer is None:
            self._preparer = Preparer(self._config(), self.store)
        return self._preparer

    def _pool_for_paths(self) -> Executor:
        """Threads for small imports; past PROCESS_THRESHOLD items with work, processes (no shared GIL)."""
        if not self._use_processes or max(self._heavy, self._expected) < PROCESS_THRESHOLD:
            return self._thread_pool()
        if self._processes is None:
            from concurrent.futures import ProcessPoolExecutor  # multiprocessing: only for large imports
            context = forkserver(["cas.ingest.prepare", "cas.store"])  # a clean child: no inherited LMDB
            self._processes = ProcessPoolExecutor(self._workers, mp_context=context,
                                                  initializer=init_worker, initargs=(self._config(),))
            self._stack.callback(self._processes.shutdown, wait=True, cancel_futures=True)
        return self._processes

    def _flush_chunk(self) -> None:
        """Look the chunk's files up in the stat cache, then send it to a pool; a chunk of
        stat-cache hits with nothing to build is prepared here and now (a handful of index
        lookups: less than the hand-off costs). One read transaction serves it all."""
        chunk, self._chunk = self._chunk, []
        with self.store.index.read() as txn:
            if self._stat_cache:
                queued = len(chunk)
                chunk = [seen for task in chunk if (seen := self._seen(txn, task)) is not None]
                if self.progress is not None and len(chunk) < queued:
                    self.progress(queued - len(chunk))
                if not chunk:
                    return
            heavy = sum(not _light(task) for task in chunk)
            prepared = None if heavy else self._thread_preparer().prepare_chunk(chunk, txn)
        if prepared is None:
            self._heavy += heavy
            self._submit(chunk, self._pool_for_paths())
            return
        future: Results = Future()
        future.set_result(prepared)
        self._submit(chunk, future)

    def _seen(self, txn: Any, task: Task) -> Task | None:
        """The task with its file's facts from the stat cache in place of the path, when the
        cache knows the file unchanged; None when, moreover, the item stored under its name
        holds this image and nothing else is given for it: it stays as it is."""
        dataset, name, media, ann, item_meta = task[:5]
        if not isinstance(media, (str, os.PathLike)):
            return task
        index = self.store.index
        seen = statcache.lookup(index, txn, os.fspath(media))
        if seen is None:
            return task
        self.report.files_unread += 1
        if ann is None and item_meta is None and not task[7] and self._existing is not None and \
                holds_image(index, txn, item_key(self.project, dataset, name), seen):
            self._unchanged(dataset)
            return None
        return (dataset, name, seen, *task[3:])

    def _unchanged(self, dataset: str) -> None:
        """Count an item found as it is stored: publishing would skip it, so it is not staged."""
        self.report.items_skipped += 1
        if self.dry_run:  # which counts it among the items imported
            self.report.dataset_items[dataset] += 1

    def _submit(self, chunk: list[Task], pool: Executor | Results) -> None:
        if isinstance(pool, Future):
            future = pool
        elif pool is self._processes:
            future = pool.submit(run_chunk, chunk, (self._meta_version, self.meta.raw) if self._meta_version else None)
        else:
            future = pool.submit(self._thread_preparer().prepare_chunk, chunk)
        if self.progress is not None:
            progress, n = self.progress, len(chunk)
            future.add_done_callback(lambda _f: progress(n))
        self._batch.append(future)
        self._batch_items += len(chunk)
        if self._batch_items >= BATCH_ITEMS:
            # Double buffering: settle the previous batch while the workers run this one.
            previous, self._previous = self._previous, self._batch
            self._batch, self._batch_items = [], 0
            self._finish(previous)

    def _finish(self, futures: list[Results], stage: bool = True) -> None:
        """Wait for a batch; sync its new blobs once and record them in one transaction;
        stage its items for the publishing transaction at commit."""
        prepared: list[Prepared] = []
        error: BaseException | None = None
        for future in futures:
            try:
                results = future.result()
            except BaseException as e:  # noqa: BLE001 - re-raised below once every future settled
                error = error or e
                continue
            for result in results:
                if not isinstance(result, InvalidInput):
                    prepared.append(result)
                elif stage:
                    try:
                        self.reject(result)
                    except InvalidInput:
                        error = error or result
        new = {part.id: part for item in prepared for part in item.parts() if part.new}
        seen = [item.stat_entry for item in prepared if item.stat_entry is not None]
        if self.dry_run:
            self._count_dry(new.values())
            new, seen = {}, []
        if new:
            self.store.write_backend.sync()
        if new or seen:
            index = self.store.index
            with index.write() as txn:
                for part in record_new_parts(self.store, txn, new.values()):
                    self.report.blobs_new += 1
                    self.report.bytes_new += part.size
                statcache.record(index, txn, seen)  # after the sync: an entry's blob is durable
        if error is not None:
            raise error
        if stage:
            for item in prepared:
                if not item.from_stat_cache:
                    self.report.bytes_read += item.media.size
                if item.notes:
                    self.report.notes.update(item.notes)
                if item.unchanged:
                    self._unchanged(item.dataset)
                else:
                    self._staging.write(self._pack([item.dataset, item.name, item_record(item).encode(), None]))

    # -- ending ------------------------------------------------------------------------
    def commit(self) -> ImportReport:
        """Publish every staged item in one transaction; then the import is visible."""
        if self._closed:
            raise CasError("import session already closed")
        self._interrupts.check()
        try:
            if self._chunk:
                self._flush_chunk()
            previous, batch, self._previous, self._batch = self._previous, self._batch, [], []
            self._finish(previous + batch)  # the last two batches: one sync, one transaction
            self._staging.close()
            if self.dry_run:
                self._report_dry()
            else:
                self._publish()
        except BaseException:
            self.abort()
            raise
        self._close()
        self.report.seconds = time.perf_counter() - self._started
        return self.report

    def _count_dry(self, parts: Iterable[Part]) -> None:
        for part in parts:
            if part.id not in self._dry_new:
                self._dry_new.add(part.id)
                self.report.blobs_new += 1
                self.report.bytes_new += part.size

    def _report_dry(self) -> None:
        """What `_publish` would add: items per dataset, and the new link annotations."""
        self._count_dry(Part(blob_id, size, True) for blob_id, size in self._link_anns.items() if size >= 0)
        with open(self._staging.name, "rb") as staged:
            for dataset, _name, _raw, _link in msgpack.Unpacker(staged, raw=False):
                self.report.dataset_items[dataset] += 1
        for dataset in self._datasets:
            self.report.dataset_items[dataset] += 0  # an empty dataset is listed too

    def _publish(self) -> None:
        ns = self.store.ns
        index = self.store.index
        if self._link_anns:
            self.store.write_backend.sync()
        with index.write() as txn:
            for blob_id, size in self._link_anns.items():
                if size >= 0 and record_new_blob(index, txn, blob_id, size, self.store.write_backend.location):
                    self.report.blobs_new += 1
                    self.report.bytes_new += size
            if self._existing is None:
                ns.put_new_project(txn, self.project, self.meta.raw)
            elif self._meta_changed:
                ns.write_meta(txn, self.project, self.meta.raw)
            for dataset in sorted(self._datasets):
                if ns.ensure_dataset(txn, self.project, dataset):
                    self.report.datasets += 1
            deltas: Counter[BlobId] = Counter()
            outcomes: Counter[str] = Counter()
            now = time.time_ns()
            with open(self._staging.name, "rb") as staged:
                for dataset, name, raw, link in msgpack.Unpacker(staged, raw=False):
                    if len(deltas) >= MAX_DELTAS:  # memory stays flat: apply the moves gathered so far
                        apply_deltas(index, txn, deltas)
                        deltas.clear()
                    if link is not None and self._publish_new_link(txn, deltas, dataset, name, raw, link, now):
                        outcomes["added"] += 1
                        continue
                    rec = ItemRecord.decode(raw)
                    outcome = ns.put_item(txn, self.project, dataset, name, rec, self.overwrite, deltas, raw)
                    outcomes[outcome] += 1
                    if link is not None:  # a new link entry is written once, with the references it has now
                        url, size, etag = link
                        uses = deltas.pop(rec.media, 0)
                        if not record_link(index, txn, rec.media, BlobRecord(size, uses, LINK, rec.mtime, url, etag)):
                            deltas[rec.media] += uses
            apply_deltas(index, txn, deltas)
        for outcome, count in outcomes.items():
            setattr(self.report, f"items_{outcome}", getattr(self.report, f"items_{outcome}") + count)

    def abort(self) -> None:
        """Drop everything staged. Blobs the workers already installed are recorded without
        references, so the next `gc` reclaims them."""
        if self._closed:
            return
        outstanding = [*self._previous, *self._batch]
        self._previous, self._batch, self._chunk = [], [], []
        for future in outstanding:
            future.cancel()
        try:
            self._finish([f for f in outstanding if not f.cancelled()], stage=False)
        except BaseException:  # noqa: BLE001 - the import is failing already; leftovers are orphans for fsck
            pass
        if self._processes is not None:
            stop_pool(self._processes)
        self._close()

    def _close(self) -> None:
        self._closed = True
        self._stack.close()  # the pools first: no thread appends to a pack after this
        if self._preparer is not None:
            self._preparer.close()

    def __enter__(self) -> ImportSession:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if not self._closed:
            self.abort()

