"""The FUSE operations: parse the path, delegate to the view or copy-in, translate errors.

Errors become errno values in one table (`_ERRNO`); an OSError keeps its errno (a full
disk is ENOSPC) with one log line; anything unexpected is logged with its traceback and
becomes EIO. The daemon never dies on a request.
"""

from __future__ import annotations

import errno
import faulthandler
import functools
import json
import logging
import os
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from cas.config import settings
from cas.errors import (
    AlreadyExists,
    CasError,
    Conflict,
    CorruptBlob,
    InvalidInput,
    InvalidName,
    NotFound,
    SchemaError,
    StoreBusy,
)
from cas.ingest import WriteBack
from cas.ingest.drops import SETTLE, Drop, Drops, Importer
from cas.ingest.outcomes import Outcomes, render
from cas.model.layout import INFO_SECTIONS, MEDIA_SECTIONS
from cas.store import Store
from cas.versions.trees import open_version_blob

from . import passthrough
from .attrs import AttrOverlay
from .binding import FuseOSError, Operations, caller_pid, current_fuse, invalidate_path, keep_thread_state
from .copy_in import WHERE_FILES_GO, CopyIn, editor_temporary, misfit
from .handles import BytesHandle, DirHandle, HandleTable, ReadHandle, StagedHandle
from .hidden import Hidden
from .invalidate import Invalidator
from .passthrough import FdHandle
from .paths import STATUS_NAMES, Kind, Target, parse
from .versions import Versions, is_read_only
from .view import View, img_info, item_blob, new_file_attrs

log = logging.getLogger("cas.mount")

_ERRNO: list[tuple[type[BaseException], int]] = [
    (NotFound, errno.ENOENT),
    (InvalidName, errno.ENOENT),
    (AlreadyExists, errno.EEXIST),
    (Conflict, errno.EEXIST),
    (InvalidInput, errno.EINVAL),
    (CorruptBlob, errno.EIO),
    (StoreBusy, errno.EBUSY),
    (SchemaError, errno.EIO),
    (NotADirectoryError, errno.ENOTDIR),
    (CasError, errno.EIO),
]
_QUIET = {errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY}  # ordinary answers, not worth a log line
F = TypeVar("F", bound=Callable[..., Any])


OP_COUNTS: Counter[str] = Counter()  # requests served, logged at unmount when CAS_MOUNT_TRACE is set
TRACE = settings().mount_trace
DESTROY_STACKS_AFTER = 20.0  # seconds of unmount after which every thread's stack is logged


def translated(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(self: CasOperations, *args: Any) -> Any:
        keep_thread_state()
        if TRACE:
            OP_COUNTS[fn.__name__] += 1
        try:
            return fn(self, *args)
        except FuseOSError:
            raise
        except OSError as e:
            code = e.errno or next((c for kind, c in _ERRNO if isinstance(e, kind)), errno.EIO)
            if code not in _QUIET:
                log.warning("%s%r: %s", fn.__name__, args, e.strerror or e)
            raise FuseOSError(code) from e
        except Exception as e:  # noqa: BLE001 - the boundary: every error becomes an errno
            known = next((c for kind, c in _ERRNO if isinstance(e, kind)), None)
            if known is None:
                log.exception("%s%r failed unexpectedly", fn.__name__, args)
                known = errno.EIO
            elif known not in _QUIET:
                log.warning("%s%r: %s", fn.__name__, args, e)
            raise FuseOSError(known) from e
    return wrapper  # type: ignore[return-value]  # same signature as `fn`, which F cannot say


class CasOperations(Operations):
    """A cas store as Supervisely-format directories (see paths.py for the layout)."""

    use_ns = True

    def __init__(self, store_root: str, read_only: bool = False, project: str | None = None,
                 invalidate: Callable[[str], object] | None = None, importer: Importer | None = None,
                 settle: float = SETTLE) -> None:
        self.store_root = store_root
        self._invalidate = invalidate
        self.read_only = read_only
        self.project = project
        self.importer = importer  # imports drops (folders in other layouts); None: they are refused
        self.settle = settle
        self.handles = HandleTable()
        self.store: Store | None = None
        self.wb: WriteBack | None = None
        self.drops: Drops | None = None
        self.outcomes = Outcomes()
        self._kernel_lock = threading.Lock()  # notifications to the kernel end with the session
        self._ending = False

    def init(self, path: str) -> None:
        # The index is opened here, in the process that serves requests, never before a fork.
        self.store = Store(self.store_root)
        self.hidden = Hidden(caller_pid)
        self.attrs = AttrOverlay()
        if not self.read_only:
            self.wb = WriteBack(self.store)  # replays what a killed daemon left in its journal
        self.view = View(self.store, self.wb if self.wb is not None else self.store.ns, self.wb, self.hidden,
                         read_only=self.read_only)
        self.invalidator = Invalidator(self.store, self.kernel_invalidator(), self.project, MEDIA_SECTIONS)
        if self.wb is not None:
            if self.importer is not None:
                self.drops = Drops(self.store, self.importer, self.outcomes, self.settle, self._drop_imported)
            self.copy_in = CopyIn(self.store, self.view, self.wb, self.hidden, self.attrs, self.outcomes, self.drops)
        self.invalidator.start()
        self.versions = Versions(self.store)
        log.info("mounted store %s%s", self.store_root, " read-only" if self.read_only else "")

    def kernel_invalidator(self) -> Callable[[str], object]:
        """How a changed path's kernel caches are dropped: through the running FUSE session
        (a test that calls the operations without a mount passes its own)."""
        if self._invalidate is not None:
            return self._invalidate
        fuse = current_fuse()
        return lambda path: invalidate_path(fuse, path)

    def destroy(self, path: str) -> None:
        # Unmounting commits what is pending; should that ever hang, the stacks say where.
        faulthandler.dump_traceback_later(DESTROY_STACKS_AFTER)
        try:
            self._shut_down()
        finally:
            faulthandler.cancel_dump_traceback_later()
        if TRACE:
            log.info("requests served: %s", dict(OP_COUNTS.most_common()))
        log.info("unmounted")

    def _shut_down(self) -> None:
        if self.store is not None:
            with self._kernel_lock:
                self._ending = True
            self.invalidator.stop()  # first: the session is ending, and the store closes below
            if self.drops is not None:
                self.drops.close()  # what is waiting is imported
            if self.wb is not None:
                self.wb.close()  # a barrier: everything closed is committed
            self.store.close()

    def _full(self, path: str) -> str:
        if self.project is None:
            return path
        return f"/{self.project}{path}" if path != "/" else f"/{self.project}"

    def _target(self, path: str) -> Target:
        full = self._full(path)
        try:
            t = parse(full)
        except InvalidName:
            if self._scratch_at(full):
                return Target(Kind.STAGED, name=full)
            raise
        if t.kind in (Kind.PROJECT, Kind.DATASET, Kind.SECTION) and self._scratch_at(full):
            return Target(Kind.STAGED, t.project, t.dataset, name=full)  # a file where the layout has none
        return t

    def _scratch_at(self, full: str) -> bool:
        return self.wb is not None and self.wb.scratch.get(full) is not None

    # -- drops: folders in other layouts, shown as written until imported -----------------------
    def _in_drop(self, path: str) -> tuple[Drop, str] | None:
        if self.drops is None or not self.drops.active:  # the common case: one attribute test
            return None
        return self.drops.resolve([p for p in self._full(path).split("/") if p])

    def _drop_for_new(self, path: str, is_dir: bool) -> tuple[Drop, str] | None:
        """The drop a name being made goes into: one it is in, or the one its folder becomes
        because the name fits no Supervisely position (see CopyIn.convert)."""
        hit = self._in_drop(path)
        if hit is not None or self.drops is None or self.read_only:
            return hit
        full = self._full(path)
        if misfit(full, is_dir) and self.copy_in.convert(full) is not None:
            return self._in_drop(path)
        return None

    def _drop_imported(self, path: str) -> None:
        """A drop became a project: the kernel forgets what it cached of the folder. Not once
        the session is ending (a notification to a freed session crashes the daemon)."""
        with self._kernel_lock:
            if not self._ending:
                self.invalidator.invalidate(path if self.project is None else path[len(self.project) + 1:] or "/")

    def _drop_entries(self, t: Target) -> Iterator[tuple[str, dict[str, int] | None]]:
        """Drops shown in a listing of the root or of a project folder (with the reason of a failed one)."""
        if self.drops is None or t.kind not in (Kind.ROOT, Kind.PROJECT) or t.version:
            return
        for drop in self.drops.shown_in(t.project if t.kind is Kind.PROJECT else None):
            try:
                yield drop.name, passthrough.getattr_(drop.root)
            except FileNotFoundError:
                continue
            if drop.reason:
                yield drop.name + ERROR_SUFFIX, _error_attrs(drop)

    def _error_file(self, path: str) -> Drop | None:
        """`<drop>.import-error`: why a failed drop was not imported."""
        if self.drops is None or not path.endswith(ERROR_SUFFIX):
            return None
        hit = self._in_drop(path[:-len(ERROR_SUFFIX)])
        if hit is None or hit[1] != hit[0].root or not hit[0].reason:
            return None
        return hit[0]

    def status(self) -> dict[str, Any]:
        status = self.outcomes.snapshot()
        status["drops"] = self.drops.status() if self.drops is not None else []
        status["pending_files"] = self.wb.pending() if self.wb is not None else 0
        return status

    def _status_attrs(self, name: str) -> dict[str, int]:
        return {**new_file_attrs(time.time_ns()), "st_mode": stat.S_IFREG | 0o444,
                "st_size": len(self._status_bytes(name))}

    def _status_bytes(self, name: str) -> bytes:
        status = self.status()
        if name == "status.json":
            return json.dumps(status, indent=2).encode()
        return render(status).encode()

    def _writable(self, *paths: str) -> list[Target]:
        """The targets of a change; EROFS on a read-only mount or inside a version. A name
        that fits nowhere is EPERM with a log line that says where files go."""
        if self.read_only:
            raise FuseOSError(errno.EROFS)
        targets = []
        for path in paths:
            try:
                t = self._target(path)
            except InvalidName as e:
                raise self._misplaced(path, e) from e
            if is_read_only(t):
                raise FuseOSError(errno.EROFS)
            targets.append(t)
        return targets

    def _misplaced(self, path: str, error: InvalidName) -> FuseOSError:
        """A name where the layout has no place for it (a plain folder of images copied where
        a dataset goes): ENOENT if its directory does not exist either, else EPERM, logged
        once per folder."""
        parent = path.rpartition("/")[0] or "/"
        try:
            t = self._target(parent)
            self._view(t).getattr(t)
        except (InvalidName, NotFound):
            return FuseOSError(errno.ENOENT)
        where = {Kind.ROOT: "a project", Kind.PROJECT: "meta.json or a dataset"}.get(t.kind, "")
        if t.kind is Kind.DATASET:
            where = " ".join(f"{s}/" for s in self.view.sections(t.project).listed) + " and datasets/"
        return self.copy_in.refuse(errno.EPERM, f"{path.lstrip('/')}: no place for it ({error}); "
                                   + (f"{parent} holds {where}; " if where else "") + WHERE_FILES_GO,
                                   path.lstrip("/"), once_for=parent)

    def _view(self, t: Target) -> View | Versions:
        return self.versions if is_read_only(t) else self.view

    # -- reading -------------------------------------------------------------------------
    @translated
    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        if fh is not None:
            handle = self.handles.get(fh)
            if isinstance(handle, StagedHandle) and handle.position and not handle.refused:
                return {**self._attrs_or_new(handle.target), "st_size": handle.size}
            if isinstance(handle, FdHandle):
                return handle.stat()
        hit = self._in_drop(path)
        if hit is not None:
            return passthrough.getattr_(hit[1])
        failed = self._error_file(path)
        if failed is not None:
            return _error_attrs(failed)
        t = self._target(path)
        if t.kind is Kind.STATUS:
            return self._status_attrs(t.name)
        writer = self.handles.writer_for(t)  # the writer's own view of a file being written
        if writer is not None:
            return {**self._attrs_or_new(t), "st_size": writer.size}
        attrs = self._view(t).getattr(t)
        return self.attrs.apply(t.path, attrs) if not t.version else attrs

    def _attrs_or_new(self, t: Target) -> dict[str, int]:
        try:
            attrs = self.view.getattr(t)
        except NotFound:
            attrs = new_file_attrs(self.view.mounted_at)
        return self.attrs.apply(t.path, attrs)

    @translated
    def opendir(self, path: str) -> int:
        hit = self._in_drop(path)
        if hit is not None:
            if not os.path.isdir(hit[1]):
                raise FuseOSError(errno.ENOTDIR)
            return self.handles.add(DirHandle(lambda: passthrough.listing(hit[1])))
        t = self._target(path)
        view = self._view(t)
        if not view.getattr(t)["st_mode"] & 0o040000:
            raise FuseOSError(errno.ENOTDIR)
        return self.handles.add(DirHandle(lambda: self._listing(view, t)))

    def _listing(self, view: View | Versions, t: Target) -> Iterator[tuple[str, dict[str, int] | None]]:
        base = t.path.rstrip("/")
        drops = {name: attrs for name, attrs in self._drop_entries(t)}
        for name, attrs in view.readdir(t):
            if name not in drops:
                yield name, self.attrs.apply_in(base, name, attrs) if attrs is not None else None
        yield from drops.items()
        if t.kind is Kind.CAS_DIR:
            for name in STATUS_NAMES:
                yield name, self._status_attrs(name)

    @translated
    def readdir_at(self, path: str, fh: int, offset: int) -> Iterator[tuple[str, dict[str, int] | None, int]]:
        handle = self.handles.get(fh)
        if not isinstance(handle, DirHandle):
            raise FuseOSError(errno.EBADF)
        return handle.entries_at(offset)

    def readdir(self, path: str, fh: int) -> Iterator[tuple[str, dict[str, int] | None]]:
        """Unused (CasFUSE calls readdir_at); present so the binding registers readdir."""
        return iter(())

    @translated
    def open(self, path: str, flags: int) -> int:
        hit = self._in_drop(path)
        if hit is not None:
            return self._open_in_drop(hit, lambda real: passthrough.open_(real, flags), flags)
        failed = self._error_file(path)
        if failed is not None:
            if flags & (os.O_WRONLY | os.O_RDWR):
                raise FuseOSError(errno.EACCES)
            return self.handles.add(BytesHandle(_error_text(failed)))
        if flags & (os.O_WRONLY | os.O_RDWR):
            (t,) = self._writable(path)
            return self.handles.add(self.copy_in.open_write(t, truncate=bool(flags & os.O_TRUNC), create=False))
        t = self._target(path)
        if t.kind is Kind.STATS:
            return self.handles.add(BytesHandle(self.view.stats()))
        if t.kind is Kind.STATUS:
            return self.handles.add(BytesHandle(self._status_bytes(t.name)))
        view = self.versions.view(t.project, t.version) if t.version else self.view
        if t.kind is Kind.PROJECT_META:
            return self.handles.add(BytesHandle(view.project_meta(t.project)))
        scratch = view.scratch(t.path)
        if t.kind is Kind.STAGED or scratch is not None:  # a temporary name, or an img_info/ write
            if scratch is None:
                raise NotFound(f"nothing at {t.path}")
            if scratch.file is None:
                raise FuseOSError(errno.EISDIR)
            return self.handles.add(StagedHandle(t, scratch.file.open(), position=False))
        if t.kind is not Kind.FILE:
            raise FuseOSError(errno.EISDIR)
        fh = self._open_file(view, t)
        if self.wb is not None and self.copy_in.refused_pages and t.path in self.copy_in.refused_pages:
            self.copy_in.refused_pages.discard(t.path)
            self.handles.get(fh).fresh = True  # type: ignore[union-attr]
        return fh

    def _open_file(self, view: View, t: Target) -> int:
        view.check_file(t)  # hidden files and wrong sections are not there
        try:
            item = view.item(t, sized=False)
        except NotFound:
            if view.wb is None:
                raise
            waiting = view.wb.waiting_file(t.project, t.dataset, t.item, t.section)
            if waiting is None or waiting.id is None:
                raise
            return self.handles.add(BytesHandle(view.wb.closed_bytes(waiting)))
        if t.section in INFO_SECTIONS:
            return self.handles.add(BytesHandle(img_info(t.item, view.sized(item))))
        assert self.store is not None
        blob, size = item_blob(t.section, t.item, item)
        if t.version:  # a blob of a version pushed from elsewhere is adopted on first read
            return self.handles.add(ReadHandle(open_version_blob(self.store, blob), direct=size < 0))
        if self.wb is None:
            return self.handles.add(ReadHandle(self.store.open(blob), direct=size < 0))
        reader = self.wb.open_blob(blob)
        if isinstance(reader, bytes):
            return self.handles.add(BytesHandle(reader))
        return self.handles.add(ReadHandle(reader, direct=size < 0))

    def flushes(self, fh: int) -> bool:
        """Whether closing the file has work for the daemon (a FLUSH request): only a file
        written at a Supervisely position, judged at its close."""
        handle = self.handles.get(fh)
        return isinstance(handle, StagedHandle) and handle.position

    def keep_cache(self, fh: int) -> bool:
        """Whether a file opened for reading keeps the kernel's pages of earlier opens: not
        after a refused write to it (the pages may hold the refused bytes)."""
        return not getattr(self.handles.get(fh), "fresh", False)

    def direct_io(self, fh: int) -> bool:
        """Links imported without their size bypass the page cache: the kernel may hold 0 as
        their size, and must not cut reads short at it."""
        handle = self.handles.get(fh)
        return isinstance(handle, ReadHandle) and handle.direct

    @translated
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        handle = self.handles.get(fh)
        if isinstance(handle, DirHandle):  # the kernel reads directories with readdir
            raise FuseOSError(errno.EISDIR)
        return handle.read(size, offset)

    def _open_in_drop(self, hit: tuple[Drop, str], opener: Callable[[str], FdHandle], flags: int) -> int:
        drop, real = hit
        assert self.drops is not None
        writing = passthrough.writes(flags)
        if writing:
            self._writable_drop(drop)
        handle = opener(real)
        handle.drop = drop if writing else None
        if writing:
            self.drops.opened(drop, real)
        return self.handles.add(handle)

    def _writable_drop(self, drop: Drop) -> None:
        if self.read_only:
            raise FuseOSError(errno.EROFS)
        assert self.drops is not None
        self.drops.check_writable(drop)

    def _touched(self, hit: tuple[Drop, str]) -> None:
        assert self.drops is not None
        self.drops.touched(hit[0])

    @translated
    def release(self, path: str, fh: int) -> int:
        staged = self.handles.get(fh)
        if isinstance(staged, StagedHandle) and staged.dirty and not staged.refused:  # left empty (see flush)
            try:
                self.copy_in.finalize(staged)
            except FuseOSError:
                pass  # refused: logged and in /.cas/status; a release has nobody to answer
        handle = self.handles.pop(fh)
        if handle is not None:
            handle.close()
            if isinstance(handle, FdHandle) and handle.drop is not None:
                assert self.drops is not None
                self.drops.closed(handle.drop, handle.real)
        return 0

    releasedir = release

    @translated
    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self.store_root)
        return {key: getattr(st, key) for key in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                                                    "f_files", "f_ffree", "f_favail", "f_namemax")}

    # -- writing -------------------------------------------------------------------------
    @translated
    def create(self, path: str, mode: int, fi: Any = None) -> int:
        hit = self._drop_for_new(path, is_dir=False)
        if hit is not None:
            flags = fi if isinstance(fi, int) else os.O_WRONLY  # the binding passes the open flags
            return self._open_in_drop(hit, lambda real: passthrough.create(real, mode, flags), os.O_WRONLY)
        full = self._full(path)
        if self.wb is not None and not self.read_only and misfit(full, False) and editor_temporary(full):
            t = Target(Kind.STAGED, name=full)  # an editor's temporary file beside meta.json, say
        else:
            (t,) = self._writable(path)
        return self.handles.add(self.copy_in.open_write(t, truncate=True, create=True))

    @translated
    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        handle = self.handles.get(fh)
        if not isinstance(handle, (StagedHandle, FdHandle)):
            raise FuseOSError(errno.EBADF)
        return handle.write(data, offset)

    @translated
    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        handle = self.handles.get(fh) if fh is not None else None
        hit = self._in_drop(path)
        if hit is not None:
            self._writable_drop(hit[0])
            if isinstance(handle, FdHandle):
                handle.truncate(length)
            else:
                passthrough.truncate(hit[1], length)
            self._touched(hit)
            return 0
        (t,) = self._writable(path)
        writer = handle if isinstance(handle, StagedHandle) else self.handles.writer_for(t)
        if writer is not None:
            writer.truncate(length)
            return 0
        writer = self.copy_in.open_write(t, truncate=False, create=False)  # a path alone: write it anew
        try:
            writer.truncate(length)
            if writer.position:
                self.copy_in.finalize(writer)
        finally:
            writer.close()
        return 0

    @translated
    def flush(self, path: str, fh: int) -> int:
        handle = self.handles.get(fh)
        # An empty file is judged at its release, not here: `cat a > b` opens b emptied and
        # closes a duplicate of its descriptor (a FLUSH) before it writes a byte.
        # A refused file is not judged again at the next close of a duplicate, only once written.
        if isinstance(handle, StagedHandle) and handle.dirty and handle.size > 0 and not handle.refused:
            self.copy_in.finalize(handle)
        return 0

    @translated
    def fsync(self, path: str, datasync: int, fh: int) -> int:
        """A barrier: the file is closed (validated) if dirty, then everything closed so far is
        committed before this returns."""
        handle = self.handles.get(fh)
        if isinstance(handle, FdHandle):
            handle.fsync()
            return 0
        if isinstance(handle, StagedHandle) and handle.dirty:
            self.copy_in.finalize(handle)
        if self.wb is not None:
            self.wb.barrier()
        return 0

    @translated
    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        """A barrier: what is closed is committed, and drops are imported now (one, when the
        folder is in a drop; else all). EINVAL when a drop failed (its reason is in the status)."""
        hit = self._in_drop(path)
        if self.wb is not None and hit is None:
            self.wb.barrier()
        if self.drops is not None and self.drops.barrier(hit[0] if hit is not None else None):
            raise FuseOSError(errno.EINVAL)
        return 0

    @translated
    def mkdir(self, path: str, mode: int) -> int:
        hit = self._drop_for_new(path, is_dir=True)
        if hit is not None:
            self._writable_drop(hit[0])
            passthrough.mkdir(hit[1], mode)
            self._touched(hit)
            return 0
        (t,) = self._writable(path)
        self.copy_in.mkdir(t)
        if t.kind in (Kind.PROJECT, Kind.DATASET):  # kept, should the folder become a drop
            self.attrs.chmod(t.path, {"st_mode": stat.S_IFDIR}, mode)
        return 0

    @translated
    def unlink(self, path: str) -> int:
        hit = self._in_drop(path)
        if hit is not None:
            self._writable_drop(hit[0])
            passthrough.unlink(hit[1])
            self._touched(hit)
            return 0
        if self._error_file(path) is not None:
            raise FuseOSError(errno.EACCES)
        (t,) = self._writable(path)
        self.copy_in.unlink(t)
        return 0

    @translated
    def rmdir(self, path: str) -> int:
        hit = self._in_drop(path)
        if hit is not None:
            drop, real = hit
            self._writable_drop(drop)
            passthrough.rmdir(real)
            if real == drop.root:
                assert self.drops is not None
                self.drops.remove(drop)
            else:
                self._touched(hit)
            return 0
        (t,) = self._writable(path)
        self.copy_in.rmdir(t)
        return 0

    @translated
    def rename(self, old: str, new: str, flags: int = 0) -> int:
        if flags & RENAME_EXCHANGE:
            raise FuseOSError(errno.EINVAL)
        new_hit = self._drop_for_new(new, is_dir=self._is_dir(old))
        old_hit = self._in_drop(old)
        if new_hit is not None or old_hit is not None:
            if new_hit is None or old_hit is None or new_hit[0] is not old_hit[0] or old_hit[1] == old_hit[0].root:
                raise FuseOSError(errno.EXDEV)  # mv copies, then removes
            self._writable_drop(new_hit[0])
            if flags & RENAME_NOREPLACE and os.path.lexists(new_hit[1]):
                raise FuseOSError(errno.EEXIST)
            passthrough.rename(old_hit[1], new_hit[1])
            assert self.drops is not None
            self.drops.renamed(new_hit[0], old_hit[1], new_hit[1])
            return 0
        source, target = self._writable(old, new)
        if flags & RENAME_NOREPLACE and self._exists(target):
            raise FuseOSError(errno.EEXIST)
        self.copy_in.rename(source, target)
        return 0

    def _is_dir(self, path: str) -> bool:
        try:
            return bool(self.getattr(path)["st_mode"] & 0o040000)
        except FuseOSError:
            return False

    def _exists(self, t: Target) -> bool:
        try:
            self.view.getattr(t)
        except NotFound:
            return False
        return True

    def _settable(self, path: str) -> tuple[Target, dict[str, int]]:
        """A name whose mode, owner or times are being set, and its attributes now (a file
        still open for writing counts: cp -a and tar set them before close)."""
        (t,) = self._writable(path)
        if self.handles.writer_for(t) is not None:
            return t, self._attrs_or_new(t)
        return t, self.view.getattr(t)

    def _set_in_drop(self, path: str, change: Callable[[str], None]) -> bool:
        hit = self._in_drop(path)
        if hit is None:
            return False
        self._writable_drop(hit[0])
        change(hit[1])
        self._touched(hit)
        return True

    @translated
    def chmod(self, path: str, mode: int) -> int:
        if self._set_in_drop(path, lambda real: passthrough.chmod(real, mode)):
            return 0
        t, attrs = self._settable(path)
        self.attrs.chmod(t.path, attrs, mode)
        return 0

    @translated
    def chown(self, path: str, uid: int, gid: int) -> int:
        if self._set_in_drop(path, lambda real: passthrough.chown(real, uid, gid)):
            return 0
        t, _ = self._settable(path)
        self.attrs.chown(t.path, uid, gid)
        return 0

    @translated
    def utimens(self, path: str, times: Any = None) -> int:
        if self._set_in_drop(path, lambda real: passthrough.utimens(real, times)):
            return 0
        t, _ = self._settable(path)
        self.attrs.utimens(t.path, times)
        return 0

    @translated
    def symlink(self, target: str, source: str) -> int:
        hit = self._drop_for_new(target, is_dir=False)  # mfusepy passes (link name, what it points to)
        if hit is None:
            raise FuseOSError(errno.EPERM)
        self._writable_drop(hit[0])
        passthrough.symlink(source, hit[1])
        self._touched(hit)
        return 0

    @translated
    def readlink(self, path: str) -> str:
        hit = self._in_drop(path)
        if hit is None:
            raise FuseOSError(errno.EINVAL)
        return passthrough.readlink(hit[1])

    @translated
    def link(self, target: str, source: str) -> int:
        raise FuseOSError(errno.EPERM)

    @translated
    def mknod(self, path: str, mode: int, dev: int) -> int:
        raise FuseOSError(errno.EPERM)


RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
ERROR_SUFFIX = ".import-error"
def _error_text(drop: Drop) -> bytes:
    return (f"{drop.path.lstrip('/')} was not imported: {drop.reason}\n"
            "Fix the files in the folder (it is imported again once the copy settles), or remove it.\n").encode()


def _error_attrs(drop: Drop) -> dict[str, int]:
    st = passthrough.getattr_(str(drop.dir))
    return {**st, "st_mode": 0o100444, "st_nlink": 1, "st_size": len(_error_text(drop)), "st_blocks": 1}
