"""Atomic, batched import of items into one project.

Files are read once and hashed in a thread pool; new blobs are written to
temp files, renamed into place, made durable with one sync per batch and
recorded in one LMDB transaction per batch (with no references yet). Items
are staged in a file under the session's temp dir and published in a single
transaction at `commit`, so nothing of an unfinished import is visible and
every blob it wrote is reclaimed by the next `gc`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgpack

from .annotation import Meta, default_meta, dumps, empty_annotation, loads
from .errors import CasError, Conflict, CorruptBlob, InvalidInput, NotFound
from .ids import BlobId
from .index import item_key
from .media import MediaInfo, probe_image
from .names import check_dataset_path, check_name
from .namespace import merge_meta
from .records import ItemRecord, ProjectRecord
from .refs import adjust_refs, record_new_blob
from .spool import Spooled, spool_bytes

if TYPE_CHECKING:
    from .store import Source, Store

log = logging.getLogger("cas")

BATCH_ITEMS = 1000
CHUNK_ITEMS = 32
MAX_REPORTED_INVALID = 20


@dataclass
class ImportReport:
    """What an import did."""

    project: str
    items_added: int = 0
    items_skipped: int = 0
    items_replaced: int = 0
    items_invalid: int = 0
    invalid: list[str] = field(default_factory=list)
    blobs_new: int = 0
    bytes_new: int = 0
    bytes_read: int = 0
    datasets: int = 0
    seconds: float = 0.0


@dataclass(slots=True)
class _Part:
    id: BlobId
    size: int
    tmp: str | None


@dataclass(slots=True)
class _Prepared:
    dataset: str
    name: str
    media: _Part
    ann: _Part
    meta: _Part | None
    info: MediaInfo

    def parts(self) -> list[_Part]:
        return [self.media, self.ann] + ([self.meta] if self.meta else [])


class ImportSession:
    """Add items with `add_item`, then `commit` (all visible at once) or `abort` (nothing visible)."""

    def __init__(self, store: "Store", project: str, meta: dict[str, Any] | None = None,
                 overwrite: bool = False, verify_dedup: bool = False, skip_invalid: bool = False,
                 workers: int | None = None, progress: Callable[[int], None] | None = None,
                 project_type: str = "images") -> None:
        self.store = store
        self.project = check_name(project, "project name")
        self.overwrite = overwrite
        self.verify_dedup = verify_dedup
        self.skip_invalid = skip_invalid
        self.progress = progress
        self.report = ImportReport(project)
        self._started = time.perf_counter()
        self._stack = ExitStack()
        self._stack.enter_context(store.lock(what="import"))
        self.tmp = tempfile.mkdtemp(prefix=f"import-{os.getpid()}-", dir=store.tmp_dir)
        self._stack.callback(shutil.rmtree, self.tmp, ignore_errors=True)
        try:
            self._existing = store.ns.project(project)
        except NotFound:
            self._existing = None
        base = self._existing.meta if self._existing else default_meta(project_type)
        self.meta = Meta(base, f"{project}/meta.json")
        self._meta_changed = self._existing is None
        self._datasets: set[str] = set()
        self._pool = ThreadPoolExecutor(workers or min(8, 2 * (os.cpu_count() or 1)),
                                        thread_name_prefix="cas-import")
        self._stack.callback(self._pool.shutdown, wait=True, cancel_futures=True)
        self._chunk: list[tuple[Any, ...]] = []
        self._batch: list[Future[list[_Prepared | InvalidInput]]] = []
        self._previous: list[Future[list[_Prepared | InvalidInput]]] = []
        self._batch_items = 0
        self._empty_anns: dict[tuple[int, int], bytes] = {}
        self._staging = open(os.path.join(self.tmp, "items.staging"), "wb")
        self._stack.callback(self._staging.close)
        self._closed = False

    # -- building the import ----------------------------------------------------
    def set_meta(self, meta: dict[str, Any], file: str = "meta.json") -> None:
        """Merge a project meta into the project's (classes and tags by name)."""
        incoming = Meta(meta, file)
        merged = merge_meta(self.meta.raw, incoming.raw, file) if self._existing else incoming.raw
        if merged != self.meta.raw:
            self.meta = Meta(merged, file)
            self._meta_changed = True

    def add_dataset(self, dataset: str) -> None:
        if dataset not in self._datasets:
            self._datasets.add(check_dataset_path(dataset))

    def add_item(self, dataset: str, name: str, media: "Source", ann: dict[str, Any] | bytes | None = None,
                 item_meta: dict[str, Any] | None = None, label: str | None = None,
                 ann_label: str | None = None) -> None:
        """Queue one item; its file is read, hashed and checked in the pool.

        `ann` is a Supervisely annotation (dict or JSON bytes) or None for an empty
        one sized from the image header. `label`/`ann_label` name the sources in errors.
        """
        self.add_dataset(dataset)
        check_name(name, "item name")
        self._chunk.append((dataset, name, media, ann, item_meta, label or f"{dataset}/img/{name}",
                            ann_label or f"{dataset}/ann/{name}.json"))
        if len(self._chunk) >= CHUNK_ITEMS:
            self._submit()

    def _submit(self) -> None:
        """Hand the queued items to the pool as one task (a future per item costs too much)."""
        if not self._chunk:
            return
        chunk, self._chunk = self._chunk, []
        self._batch.append(self._pool.submit(self._prepare_chunk, chunk))
        self._batch_items += len(chunk)
        if self._batch_items >= BATCH_ITEMS:
            # Double buffering: settle the previous batch while the pool works on this one.
            previous, self._previous = self._previous, self._batch
            self._batch, self._batch_items = [], 0
            self._finish(previous)

    def reject(self, error: InvalidInput) -> None:
        """Bad input found by a converter: fail the import, or count it with `skip_invalid`."""
        if not self.skip_invalid:
            raise error
        self.report.items_invalid += 1
        if len(self.report.invalid) < MAX_REPORTED_INVALID:
            self.report.invalid.append(str(error))

    # -- worker side -------------------------------------------------------------
    def _prepare_chunk(self, chunk: list[tuple[Any, ...]]) -> list[_Prepared | InvalidInput]:
        out: list[_Prepared | InvalidInput] = []
        # One read snapshot per chunk: a blob committed meanwhile is at worst written twice,
        # and the second copy is dropped when the batch is settled.
        with self.store.index.read() as txn:
            for args in chunk:
                try:
                    out.append(self._prepare(txn, *args))
                except InvalidInput as e:
                    out.append(e)
        if self.progress is not None:
            self.progress(len(chunk))
        return out

    def _prepare(self, txn: Any, dataset: str, name: str, media: "Source", ann: Any, item_meta: Any,
                 label: str, ann_label: str) -> _Prepared:
        try:
            sp = self.store.spool(media, self.tmp)
        except FileNotFoundError:
            raise InvalidInput(label, "file not found") from None
        except IsADirectoryError:
            raise InvalidInput(label, "is a directory, not a file") from None
        try:
            info = self._probe(sp, label)
            if ann is None:
                ann_sp = spool_bytes(self._empty_annotation(info.width, info.height))
            else:
                if isinstance(ann, (bytes, bytearray)):
                    ann = loads(ann, ann_label)
                self.meta.check_annotation(ann, ann_label, info.width, info.height)
                ann_sp = spool_bytes(dumps(ann))
            meta_sp = spool_bytes(dumps(item_meta)) if item_meta is not None else None
            self._check_conflict(txn, dataset, name, sp.id, ann_sp.id, meta_sp.id if meta_sp else None)
            media_part = self._settle(txn, sp, label)
            ann_part = self._settle(txn, ann_sp, ann_label)
            meta_part = self._settle(txn, meta_sp, label) if meta_sp else None
            return _Prepared(dataset, name, media_part, ann_part, meta_part, info)
        except BaseException:
            sp.discard()
            raise

    def _empty_annotation(self, width: int, height: int) -> bytes:
        key = (width, height)
        raw = self._empty_anns.get(key)
        if raw is None:
            raw = self._empty_anns[key] = dumps(empty_annotation(width, height))
        return raw

    def _probe(self, sp: Spooled, label: str) -> MediaInfo:
        fallback = None
        if sp.tmp is not None and sp.size > len(sp.head):  # header may lie beyond the kept head
            with open(sp.tmp, "rb") as f:
                fallback = f.read(16 << 20)
        return probe_image(sp.head, sp.tail, label, fallback)

    def _check_conflict(self, txn: Any, dataset: str, name: str, media: BlobId, ann: BlobId,
                        meta: BlobId | None) -> None:
        if self.overwrite or self._existing is None:
            return
        raw = txn.get(item_key(self.project, dataset, name), db=self.store.index.db["items"])
        if raw is None:
            return
        old = ItemRecord.decode(raw)
        if (old.media, old.ann, old.meta) != (media, ann, meta):
            raise Conflict(f"item {self.project}/{dataset}/{name} exists with different content "
                           "(use --overwrite to replace it)")

    def _settle(self, txn: Any, sp: Spooled, label: str) -> _Part:
        """Known content: drop our copy (after comparing, if asked). New: make sure a temp file holds it."""
        if txn.get(bytes(sp.id), db=self.store.index.db["blobs"]) is not None:
            if self.verify_dedup:
                self._verify_same(sp, label)
            sp.discard()
            return _Part(sp.id, sp.size, None)
        tmp = sp.write_temp(self.tmp)
        sp.release()
        return _Part(sp.id, sp.size, tmp)

    def _verify_same(self, sp: Spooled, label: str) -> None:
        ours = bytes(sp.data) if sp.data is not None else open(sp.tmp or "", "rb").read()
        if self.store.read_bytes(sp.id) != ours:
            raise CorruptBlob(f"{label}: content differs from stored blob {sp.id} with the same digest "
                              "(hash collision or corrupt store); nothing was imported")

    # -- main thread ---------------------------------------------------------------
    def _finish(self, futures: list[Future[list[_Prepared | InvalidInput]]]) -> None:
        """Wait for a batch; install its new blobs, sync once, record them in one transaction,
        and stage its items for the publishing transaction at commit."""
        prepared: list[_Prepared] = []
        error: BaseException | None = None
        for future in futures:
            try:
                results = future.result()
            except BaseException as e:  # noqa: BLE001 - re-raised below once every future settled
                error = error or e
                continue
            for result in results:
                if isinstance(result, InvalidInput):
                    try:
                        self.reject(result)
                    except InvalidInput:
                        error = error or result
                else:
                    prepared.append(result)
        if error is not None:
            raise error
        new: dict[BlobId, int] = {}
        for item in prepared:
            for part in item.parts():
                if part.tmp is None:
                    continue
                if part.id in new:
                    os.unlink(part.tmp)
                else:
                    self.store.backend.install(part.tmp, part.id)
                    new[part.id] = part.size
                part.tmp = None
        if new:
            self.store.backend.sync()
            with self.store.index.write() as txn:
                for blob_id, size in new.items():
                    if record_new_blob(self.store.index, txn, blob_id, size):
                        self.report.blobs_new += 1
                        self.report.bytes_new += size
        pack = msgpack.Packer(use_bin_type=True).pack
        for item in prepared:
            self.report.bytes_read += item.media.size
            self._staging.write(pack([item.dataset, item.name, self._record(item).encode()]))

    @staticmethod
    def _record(item: _Prepared) -> ItemRecord:
        meta = item.meta
        return ItemRecord(item.media.id, item.ann.id, item.media.size, item.ann.size, item.info.width,
                          item.info.height, item.info.mime, time.time_ns(),
                          meta.id if meta else None, meta.size if meta else 0)

    def commit(self) -> ImportReport:
        """Publish every staged item in one transaction; then the import is visible."""
        if self._closed:
            raise CasError("import session already closed")
        try:
            self._submit()
            previous, batch, self._previous, self._batch = self._previous, self._batch, [], []
            self._finish(previous)
            self._finish(batch)
            self._staging.close()
            ns = self.store.ns
            with self.store.index.write() as txn:
                if self._existing is None:
                    check_name(self.project, "project name")
                    now = time.time_ns()
                    txn.put(self.project.encode(), ProjectRecord(now, self.meta.raw, now).encode(),
                            db=self.store.index.db["projects"])
                elif self._meta_changed:
                    ns.write_meta(txn, self.project, self.meta.raw)
                for dataset in sorted(self._datasets):
                    if ns.ensure_dataset(txn, self.project, dataset):
                        self.report.datasets += 1
                deltas: Counter[BlobId] = Counter()
                with open(self._staging.name, "rb") as staged:
                    for dataset, name, raw in msgpack.Unpacker(staged, raw=False):
                        outcome = ns.put_item(txn, self.project, dataset, name, ItemRecord.decode(raw),
                                              self.overwrite, deltas)
                        setattr(self.report, f"items_{outcome}", getattr(self.report, f"items_{outcome}") + 1)
                for blob_id, delta in deltas.items():
                    if delta:
                        adjust_refs(self.store.index, txn, blob_id, delta)
        except BaseException:
            self.abort()
            raise
        self._close()
        self.report.seconds = time.perf_counter() - self._started
        return self.report

    def abort(self) -> None:
        """Drop everything staged; blobs already written are left for `gc`."""
        if self._closed:
            return
        for future in (*self._previous, *self._batch):
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._previous, self._batch, self._chunk = [], [], []
        self._close()

    def _close(self) -> None:
        self._closed = True
        self._stack.close()

    def __enter__(self) -> "ImportSession":
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if not self._closed:
            self.abort()
