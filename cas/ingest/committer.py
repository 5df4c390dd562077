"""The committer thread of a mount's write-back: closed files into the index in batches.

A batch is committed BATCH_DELAY after its first file, once BATCH_FILES are queued, or at
once when a barrier asks (`barrier()`: fsync, unmount), the way `cas import` commits: new
blobs into place (a staged file is hard-linked, its bytes are written once), one sync, one
index transaction, one journal record. A failed batch (a full disk) stays queued and is
retried; the barrier reports it to the writer (ENOSPC, never EIO for a full disk).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from cas.blobs import damage
from cas.blobs.catalog import apply_deltas, get_blob, record_new_blob
from cas.blobs.spool import Spooled, spool_bytes
from cas.ids import BlobId
from cas.index import item_key
from cas.ingest.closed import Closed, Key
from cas.ingest.journal import INSTALLING, Journal
from cas.model.namespace import raw_item
from cas.records import ItemRecord

if TYPE_CHECKING:
    from cas.ingest.overlay import Overlay
    from cas.store import Store

log = logging.getLogger("cas.mount")

BATCH_DELAY = 0.5  # seconds a batch waits for more files after its first (unless a barrier asks) ...
BATCH_FILES = 1000  # ... or until this many are queued: as `cas import` batches
RETRY_DELAY = 1.0  # after a failed commit (a full disk): the batch stays queued and is retried


def _as_os_error(e: BaseException) -> OSError:
    """A failed commit as the errno a writer should see (a full disk is ENOSPC, even from LMDB)."""
    if isinstance(e, OSError) and e.errno:
        return e
    if "No space left" in str(e):
        return OSError(errno.ENOSPC, str(e))
    return OSError(errno.EIO, str(e))


class Committer:
    def __init__(self, store: Store, journal: Journal, directory: Path, overlay: Overlay) -> None:
        self.store = store
        self.journal = journal
        self.directory = directory
        self.overlay = overlay
        self._cond = overlay._cond  # one lock for the pending state and the queue
        self._queue: list[Closed] = []
        self._pushed = self._committed = self._failures = 0
        self._error: OSError | None = None
        self._urgent = self._stopping = False
        self._thread = threading.Thread(target=self._run, name="cas-commit", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def push(self, c: Closed) -> None:
        """Queue a file accepted by the overlay (lock held)."""
        self._queue.append(c)
        self._pushed += 1
        if len(self._queue) in (1, BATCH_FILES):  # the committer sleeps until then: no wake-up per file
            self._cond.notify_all()

    def pending(self) -> int:
        """Files closed and not committed yet."""
        with self._cond:
            return self._pushed - self._committed

    def queued(self) -> bool:
        return bool(self._queue)

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

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()

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
                records, sources = self.overlay.batch(batch)
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
                self.overlay.committed(batch, records)
                if not self._queue:
                    self._urgent = False
                    self.overlay.compact()
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
            new: dict[BlobId, str | bytes] = {}
            damaged: set[BlobId] = set()  # known, but fsck found them damaged: healed by these bytes
            with index.read() as txn:
                for blob, src in sources.items():
                    if get_blob(index, txn, blob) is None:
                        new[blob] = src
                    elif damage.is_damaged(index, txn, blob):
                        new[blob] = src
                        damaged.add(blob)
            made: list[str] = []
            if new:  # so that a crash between the files and the transaction leaves no orphan behind
                self.journal.append([INSTALLING, [bytes(blob) for blob in new]])
            try:
                sizes = {blob: self._install(blob, src, made, blob in damaged) for blob, src in new.items()}
                if sizes:
                    store.write_backend.sync()
                with index.write() as txn:
                    for blob, size in sizes.items():
                        record_new_blob(index, txn, blob, size, store.write_backend.location)
                    deltas: Counter[BlobId] = Counter()
                    for (project, dataset, name), rec in records.items():
                        if not ns.has_project(project, txn):
                            log.warning("project %s was removed before %s/%s was committed", project, dataset, name)
                            continue
                        if rec is None:
                            raw = raw_item(index, txn, item_key(project, dataset, name))
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

    def _install(self, blob: BlobId, source: str | bytes, made: list[str], heal: bool) -> int:
        """Put one new blob in place (with `heal`, over the damaged file of a known one); its
        size. A staged file is hard-linked, never copied."""
        backend = self.store.write_backend
        if isinstance(source, bytes):
            backend.install(spool_bytes(source), str(self.directory))
            if backend is self.store.local:
                made.append(self.store.local.path(blob))
            return len(source)
        size = os.stat(source).st_size
        if backend is self.store.local:
            if self.store.local.link_in(source, blob, replace=heal) and not heal:  # a healed file stays
                made.append(self.store.local.path(blob))
            return size
        upload = f"{source}.upload"
        os.link(source, upload)
        backend.install(Spooled(blob, size, b"", b"", tmp=upload), str(self.directory))
        return size
