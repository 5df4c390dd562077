"""Write-back for the mount: files closed at Supervisely positions become items in batches.

close() validates what the bytes allow (validation.py: the image header, the annotation
against the project meta and the image size), appends one record to the journal and
returns; the record is laid over the namespace (overlay.py: what the mount shows before
a commit) and committed in batches by the committer thread (committer.py: group commit,
bytes written once). A file's bytes are written once: a new blob's into the spool file
that is hard-linked into place at the commit, a duplicate's never (see staged.py).

An annotation (or item meta) closed before its image waits in the journal, not only in
memory, and is attached when the image arrives (or when the project's meta.json makes it
valid). A SIGKILLed daemon leaves its staging directory; the next WriteBack on the store
replays it (replay.py).
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import time
from typing import TYPE_CHECKING, Any

from cas.blobs import damage
from cas.blobs.catalog import get_blob
from cas.errors import InvalidInput, NotFound
from cas.ids import BlobId
from cas.ingest.closed import ANN, MEDIA, META, REMOVE, Closed
from cas.ingest.committer import Committer
from cas.ingest.journal import Journal
from cas.ingest.overlay import Overlay
from cas.ingest.replay import claim_directory, remove_orphans, replay
from cas.ingest.scratch import ScratchTree
from cas.ingest.staged import StagedFile
from cas.ingest.validation import parse_json, probe
from cas.model.annotation import annotation_kind, loads
from cas.model.layout import sections

if TYPE_CHECKING:
    from cas.store import Store

log = logging.getLogger("cas.mount")


class WriteBack(Overlay):
    """The engine behind a writable mount (see the module docstring). One per daemon."""

    def __init__(self, store: Store) -> None:
        self.directory, self._lock_fd, adopted = claim_directory(store.tmp_dir)
        super().__init__(store, Journal(self.directory))
        self.scratch = ScratchTree(str(self.directory))
        self._written_meta: dict[str, tuple[int, bytes]] = {}  # project -> (its mtime, meta.json as written)
        self.committer = Committer(store, self.journal, self.directory, self)
        next_seq, maybe_orphans = replay(self, self.directory, adopted)
        self._seq = itertools.count(next_seq)
        self.committer.start()
        if maybe_orphans:
            remove_orphans(store, self.barrier, maybe_orphans)

    # -- closing files -----------------------------------------------------------------------
    def close_media(self, project: str, dataset: str, name: str, staged: StagedFile, label: str) -> None:
        """An image (video) closed at `<dataset>/img/<name>`: probe it and queue it. A bad file
        raises InvalidInput and changes nothing."""
        meta = self.meta(project)
        blob_id, size = staged.digest()
        info = probe(staged, meta, label)
        current = self._current(project, dataset, name)
        if current is not None and (current.width, current.height) != (info.width, info.height) \
                and current.ann != self.empty_for(project, current)[0]:
            ann_label = f"{project}/{dataset}/ann/{name}.json"
            ann = loads(self.read_blob(current.ann), ann_label)
            try:
                meta.check_item_annotation(ann, ann_label, info.width, info.height)
            except InvalidInput as e:
                noun = sections(meta.project_type).noun
                raise InvalidInput(label, f"the item's annotation does not fit the new {noun} ({e}); "
                                          "write the new annotation first") from None
        staged.seal()
        self._close(Closed(0, MEDIA, project, dataset, name, self._bytes_for(staged, blob_id), blob_id, size,
                           info.width, info.height, info.mime, time.time_ns(), info.facts()))

    def close_json(self, project: str, dataset: str, section: str, item: str, staged: StagedFile, label: str,
                   defer: bool = False, may_drop: bool = False) -> None:
        """An annotation (section 'ann') or item meta ('meta') closed: checked against the project
        meta and the image size, or with `defer` (a project whose meta.json has not arrived)
        kept waiting unchecked; so is, with `may_drop` (a folder that may still become a drop,
        which would take it), an annotation of another kind than the project's. Its bytes are
        stored as written."""
        parsed = parse_json(staged, section == META, label)
        if may_drop and section == ANN and annotation_kind(parsed) != self.meta(project).project_type:
            defer = True
        if section == ANN and not defer:
            current = self._current(project, dataset, item)
            self.meta(project).check_item_annotation(parsed, label, current.width if current else None,
                                                     current.height if current else None)
        blob_id, size = staged.digest()
        staged.seal()
        self._close(Closed(0, section, project, dataset, item, self._bytes_for(staged, blob_id), blob_id, size,
                           mtime=time.time_ns()), wait=defer)

    def _bytes_for(self, staged: StagedFile, blob_id: BlobId) -> str | None:
        """The spool file that will become the blob; None for a duplicate of a blob that is
        stored (referenced, and not found damaged) or pending already: its bytes are never written."""
        if staged.path is None:
            with self._lock:
                pending = blob_id in self._files
            if pending:
                return None
            with self.store.index.read() as txn:
                rec = get_blob(self.store.index, txn, blob_id)
                # an unreferenced one may be gc's before the commit; a damaged one takes these bytes
                if rec is not None and rec.refcount > 0 and not damage.is_damaged(self.store.index, txn, blob_id):
                    return None
        return staged.spill()

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

    def _noun(self, project: str) -> str:
        """What the project's media are called ('image' for a project gone meanwhile)."""
        try:
            return sections(self.meta(project).project_type).noun
        except NotFound:
            return "image"

    def written_meta(self, project: str, mtime: int) -> bytes | None:
        """meta.json as written through the mount, if the project's meta is still that one
        (its record's `mtime`)."""
        hit = self._written_meta.get(project)
        return hit[1] if hit is not None and hit[0] == mtime else None

    def _close(self, closed: Closed, wait: bool = False) -> None:
        with self._lock:
            closed.seq = next(self._seq)
            self.journal.append(closed.encode())  # the promise: from here on it survives a crash
            self._accept(closed, wait)

    # -- committing ----------------------------------------------------------------------------
    def pending(self) -> int:
        """Files closed and not committed yet."""
        return self.committer.pending()

    def barrier(self) -> None:
        """Return once everything closed before the call is committed; OSError if a commit
        failed meanwhile (ENOSPC for a full disk)."""
        self.committer.barrier()

    def close(self) -> None:
        """Unmount: commit everything, drop scratch files and annotations whose image never came."""
        try:
            self.barrier()
        except OSError as e:
            log.error("unmounted with files not committed (%s); the next mount retries them", e.strerror)
        self.committer.stop()
        self.scratch.clear()
        with self._lock:
            queued = self.committer.queued()
            if not queued:
                for c in sorted(self._waiting.values(), key=lambda c: c.seq):
                    log.warning("%s: its %s never arrived; not kept after unmount", c.label, self._noun(c.project))
                self._waiting.clear()
        self.journal.close()
        if not queued:
            shutil.rmtree(self.directory, ignore_errors=True)
        os.close(self._lock_fd)
