"""Changes made through the mount: files written in, mkdir, rm, mv.

A file written into img/ becomes an item when it is closed (hashed, deduplicated,
sized from its header, with an empty annotation or one that arrived earlier).
An annotation written before its image waits in memory until the image comes.

`cp -r project /mnt/` creates what it expects to be new with mkdir and O_EXCL,
so the sections (img/, ann/, ...) of a dataset made by mkdir appear only when
they are made (or when the dataset is listed), and a project made by mkdir is
"fresh" until its meta.json is written: its meta.json is hidden, its annotations wait without being checked against a meta they
may not match yet, and its images arrive with empty annotations. When the
meta.json arrives, every waiting annotation is checked and attached; one that
does not fit is logged and stays waiting (visible under ann/).
"""

from __future__ import annotations

import errno
import json
import logging
import threading

from cas import edits
from cas.annotation import empty_annotation, loads
from cas.errors import InvalidInput, NotFound
from cas.store import Store

from .binding import FuseOSError
from .handles import WriteHandle
from .paths import MEDIA_SECTIONS, NESTED, Kind, Target
from .view import View, item_blob

log = logging.getLogger("cas.mount")


class CopyIn:
    """Everything that changes the store on behalf of the mount."""

    def __init__(self, store: Store, view: View) -> None:
        self.store = store
        self.view = view
        self.pending = view.pending
        self.fresh = view.fresh_projects
        self._lock = threading.Lock()  # one finalize at a time keeps item writes ordered

    # -- files -------------------------------------------------------------------------------
    def writable(self, t: Target) -> None:
        if t.kind is Kind.PROJECT_META:
            self.store.ns.project(t.project)
            return
        if t.kind is not Kind.FILE or t.section in ("img_info", NESTED):
            raise FuseOSError(errno.EPERM)
        if not self.store.ns.has_dataset(t.project, t.dataset):
            raise NotFound(f"no dataset {t.project}/{t.dataset}")
        if t.section in MEDIA_SECTIONS and t.section != self.view.media_dir(t.project):
            raise FuseOSError(errno.EPERM)
        t.item  # noqa: B018 - validates <item>.json names

    def open_write(self, t: Target, truncate: bool) -> WriteHandle:
        """A spool for a new or rewritten file; without O_TRUNC it starts with the old bytes."""
        self.writable(t)
        initial = b""
        if not truncate:
            try:
                initial = self.current_bytes(t)
            except NotFound:
                pass
        return WriteHandle.create(t, self.store.tmp_dir, initial)

    def current_bytes(self, t: Target) -> bytes:
        if t.kind is Kind.PROJECT_META:
            return self.view.project_meta(t.project)
        waiting = self.pending.get((t.project, t.dataset, t.item, t.section))
        if waiting is not None:
            return waiting
        blob, _size = item_blob(t.section, t.item, self.view.item(t))
        return self.store.read_bytes(blob)

    def finalize(self, handle: WriteHandle) -> None:
        """Turn a closed spool into store content; any bad input fails with EINVAL, changing nothing."""
        t = handle.target
        label = f"{t.project}/{t.dataset}/{t.section}/{t.name}" if t.kind is Kind.FILE else f"{t.project}/meta.json"
        with self._lock:
            try:
                self._finalize(handle, t, label)
            except InvalidInput as e:
                log.error("rejected %s: %s", label, e)
                raise FuseOSError(errno.EINVAL) from e
            handle.dirty = False

    def _finalize(self, handle: WriteHandle, t: Target, label: str) -> None:
        if t.kind is Kind.PROJECT_META:
            with open(handle.path, "rb") as f:
                self.store.set_meta(t.project, loads(f.read(), label))
            if t.project in self.fresh:
                self.fresh.discard(t.project)
                self._attach_pending(t.project)
            return
        ann_key, meta_key = (t.project, t.dataset, t.item, "ann"), (t.project, t.dataset, t.item, "meta")
        fresh = t.project in self.fresh
        if t.section in MEDIA_SECTIONS:
            ann = None if fresh else self.pending.get(ann_key)
            item_meta = self.pending.get(meta_key)
            edits.import_item(self.store, t.project, t.dataset, t.name, handle.path, ann=ann,
                              item_meta=loads(item_meta, label) if item_meta is not None else None,
                              label=label, ann_label=f"{t.project}/{t.dataset}/ann/{t.name}.json")
            if ann is not None:
                del self.pending[ann_key]
            elif (t.project, t.dataset) in self.view.fresh_datasets and ann_key not in self.pending:
                self.view.implicit_anns.add(ann_key[:3])
            self.pending.pop(meta_key, None)
            log.info("imported %s", label)
            return
        with open(handle.path, "rb") as f:
            raw = f.read()
        key = (t.project, t.dataset, t.item, t.section)
        self.view.implicit_anns.discard(key[:3])
        parsed = loads(raw, label)
        if t.section == "meta" and not isinstance(parsed, dict):
            raise InvalidInput(label, "expected a JSON object", "$")
        if fresh and t.section == "ann":  # checked once the project's meta.json has arrived
            self.pending[key] = json.dumps(parsed, indent=4).encode()
            return
        try:
            if t.section == "ann":
                edits.set_annotation(self.store, t.project, t.dataset, t.item, parsed, label)
            else:
                edits.set_item_meta(self.store, t.project, t.dataset, t.item, parsed, label)
        except NotFound:
            if t.section == "ann":
                edits.check_annotation(self.store, t.project, parsed, label)  # the size is checked later
            self.pending[key] = json.dumps(parsed, indent=4).encode()
            log.info("kept %s until its image arrives", label)

    def _attach_pending(self, project: str) -> None:
        for key in [k for k in list(self.pending) if k[0] == project and k[3] == "ann"]:
            _, dataset, item, _ = key
            label = f"{project}/{dataset}/ann/{item}.json"
            try:
                edits.set_annotation(self.store, project, dataset, item, self.pending[key], label)
            except NotFound:
                continue  # its image has not arrived yet
            except InvalidInput as e:
                log.error("annotation %s does not fit the project and stays unattached: %s", label, e)
                continue
            del self.pending[key]

    # -- names -------------------------------------------------------------------------------
    def mkdir(self, t: Target) -> None:
        if t.kind is Kind.PROJECT:
            self.store.ns.create_project(t.project)
            self.fresh.add(t.project)
        elif t.kind is Kind.DATASET:
            parent = t.dataset.rpartition("/")[0]
            if parent and not self.store.ns.has_dataset(t.project, parent):
                raise NotFound(f"no dataset {t.project}/{parent}")
            if t.dataset.split("/")[-1] == "meta.json" and "/" not in t.dataset:
                raise FuseOSError(errno.EEXIST)
            self.store.ns.create_dataset(t.project, t.dataset)
            self.view.fresh_datasets[(t.project, t.dataset)] = set()
        elif t.kind is Kind.SECTION:
            made = self.view.fresh_datasets.get((t.project, t.dataset))
            if made is None:
                if t.section != NESTED:
                    raise FuseOSError(errno.EEXIST)
                self.view.getattr(Target(Kind.DATASET, t.project, t.dataset))
                self.view.made_nested.add((t.project, t.dataset))
                return
            if t.section in MEDIA_SECTIONS and t.section != self.view.media_dir(t.project):
                raise FuseOSError(errno.EPERM)
            made.add(t.section)
        else:
            raise FuseOSError(errno.EPERM)

    def unlink(self, t: Target) -> None:
        if t.kind is not Kind.FILE or t.section in ("img_info", NESTED):
            raise FuseOSError(errno.EPERM)
        if self.pending.pop((t.project, t.dataset, t.item, t.section), None) is not None:
            return
        if t.section in MEDIA_SECTIONS:
            self.store.ns.remove_item(t.project, t.dataset, t.name)
        elif t.section == "ann":
            item = self.view.item(t)
            edits.set_annotation(self.store, t.project, t.dataset, t.item, empty_annotation(item.width, item.height),
                                 f"{t.project}/{t.dataset}/ann/{t.name}")
        elif t.section == "meta":
            edits.set_item_meta(self.store, t.project, t.dataset, t.item, None, t.name)

    def rmdir(self, t: Target) -> None:
        ns = self.store.ns
        if t.kind is Kind.PROJECT:
            if ns.datasets(t.project):
                raise FuseOSError(errno.ENOTEMPTY)
            ns.remove_project(t.project)
        elif t.kind is Kind.DATASET:
            if ns.has_items(t.project, t.dataset) or ns.children(t.project, t.dataset):
                raise FuseOSError(errno.ENOTEMPTY)
            ns.remove_dataset(t.project, t.dataset)
        elif t.kind is Kind.SECTION:
            # Sections always exist; removing an empty one (rm -r) is a no-op.
            empty = not ns.children(t.project, t.dataset) if t.section == NESTED else \
                not ns.has_items(t.project, t.dataset)
            if not empty:
                raise FuseOSError(errno.ENOTEMPTY)
        else:
            raise FuseOSError(errno.EPERM)

    def rename(self, old: Target, new: Target) -> None:
        if old.project != new.project:
            raise FuseOSError(errno.EXDEV)
        if old.kind is Kind.DATASET and new.kind is Kind.DATASET:
            self.store.ns.rename_dataset(old.project, old.dataset, new.dataset)
        elif old.kind is Kind.FILE and new.kind is Kind.FILE and old.section in MEDIA_SECTIONS \
                and new.section == old.section:
            self.store.ns.rename_item(old.project, old.dataset, old.name, new.dataset, new.name)
        else:
            raise FuseOSError(errno.EPERM)

