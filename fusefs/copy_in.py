"""Changes made through the mount, translated into the engine (cas.ingest.WriteBack, the namespace).

Every name can be created, written, renamed and removed as in a local folder:
- temporary names (cas.ingest.temporary) are scratch files: never imported, gone at unmount;
- a file closed, or renamed, at a Supervisely position is handed to the write-back:
  `<dataset>/img/<item>` (video/), `ann/<item>.json`, `meta/<item>.json`, `<project>/meta.json`;
- writes into img_info/ are scratch files shown in place of the generated ones;
- mkdir makes projects, datasets and sections; rmdir (and so `rm -rf`) removes them, a
  project with its versions, as `cas rm` does;
- a name that fits no Supervisely position, inside a project or a dataset made here that
  nothing was written into yet (`cp -r` of a COCO export, of a folder of photos), turns
  that folder into a drop (cas.ingest.drops): imported whole, by the converter `cas import`
  uses, once the copy settles.
"""

from __future__ import annotations

import errno
import logging
import os

from cas.errors import InvalidInput, InvalidName, NotFound
from cas.ingest import StagedFile, WriteBack
from cas.ingest.drops import Drop, Drops
from cas.ingest.outcomes import Outcomes
from cas.ingest.scratch import Node
from cas.model.layout import INFO_SECTIONS, MEDIA_SECTIONS, META_NAME, NESTED, RELATED_SECTIONS, SECTIONS, sections
from cas.model.media import is_media_name
from cas.store import Store
from cas.versions.snapshots import remove_with_history

from .attrs import AttrOverlay
from .binding import FuseOSError
from .handles import StagedHandle
from .hidden import Hidden
from .paths import VERSIONS_NAME, Kind, Target, dataset_path, parse
from .view import View, item_blob

log = logging.getLogger("cas.mount")


def label_of(t: Target) -> str:
    return t.path.lstrip("/")


WHERE_FILES_GO = ("images go in <project>/<dataset>/img/, annotations in <project>/<dataset>/ann/<image>.json "
                  "(or use `cas import`)")
_refused_in: set[str] = set()  # folders whose misplaced files were logged already


def refuse(code: int, message: str, once_for: str | None = None) -> FuseOSError:
    """The errno for a refused change, with a log line (once per folder `once_for`: a copy of
    a thousand misplaced files says it once)."""
    if once_for is None or once_for not in _refused_in:
        log.error(message)
        if once_for is not None and len(_refused_in) < 1024:
            _refused_in.add(once_for)
    return FuseOSError(code)


# An editor's temporary name beside the file it rewrites: `sed -i`'s `sedAbC123`, perl -pi's,
# `meta.json.new` (a name with a dot and another suffix is a user's file: refused with a hint).
_EDITOR_SUFFIXES = (".new", ".bak", ".orig", ".old")


_KIND_SECTIONS = frozenset(SECTIONS) - set(sections("images").listed) - {"ann", NESTED}


def misfit(full: str, is_dir: bool) -> bool:
    """Whether a name being made fits no Supervisely position (and is not in a version,
    where nothing is made)."""
    if f"/{VERSIONS_NAME}/" in full:
        return False
    try:
        t = parse(full)
    except InvalidName:
        return True
    if t.kind is Kind.STAGED:
        return False
    if is_dir:  # a folder of another kind than images' hints at a project of that kind being copied
        return t.kind in (Kind.FILE, Kind.PROJECT_META) or (t.kind is Kind.SECTION and t.section in _KIND_SECTIONS)
    # a file of a dataset itself (an episode's annotation.json) hints at a project of that kind too
    return t.kind in (Kind.PROJECT, Kind.DATASET, Kind.SECTION) or (t.kind is Kind.FILE and t.section in (NESTED, ""))


def editor_temporary(full: str) -> bool:
    """A misfit file kept as a scratch file: an editor's temporary name, below the root."""
    name = full.rpartition("/")[2]
    return full.count("/") > 1 and ("." not in name or name.lower().endswith(_EDITOR_SUFFIXES))


class CopyIn:
    """Everything that changes the store on behalf of the mount."""

    def __init__(self, store: Store, view: View, wb: WriteBack, hidden: Hidden, attrs: AttrOverlay,
                 outcomes: Outcomes, drops: Drops | None = None) -> None:
        self.store = store
        self.view = view
        self.wb = wb
        self.scratch = wb.scratch
        self.hidden = hidden
        self.attrs = attrs
        self.outcomes = outcomes
        self.drops = drops
        # Made by mkdir here with nothing written into them yet: a misfit name turns them into drops.
        self.made_projects: set[str] = set()
        self.made_datasets: set[tuple[str, str]] = set()  # (project, top-level dataset)
        # Paths whose last write was refused: the kernel may cache the refused bytes' pages, so
        # the next open for reading drops them (ops.open).
        self.refused_pages: set[str] = set()

    def refuse(self, code: int, message: str, path: str, once_for: str | None = None) -> FuseOSError:
        """A refused change: logged (see `refuse`) and kept for the mount's status."""
        self.outcomes.refused(path, message)
        return refuse(code, message, once_for)

    # -- opening for writing -----------------------------------------------------------------
    def is_scratch(self, t: Target) -> bool:
        """Temporary names, and img_info/ files (accepted, never imported)."""
        return t.kind is Kind.STAGED or (t.kind is Kind.FILE and t.section in INFO_SECTIONS)

    def is_new_scratch(self, t: Target) -> bool:
        """A name to create as a scratch file: a temporary one, or a new file in img/ (video/)
        whose name no image (video, point cloud) has (an editor's `x.jpg.new`, mktemp's `tmp.AbC`)."""
        if self.is_scratch(t):
            return True
        return t.kind is Kind.FILE and t.section in MEDIA_SECTIONS and not is_media_name(t.name) \
            and not self._exists(t)

    def _exists(self, t: Target) -> bool:
        """An item, or an annotation waiting for its image, stands at this position."""
        try:
            self.view.item(t, sized=False)
            return True
        except NotFound:
            return self.wb.waiting_file(t.project, t.dataset, t.item, t.section) is not None

    def check_parent(self, t: Target) -> None:
        """A scratch file needs an existing directory to live in."""
        parent = t.path.rpartition("/")[0] or "/"
        if self.scratch.get(parent) is not None:
            if not self.scratch.is_dir(parent):
                raise FuseOSError(errno.ENOTDIR)
            return
        if t.kind is Kind.FILE:  # img_info/<file>
            self.view.getattr(Target(Kind.SECTION, t.project, t.dataset, t.section))
            return
        if not self.view.getattr(parse(parent))["st_mode"] & 0o040000:
            raise FuseOSError(errno.ENOTDIR)

    def open_write(self, t: Target, truncate: bool, create: bool) -> StagedHandle:
        """A handle to write `t`; without `truncate` it starts with the current bytes."""
        if self.is_new_scratch(t) if create else self.is_scratch(t):
            self.check_parent(t)
            node = self.scratch.get(t.path)
            if node is not None:
                if node.file is None:
                    raise FuseOSError(errno.EISDIR)
                if not truncate:
                    return StagedHandle(t, node.file.open(), position=False)
            initial = b"" if truncate or node is not None else self._generated(t, create)
            staged = self.scratch.create(t.path)
            if initial:
                staged.write(initial, 0)
            return StagedHandle(t, staged, position=False)
        self.writable(t)
        node = self.scratch.get(t.path)
        if node is not None and node.file is not None:  # an empty file kept at a position (`touch`)
            staged = self.scratch.take(t.path)
            if truncate:
                staged.truncate(0)
            return StagedHandle(t, staged.open(), position=True)
        initial = b""
        if not truncate:
            try:
                initial = self.current_bytes(t)
            except NotFound:
                if not create:
                    raise
        self.attrs.forget(t.path)
        return StagedHandle(t, StagedFile.create(str(self.wb.directory), initial), position=True)

    def _generated(self, t: Target, create: bool) -> bytes:
        """An img_info/ file opened for writing without truncation starts as the generated one."""
        try:
            from .view import img_info
            return img_info(t.item, self.view.item(t))
        except NotFound:
            if not create:
                raise
            return b""

    def writable(self, t: Target) -> None:
        """Whether `t` is a Supervisely position that can be written."""
        if t.kind is Kind.PROJECT_META:
            self.store.ns.project(t.project)
            return
        if t.kind is not Kind.FILE or t.section == NESTED:
            where = {Kind.DATASET: "a project holds meta.json and datasets", Kind.STATS: ".cas/ is read only",
                     Kind.CAS_DIR: ".cas/ is read only"}.get(t.kind, "no files here")
            raise self.refuse(errno.EPERM, f"{label_of(t)}: no place for a file ({where}); {WHERE_FILES_GO}",
                              label_of(t), once_for=t.path.rpartition("/")[0])
        if not self.store.ns.has_dataset(t.project, t.dataset):
            raise NotFound(f"no dataset {t.project}/{t.dataset}")
        if self.view.sections(t.project).files:  # its frames and files make one episode
            raise self.refuse(errno.EPERM, f"{label_of(t)}: an episode is not written file by file; copy its "
                                           "folder in, or import it with `cas import`", label_of(t),
                              once_for=t.path.rpartition("/")[0])
        self._check_section(t)
        if t.section in RELATED_SECTIONS:
            raise self.refuse(errno.EPERM, f"{label_of(t)}: related files are not written one by one; "
                                           "import the project with `cas import`", label_of(t),
                              once_for=t.path.rpartition("/")[0])
        if t.section not in MEDIA_SECTIONS and not t.name.endswith(".json"):
            raise self.refuse(errno.EPERM, f"{label_of(t)}: {t.section}/ holds <item>.json files only",
                              label_of(t), once_for=t.path.rpartition("/")[0])

    def _check_section(self, t: Target) -> None:
        """EPERM for a section the project's type has not (video/ in an image project, meta/ in
        a video project)."""
        sections = self.view.sections(t.project)
        if t.section in MEDIA_SECTIONS and t.section != sections.media:
            raise self.refuse(errno.EPERM, f"{label_of(t)}: project {t.project} keeps its media in "
                                           f"{sections.media}/", label_of(t))
        if t.section not in sections.listed:
            raise self.refuse(errno.EPERM, f"{label_of(t)}: a dataset of project {t.project} holds "
                                           f"{', '.join(s + '/' for s in sections.listed)} and datasets/", label_of(t))

    def current_bytes(self, t: Target) -> bytes:
        if t.kind is Kind.PROJECT_META:
            return self.view.project_meta(t.project)
        waiting = self.wb.waiting_file(t.project, t.dataset, t.item, t.section)
        if waiting is not None and waiting.id is not None:
            return self.wb.closed_bytes(waiting)
        blob, _size = item_blob(t.section, t.item, self.view.item(t))
        return self.wb.read_blob(blob)

    # -- closing -------------------------------------------------------------------------------
    def finalize(self, handle: StagedHandle) -> None:
        """A dirty position file was closed: validate and hand it over; bad content is EINVAL."""
        t = handle.target
        if handle.staged.size == 0 and t.kind is Kind.FILE and not self._exists(t):
            empty = StagedFile.create(str(self.scratch.directory))  # `touch`: a file, imported once it has bytes
            self.scratch.adopt(t.path, empty)
            empty.release()
            handle.dirty = False
            return
        try:
            self.close_at(t, handle.staged)
        except InvalidInput as e:
            handle.refused = True  # the kernel's RELEASE comes later: a stat meanwhile sees the file as it was
            if len(self.refused_pages) < 4096:
                self.refused_pages.add(t.path)
            raise self.refuse(errno.EINVAL, f"rejected {e}", label_of(t)) from e
        handle.dirty = False

    def close_at(self, t: Target, staged: StagedFile) -> None:
        """Import staged bytes at position `t` (raises InvalidInput, changing nothing)."""
        label = label_of(t)
        if self.scratch.get(t.path) is not None:
            self.scratch.unlink(t.path)  # the empty file kept here until it had bytes
        if t.kind is Kind.PROJECT_META:
            from cas.model.annotation import loads
            raw = staged.getvalue()
            self.wb.set_project_meta(t.project, loads(raw, label), raw)
            self.view.forget_sections(t.project)  # its projectType may have changed
            self.hidden.meta_written(t.project)
            return
        if t.section in MEDIA_SECTIONS:
            # an item written: no longer a folder that may become a drop (meta.json and waiting
            # annotations go into one: `convert`)
            self.made_projects.discard(t.project)
            self.made_datasets.discard((t.project, t.dataset.split("/")[0]))
            ann_written = self.wb.waiting_file(t.project, t.dataset, t.name, "ann") is not None
            self.wb.close_media(t.project, t.dataset, t.name, staged, label)
            self.hidden.media_closed(t.project, t.dataset, t.name, ann_written)
            return
        defer = t.section == "ann" and self.hidden.meta_hidden(t.project)
        may_drop = t.project in self.made_projects or (t.project, t.dataset.split("/")[0]) in self.made_datasets
        self.wb.close_json(t.project, t.dataset, t.section, t.item, staged, label, defer=defer, may_drop=may_drop)
        self.hidden.file_written(t.project, t.dataset, t.section, t.item)

    # -- names ---------------------------------------------------------------------------------
    def mkdir(self, t: Target) -> None:
        ns = self.store.ns
        if t.kind is Kind.STAGED:
            self.check_parent(t)
            self.scratch.mkdir(t.path)
        elif t.kind is Kind.PROJECT:
            ns.create_project(t.project)
            self.hidden.hide_meta(t.project)
            self.made_projects.add(t.project)
        elif t.kind is Kind.DATASET:
            parent = t.dataset.rpartition("/")[0]
            if parent and not ns.has_dataset(t.project, parent):
                raise NotFound(f"no dataset {t.project}/{parent}")
            ns.create_dataset(t.project, t.dataset)
            self.hidden.dataset_made(t.project, t.dataset)
            if not parent:
                self.made_datasets.add((t.project, t.dataset))
        elif t.kind is Kind.SECTION:
            if t.section != NESTED:
                self._check_section(t)
            if t.section == NESTED and not self.hidden.is_new(t.project, t.dataset):
                try:
                    self.view.getattr(t)
                except NotFound:
                    self.hidden.nested_made(t.project, t.dataset)
                    return
                raise FuseOSError(errno.EEXIST)
            self.view.getattr(Target(Kind.DATASET, t.project, t.dataset))
            if not self.hidden.section_made(t.project, t.dataset, t.section):
                raise FuseOSError(errno.EEXIST)
        else:
            raise FuseOSError(errno.EEXIST if t.kind in (Kind.ROOT, Kind.CAS_DIR) else errno.EPERM)

    def unlink(self, t: Target) -> None:
        if t.kind is Kind.STAGED or (t.kind is Kind.FILE and self.scratch.get(t.path) is not None):
            self.scratch.unlink(t.path)
        elif t.kind is Kind.PROJECT_META:
            self.view.getattr(t)
            self.hidden.hide_meta(t.project)  # the project keeps its meta; rmdir removes it
        elif t.kind is not Kind.FILE or t.section == NESTED:
            raise FuseOSError(errno.EPERM)
        elif t.section in INFO_SECTIONS:
            if self.scratch.get(t.path) is not None:
                self.scratch.unlink(t.path)
            else:
                self.view.getattr(t)
            self.hidden.hide_file(t.project, t.dataset, t.section, t.item)
        elif t.section in MEDIA_SECTIONS:
            self.view.getattr(t)
            self.wb.remove_item(t.project, t.dataset, t.name)
        else:
            self.view.getattr(t)
            waiting = self.wb.waiting_file(t.project, t.dataset, t.item, t.section)
            self.wb.clear_json(t.project, t.dataset, t.section, t.item)
            if t.section == "ann" and waiting is None:
                self.hidden.hide_file(t.project, t.dataset, "ann", t.item)  # reset to empty, out of rm -rf's way
        self.attrs.forget(t.path)

    def rmdir(self, t: Target) -> None:
        ns = self.store.ns
        if t.kind is Kind.STAGED:
            self.scratch.rmdir(t.path)
            return
        self.view.getattr(t)
        if self.scratch.has_children(t.path):
            raise FuseOSError(errno.ENOTEMPTY)
        if t.kind is Kind.PROJECT:
            if ns.datasets(t.project):
                raise FuseOSError(errno.ENOTEMPTY)
            self.wb.barrier()
            remove_with_history(self.store, t.project)
            self.hidden.forget(t.project)
        elif t.kind is Kind.DATASET:
            if self.wb.has_items(t.project, t.dataset) or ns.children(t.project, t.dataset) \
                    or self.wb.waiting(t.project, t.dataset, "ann") or self.wb.waiting(t.project, t.dataset, "meta"):
                raise FuseOSError(errno.ENOTEMPTY)
            self.wb.barrier()
            ns.remove_dataset(t.project, t.dataset)
            self.hidden.forget(t.project, t.dataset)
        elif t.kind is Kind.SECTION:
            if next(iter(self.view.section_entries(t)), None) is not None:
                raise FuseOSError(errno.ENOTEMPTY)
            return  # an empty section: nothing to remove (sections always exist)
        else:
            raise FuseOSError(errno.EPERM)
        self.attrs.forget_under(t.path)

    def rename(self, old: Target, new: Target) -> None:
        old_scratch = self.scratch.get(old.path) is not None
        if old_scratch and self.is_new_scratch(new):
            self.check_parent(new)
            self.scratch.rename(old.path, new.path)
        elif old_scratch:
            self._import_scratch(old, new)
        elif old.project != new.project:
            raise FuseOSError(errno.EXDEV)  # mv copies, then removes
        elif old.kind is Kind.DATASET and new.kind is Kind.DATASET:
            self.wb.barrier()
            self.store.ns.rename_dataset(old.project, old.dataset, new.dataset)
            self.scratch.move_under(old.path, new.path)
            self.hidden.forget(old.project, old.dataset)
        elif old.kind is Kind.FILE and new.kind is Kind.FILE and old.section in MEDIA_SECTIONS \
                and new.section == old.section:
            self.view.getattr(old)
            self.wb.barrier()
            self.store.ns.rename_item(old.project, old.dataset, old.name, new.dataset, new.name)
        elif old.kind in (Kind.FILE, Kind.PROJECT_META) and (new.kind is Kind.STAGED or (
                new.kind is Kind.FILE and old.kind is Kind.FILE and new.section == old.section)):
            self._copy_then_unlink(old, new)
        else:
            raise FuseOSError(errno.EPERM)
        self.attrs.move(old.path, new.path)

    def _import_scratch(self, old: Target, new: Target) -> None:
        """rsync, editors, tempfile + os.replace: a finished temporary file renamed into place."""
        if new.kind not in (Kind.FILE, Kind.PROJECT_META):
            raise FuseOSError(errno.EPERM)
        self.writable(new)
        staged = self.scratch.take(old.path)
        try:
            self.close_at(new, staged)
        except InvalidInput as e:
            self.scratch.adopt(old.path, staged)
            raise self.refuse(errno.EINVAL, f"rejected {e}", label_of(new)) from e
        except BaseException:
            self.scratch.adopt(old.path, staged)
            raise
        if new.kind is Kind.PROJECT_META:
            staged.discard()

    def _copy_then_unlink(self, old: Target, new: Target) -> None:
        """An annotation moved to another item, or a stored file moved to a temporary name."""
        data = self.current_bytes(old)
        if new.kind is Kind.STAGED:
            self.check_parent(new)
            staged = self.scratch.create(new.path)
            staged.write(data, 0)
            staged.release()
        else:
            self.writable(new)
            staged = StagedFile.create(str(self.wb.directory), data)
            try:
                self.close_at(new, staged)
            except InvalidInput as e:
                staged.discard()
                raise self.refuse(errno.EINVAL, f"rejected {e}", label_of(new)) from e
            staged.release()
        if old.kind is Kind.PROJECT_META:
            self.hidden.hide_meta(old.project)
        else:
            self.unlink(old)

    # -- drops -----------------------------------------------------------------------------------
    def convert(self, full: str) -> Drop | None:
        """A name that fits no Supervisely position is being made at `full`: if it lies in a
        project, or a top-level dataset, that this mount made and no item was written into,
        that folder becomes a drop (its folders, scratch files, meta.json and annotations
        waiting for their media moved in, the empty project or dataset removed). None if
        there is no such folder."""
        if self.drops is None or self._own_section(full):
            return None
        ns = self.store.ns
        parts = [p for p in full.split("/") if p]
        project = parts[0]
        if project in self.made_projects:
            datasets = ns.datasets(project)
            if not self._written(project, datasets):
                self.wb.barrier()
                drop = self.drops.create(project, project, into=False)
                self._move_in(drop, f"/{project}", project, datasets)
                remove_with_history(self.store, project)
                self.view.forget_sections(project)  # it comes back of the type its import gives it
                self.made_projects.discard(project)
                self.made_datasets = {k for k in self.made_datasets if k[0] != project}
                self.hidden.forget(project)
                return drop
        if len(parts) > 1 and (project, parts[1]) in self.made_datasets:
            top = parts[1]
            datasets = [d for d in ns.datasets(project) if d == top or d.startswith(top + "/")]
            if not self._written(project, datasets):
                self.wb.barrier()
                drop = self.drops.create(project, top, into=True)
                self._move_in(drop, f"/{project}/{top}", project, datasets)
                ns.remove_dataset(project, top)
                self.made_datasets.discard((project, top))
                self.hidden.forget(project, top)
                return drop
        return None

    def _own_section(self, full: str) -> bool:
        """Whether `full` is a folder of its project's own kind (video/ in a video project), where
        files are written one by one (never in an episode: `writable`)."""
        try:
            t = parse(full)
        except InvalidName:
            return False
        if t.kind is not Kind.SECTION:
            return False
        layout = self.view.sections(t.project)
        return t.section in layout.listed and not layout.files

    def _written(self, project: str, datasets: list[str]) -> bool:
        return any(self.wb.has_items(project, d) for d in datasets)

    def _move_in(self, drop: Drop, base: str, project: str, datasets: list[str]) -> None:
        """Lay what the mount shows below `base` (folders made, scratch files, meta.json and
        waiting annotations) into the drop."""
        root = drop.root
        if base == f"/{project}" and (meta := self.wb.written_meta(project, self.store.ns.project(project).mtime)):
            _write_file(os.path.join(root, META_NAME), meta)
        for d in datasets:
            folder = os.path.join(root, dataset_path(project, d)[len(base):].lstrip("/"))
            os.makedirs(folder, exist_ok=True)
            for section, item, data in self.wb.take_waiting(project, d):  # a video's annotation, say
                _write_file(os.path.join(folder, section, f"{item}.json"), data)
            for section in self.hidden.sections_made(project, d) | ({NESTED} if self.hidden.has_nested(project, d)
                                                                   else set()):
                os.makedirs(os.path.join(folder, section), exist_ok=True)
        for path, node in self.scratch.under(base):
            _lay_down(os.path.join(root, path[len(base) + 1:]), node)
        self.scratch.remove_under(base)
        for path, held in sorted(self.attrs.held_under(base), key=lambda pa: -pa[0].count("/")):
            _set_attrs(os.path.join(root, path[len(base) + 1:]), held)  # cp -a's, rsync's, mkdir's modes
        self.attrs.forget_under(base)


def _write_file(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _set_attrs(real: str, held: dict[str, int]) -> None:
    if not os.path.lexists(real):
        return
    if "st_mode" in held:
        os.chmod(real, held["st_mode"] & 0o7777)
    if "st_uid" in held or "st_gid" in held:
        os.chown(real, held.get("st_uid", -1), held.get("st_gid", -1))
    if "st_mtime" in held:
        os.utime(real, ns=(held.get("st_atime", held["st_mtime"]), held["st_mtime"]))


def _lay_down(real: str, node: Node) -> None:
    """A scratch file or directory, written as a real one."""
    if node.file is None:
        os.makedirs(real, exist_ok=True)
        return
    os.makedirs(os.path.dirname(real), exist_ok=True)
    with open(real, "wb") as f:
        f.write(node.file.getvalue())
    os.utime(real, ns=(node.mtime, node.mtime))
