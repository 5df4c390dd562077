"""Drops: folders copied into the mount in a layout other than Supervisely's, imported whole.

A drop is a folder staged as written, in `<store>/tmp/drops/<id>/<name>/`; the mount shows
it as a plain directory (sizes, times and modes as the writer left them). Once every file
in it is closed and nothing was written for `settle` seconds, or at once on a barrier
(fsync of the folder, unmount), the folder is handed to the importer: the same detection
and converter `cas import` runs, into a new project named after the folder, or into the
project it was copied into. Large new files become blobs by a hard link (ImportSession's
`take_files`): their bytes are written once.

An import that fails changes nothing in the namespace (an import is atomic): the drop stays
as written, with the reason, until it is removed, or written into again (which retries it).
The drop's `writes` journal names the files opened for writing and closed; at the next
start, a file whose close never came (a daemon killed during a copy) is removed, and every
other drop is imported again.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cas import errors
from cas.ingest.journal import DROPS_DIR, try_lock
from cas.ingest.outcomes import Outcomes

if TYPE_CHECKING:
    from cas.store import Store

log = logging.getLogger("cas.mount")

INFO, WRITES, FAILED_FILE = "drop.json", "writes", "failed"
SETTLE = 2.0  # seconds without a write, every file closed, before a drop is imported
WAITING, IMPORTING, FAILED = "waiting", "importing", "failed"

# (store, folder, project) -> a one-line summary of what was imported; raises on failure,
# having changed nothing. The composition root (cas.cli) passes the converters' one.
Importer = Callable[["Store", Path, str], str]


def one_line(error: BaseException) -> str:
    return errors.reason(error).splitlines()[0]


class Drop:
    """One folder being copied in (see the module docstring)."""

    def __init__(self, directory: Path, project: str, name: str, into: bool, lock_fd: int) -> None:
        self.dir = directory
        self.project = project  # the project it is imported into
        self.name = name  # the folder's name in the mount
        self.into = into  # into an existing project (at /<project>/<name>), else a new one (at /<name>)
        self.lock_fd = lock_fd
        self.state = WAITING
        self.reason = ""
        self.writers: Counter[str] = Counter()  # relative path -> handles open for writing
        self.last_write = time.monotonic()
        self.urgent = False  # a barrier asked: import as soon as nothing is open
        self.idle = False  # nothing to import (an empty folder) until something is written
        self._journal = open(directory / WRITES, "ab", buffering=0)  # noqa: SIM115 - lives as long as the drop
        self.root = str(directory / name)  # the folder as written

    @property
    def path(self) -> str:
        """Where the mount shows it."""
        return f"/{self.project}/{self.name}" if self.into else f"/{self.name}"

    def note(self, sign: str, rel: str) -> None:
        self._journal.write(json.dumps([sign, rel]).encode() + b"\n")

    def forget_writes(self) -> None:
        os.ftruncate(self._journal.fileno(), 0)

    def contents(self) -> tuple[int, int]:
        """(files, bytes) below the folder."""
        files = size = 0
        for dirpath, _dirs, names in os.walk(self.root):
            for name in names:
                try:
                    size += os.lstat(os.path.join(dirpath, name)).st_size
                    files += 1
                except FileNotFoundError:
                    pass
        return files, size

    def close(self) -> None:
        self._journal.close()
        os.close(self.lock_fd)


class Drops:
    """The drops of one mount, and the thread that imports them once they settle."""

    def __init__(self, store: Store, importer: Importer, outcomes: Outcomes, settle: float = SETTLE,
                 on_change: Callable[[str], object] | None = None) -> None:
        self.store = store
        self.importer = importer
        self.outcomes = outcomes
        self.settle = settle
        self.on_change = on_change or (lambda path: None)
        self.base = Path(store.tmp_dir) / DROPS_DIR
        self.base.mkdir(exist_ok=True)
        self._cond = threading.Condition()
        self._at_root: dict[str, Drop] = {}  # new projects, by name
        self._in_project: dict[tuple[str, str], Drop] = {}  # (project, folder name)
        self._stopping = False
        self._resume()
        self._thread = threading.Thread(target=self._run, name="cas-drops", daemon=True)
        self._thread.start()

    # -- where drops are -----------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """Whether there is any drop (else no path needs resolving)."""
        return bool(self._at_root or self._in_project)

    def resolve(self, parts: list[str]) -> tuple[Drop, str] | None:
        """The drop a mount path (split into its names) is in, and the real path it stands for."""
        if not parts:
            return None
        drop, rest = self._at_root.get(parts[0]), parts[1:]
        if drop is None and len(parts) > 1:
            drop, rest = self._in_project.get((parts[0], parts[1])), parts[2:]
        if drop is None:
            return None
        return drop, os.path.join(drop.root, *rest) if rest else drop.root

    def shown_in(self, project: str | None = None) -> list[Drop]:
        """The drops shown at the mount root (`project` None) or in a project folder."""
        with self._cond:
            if project is None:
                return list(self._at_root.values())
            return [d for (p, _), d in self._in_project.items() if p == project]

    def all(self) -> list[Drop]:
        with self._cond:
            return [*self._at_root.values(), *self._in_project.values()]

    def create(self, project: str, name: str, into: bool) -> Drop:
        """A new drop folder at /<name> (a new project) or /<project>/<name> (into it)."""
        with self._cond:
            old = self._at(project, name, into)
            if old is not None:
                return old
            directory = Path(tempfile.mkdtemp(prefix="d", dir=self.base))
            lock_fd = try_lock(directory)
            assert lock_fd is not None, directory  # new: nobody else knows it
            (directory / INFO).write_text(json.dumps({"project": project, "name": name, "into": into,
                                                      "created": time.time()}))
            (directory / name).mkdir()
            drop = Drop(directory, project, name, into, lock_fd)
            self._register(drop)
            self._cond.notify_all()
            log.info("%s: a folder not in Supervisely layout: imported as a whole once its copy settles "
                     "(%s)", drop.path.lstrip("/"), f"into project {project}" if into else "as a new project")
            return drop

    def _at(self, project: str, name: str, into: bool) -> Drop | None:
        return self._in_project.get((project, name)) if into else self._at_root.get(name)

    def _registered(self, drop: Drop) -> bool:
        return self._at(drop.project, drop.name, drop.into) is drop

    def _register(self, drop: Drop) -> None:
        if drop.into:
            self._in_project[(drop.project, drop.name)] = drop
        else:
            self._at_root[drop.name] = drop

    def _unregister(self, drop: Drop) -> None:
        if drop.into:
            self._in_project.pop((drop.project, drop.name), None)
        else:
            self._at_root.pop(drop.name, None)

    # -- writes --------------------------------------------------------------------------------
    def check_writable(self, drop: Drop) -> None:
        if drop.state == IMPORTING:
            raise OSError(errno.EBUSY, f"{drop.path.lstrip('/')} is being imported; write again once "
                                       "`cas mount status` shows it imported")

    def opened(self, drop: Drop, real: str) -> None:
        """A file of the drop was opened for writing."""
        with self._cond:
            rel = os.path.relpath(real, drop.root)
            drop.writers[rel] += 1
            drop.note("+", rel)
            self._touch(drop)

    def closed(self, drop: Drop, real: str) -> None:
        with self._cond:
            rel = os.path.relpath(real, drop.root)
            drop.writers[rel] -= 1
            if drop.writers[rel] <= 0:
                del drop.writers[rel]
            if drop.writers:
                drop.note("-", rel)
            else:
                drop.forget_writes()  # nothing open: nothing a crash could leave torn
                if drop.urgent:
                    self._cond.notify_all()  # a barrier waits for this drop
            self._touch(drop)

    def renamed(self, drop: Drop, old: str, new: str) -> None:
        """A file moved within the drop (an open one keeps its writers under the new name)."""
        with self._cond:
            old_rel, new_rel = os.path.relpath(old, drop.root), os.path.relpath(new, drop.root)
            count = drop.writers.pop(old_rel, 0)
            if count:
                drop.writers[new_rel] += count
                drop.note("-", old_rel)
                drop.note("+", new_rel)
            self._touch(drop)

    def touched(self, drop: Drop) -> None:
        """Anything else changed in the drop (mkdir, unlink, chmod, ...)."""
        with self._cond:
            self._touch(drop)

    def _touch(self, drop: Drop) -> None:
        """A write: the settle time starts again. The thread, asleep until the old deadline,
        is woken only for a drop it does not wait for (idle, failed)."""
        drop.last_write = time.monotonic()
        if drop.state == FAILED:  # written into after a failure: try again once it settles
            drop.state, drop.reason = WAITING, ""
            (drop.dir / FAILED_FILE).unlink(missing_ok=True)
            drop.idle = True
        if drop.idle:
            drop.idle = False
            self._cond.notify_all()

    def remove(self, drop: Drop) -> None:
        """The drop's folder was removed (it is empty): forget the drop."""
        with self._cond:
            self._unregister(drop)
            drop.close()
            shutil.rmtree(drop.dir, ignore_errors=True)
            self._cond.notify_all()
        log.info("%s: removed before it was imported", drop.path.lstrip("/"))

    # -- importing -----------------------------------------------------------------------------
    def barrier(self, drop: Drop | None = None) -> list[Drop]:
        """Import now what is waiting (one drop, or all that have not failed) and return once
        it is imported or has failed; a drop with a file still open is left waiting. Returns
        the drops that failed."""
        with self._cond:
            targets = [drop] if drop is not None else [d for d in self.all() if d.state != FAILED]
            for d in targets:
                d.urgent = True
            self._cond.notify_all()
            while any(self._pending(d) for d in targets):
                self._cond.wait()
            return [d for d in targets if d.state == FAILED]

    def _pending(self, d: Drop) -> bool:
        return self._registered(d) and (d.state == IMPORTING or (d.state == WAITING and d.urgent and not d.writers
                                                  and not d.idle))

    def _ready(self, now: float) -> tuple[Drop | None, float | None]:
        """The next drop to import, or how long until one may be ready."""
        wait: float | None = None
        for d in self.all():
            if d.state != WAITING or d.idle:
                continue
            left = 0.0 if d.urgent or self._stopping else self.settle - (now - d.last_write)
            if d.writers:  # a file is open: look again in a while (closing one wakes nobody) ...
                if self._stopping or d.urgent:
                    continue  # ... unless a barrier asked (the last close wakes us) or at unmount
                left = max(left, self.settle, 0.05)
            elif left <= 0:
                return d, None
            wait = left if wait is None else min(wait, left)
        return None, wait

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    drop, wait = self._ready(time.monotonic())
                    if drop is not None or (self._stopping and wait is None):
                        break
                    self._cond.wait(wait)
                if drop is None:
                    return
                drop.state = IMPORTING
            self._import(drop)

    def _import(self, drop: Drop) -> None:
        files, size = drop.contents()
        if not files:
            with self._cond:
                drop.state, drop.idle, drop.urgent = WAITING, True, False
                self._cond.notify_all()
            return
        log.info("%s: importing %d files (%d bytes) into project %s", drop.path.lstrip("/"), files, size,
                 drop.project)
        try:
            summary = self.importer(self.store, Path(drop.root), drop.project)
        except Exception as e:  # noqa: BLE001 - every failure is reported, the drop stays
            reason = one_line(e)
            if not isinstance(e, (OSError, ValueError)) and type(e).__module__.split(".")[0] != "cas":
                log.exception("%s: import failed unexpectedly", drop.path.lstrip("/"))
            log.error("%s: not imported: %s (the folder stays as written; fix it and it is imported again, "
                      "or remove it)", drop.path.lstrip("/"), reason)
            (drop.dir / FAILED_FILE).write_text(reason)
            self.outcomes.refused(drop.path.lstrip("/"), f"{drop.path.lstrip('/')}: not imported: {reason}")
            with self._cond:
                drop.state, drop.reason, drop.urgent = FAILED, reason, False
                self._cond.notify_all()
            return
        log.info("%s: imported: %s", drop.path.lstrip("/"), summary)
        self.outcomes.finished(drop.path.lstrip("/"), drop.project, summary)
        with self._cond:
            self._unregister(drop)
            drop.close()
            self._cond.notify_all()
        shutil.rmtree(drop.dir, ignore_errors=True)
        self.on_change(drop.path)

    def status(self) -> list[dict[str, Any]]:
        out = []
        for d in sorted(self.all(), key=lambda d: d.path):
            files, size = d.contents()
            out.append({"path": d.path.lstrip("/"), "project": d.project, "into": d.into, "state": d.state,
                        "reason": d.reason, "files": files, "bytes": size, "open": sum(d.writers.values())})
        return out

    # -- start and stop ------------------------------------------------------------------------
    def _resume(self) -> None:
        """Take over the drops of mounts that stopped (a crash, a reboot) and import them again."""
        for directory in sorted(p for p in self.base.iterdir() if p.is_dir()):
            lock_fd = try_lock(directory)
            if lock_fd is None:
                continue  # a live mount of this store holds it
            try:
                info = json.loads((directory / INFO).read_text())
                drop = Drop(directory, info["project"], info["name"], bool(info["into"]), lock_fd)
            except (OSError, ValueError, KeyError, TypeError):
                os.close(lock_fd)
                shutil.rmtree(directory, ignore_errors=True)  # stopped while it was being made
                continue
            for rel in _unclosed(directory / WRITES):
                path = Path(drop.root, rel)
                if path.is_file():
                    path.unlink()
                    log.warning("%s/%s: removed, its copy never finished (the mount stopped while it was "
                                "being written)", drop.path.lstrip("/"), rel)
            drop.forget_writes()
            failed = directory / FAILED_FILE
            if failed.exists():
                drop.state, drop.reason = FAILED, failed.read_text()
            if self._at(drop.project, drop.name, drop.into) is not None:
                log.error("%s: a second drop at the same path is kept in %s", drop.path, directory)
                drop.close()
                continue
            self._register(drop)
            log.info("%s: resumed a drop a stopped mount left (%s)", drop.path.lstrip("/"), drop.state)

    def close(self) -> None:
        """Unmount: import what is waiting (a failed drop stays for the next mount), then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()
        for d in self.all():
            files, _ = d.contents()
            if not files and d.state != FAILED:
                self.remove(d)
            else:
                d.close()


def _unclosed(journal: Path) -> Iterator[str]:
    """Files opened for writing and never closed, by the journal of a stopped mount."""
    balance: Counter[str] = Counter()
    try:
        lines = journal.read_bytes().splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        try:
            sign, rel = json.loads(line)
        except ValueError:
            break  # a torn last line
        balance[rel] += 1 if sign == "+" else -1
    yield from (rel for rel, n in balance.items() if n > 0 and not rel.startswith(".."))
