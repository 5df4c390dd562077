"""The LMDB index: one environment, named databases, key encoding. The only lmdb import."""

from __future__ import annotations

import functools
import os
import resource
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import lmdb

from cas.errors import CasError, SchemaError
from cas.records import pack, unpack

SCHEMA_VERSION = 1
SCHEMA_KEY = b"schema_version"
MAP_SIZE = 1 << 40  # virtual only: the data file grows as needed (see map_size)
MIN_MAP_SIZE = 64 << 20
SEP = b"\x00"  # names never contain NUL, so keys split unambiguously
# refs: project -> head version (snapshots); dirty: item keys written since the last snapshot;
# stat: (device, inode) of an imported file -> what it held (cas.ingest.statcache);
# damaged: blobs fsck found corrupt or missing, until healed (cas.blobs.damage)
DB_NAMES = ("meta", "blobs", "pins", "projects", "datasets", "items", "changes", "refs", "dirty", "stat", "damaged")
# What to do about a lost or unreadable index: the blobs, trees and refs are enough to build it again.
REBUILD_HINT = "`cas fsck --rebuild-index` builds a new one from the blobs (the old one is moved aside)"
CHANGES_KEPT = 50_000  # recent namespace changes kept for mounts to invalidate their caches


class _Shared:
    """One process's environment of an index path, shared by its Index objects."""

    __slots__ = ("env", "pid", "users", "live")

    def __init__(self, env: lmdb.Environment) -> None:
        self.env = env
        self.pid = _pid  # the process that opened it: LMDB handles never cross fork()
        self.users = 0
        self.live: list[None] = []  # one entry per open transaction (list append/pop are atomic)


_envs: dict[str, _Shared] = {}
_envs_lock = threading.Lock()
_pid = os.getpid()  # this process's (os.getpid() is a system call; a transaction checks it)


def _after_fork_in_child() -> None:
    global _envs_lock, _pid
    _envs_lock = threading.Lock()  # another thread may have held it at the fork
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork_in_child)


def project_key(project: str) -> bytes:
    return project.encode()


def dataset_key(project: str, dataset: str) -> bytes:
    return project.encode() + SEP + dataset.encode()


@functools.lru_cache(maxsize=1024)  # asked once per item written or read by name
def item_prefix(project: str, dataset: str) -> bytes:
    return dataset_key(project, dataset) + SEP


def item_key(project: str, dataset: str, name: str) -> bytes:
    return item_prefix(project, dataset) + name.encode()


def split_item_key(key: bytes) -> tuple[str, str, str]:
    project, dataset, name = key.split(SEP, 2)
    return project.decode(), dataset.decode(), name.decode()


def split_dataset_key(key: bytes) -> tuple[str, str]:
    project, dataset = key.split(SEP, 1)
    return project.decode(), dataset.decode()


def on_read_only_fs(path: str | os.PathLike[str]) -> bool:
    """Whether `path` lies on a file system mounted read-only."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def map_size(data_file: str) -> int:
    """The address space to map: MAP_SIZE, or under an address-space limit (`ulimit -v`, common on
    shared clusters) a quarter of it; never less than twice the index's data."""
    size = MAP_SIZE
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        size = min(size, soft // 4)
    try:
        size = max(size, 2 * os.path.getsize(data_file))
    except FileNotFoundError:
        pass
    return max(size, MIN_MAP_SIZE) // 4096 * 4096


class Index:
    """An LMDB environment under `<store>/index/` with the store's named databases.

    One environment per path per process (LMDB forbids opening it twice); it is
    shared and reference counted. An Index opened before a fork() is not used by the child
    (its transactions raise there): an Index made in the child opens an environment of its
    own (see `_inherited`).
    """

    def __init__(self, path: Path, create: bool = False) -> None:
        self.path = str(Path(path).resolve())
        existed = (Path(self.path) / "data.mdb").exists()
        if not existed and not create:
            raise SchemaError(f"no index at {self.path}")
        os.makedirs(self.path, exist_ok=True)
        # On a read-only file system nobody can write, so readers need no lock file either.
        self.read_only = on_read_only_fs(self.path)
        with _envs_lock:
            shared = _envs.get(self.path)
            if shared is not None and shared.pid != _pid:
                _inherited(self.path, shared)
                shared = None
            if shared is None:
                size = map_size(os.path.join(self.path, "data.mdb"))
                try:
                    env = lmdb.open(self.path, map_size=size, max_dbs=len(DB_NAMES) + 2, max_readers=512,
                                    readahead=False, readonly=self.read_only, lock=not self.read_only,
                                    max_spare_txns=0)  # a cached reader slot would cross a fork
                except lmdb.MemoryError:
                    raise CasError(f"cannot map the index at {self.path} ({size >> 20} MiB of address "
                                   "space): raise the address-space limit (ulimit -v)") from None
                except lmdb.Error as e:
                    raise SchemaError(f"the index at {self.path} is unreadable ({e}); {REBUILD_HINT}") from None
                shared = _envs[self.path] = _Shared(env)
            shared.users += 1
        self._shared = shared
        self.env = shared.env
        self._live = shared.live
        self._closed = False
        try:
            self.db = {}
            for name in DB_NAMES:
                try:
                    self.db[name] = self.env.open_db(name.encode())
                except lmdb.ReadonlyError:  # a table newer than the store, which nobody can write: unused
                    pass
                except lmdb.Error as e:
                    raise SchemaError(f"the index at {self.path} is unreadable ({e}); {REBUILD_HINT}") from None
            self._check_schema(create and not existed)
        except BaseException:
            self.close()
            raise

    def _check_schema(self, fresh: bool) -> None:
        with self.write() if fresh and not self.read_only else self.read() as txn:
            raw = txn.get(SCHEMA_KEY, db=self.db["meta"])
            if raw is None and fresh:
                txn.put(SCHEMA_KEY, str(SCHEMA_VERSION).encode(), db=self.db["meta"])
                return
        if raw is None:
            raise SchemaError(f"index at {self.path} has no schema version; refusing to use it: {REBUILD_HINT}")
        try:
            version = int(raw)
        except ValueError:
            raise SchemaError(f"index at {self.path} has an unreadable schema version {raw!r}") from None
        if version != SCHEMA_VERSION:
            newer = "newer" if version > SCHEMA_VERSION else "older"
            raise SchemaError(f"index at {self.path} has schema version {version} ({newer} than this "
                              f"cas, which reads version {SCHEMA_VERSION}); refusing to open it")

    def _enter(self) -> None:
        """Count a transaction about to begin (a fork must know whether one was open)."""
        if self._shared.pid != _pid:
            raise CasError(f"the index at {self.path} was opened by process {self._shared.pid}, before a fork: "
                           "open the store again in this process")
        self._live.append(None)

    @contextmanager
    def read(self) -> Iterator[lmdb.Transaction[bytes]]:
        self._enter()
        try:
            with self.env.begin(buffers=False) as txn:
                yield txn
        finally:
            self._live.pop()

    @contextmanager
    def write(self) -> Iterator[lmdb.Transaction[bytes]]:
        """One write transaction; committed on success, aborted on any exception."""
        if self.read_only:
            raise CasError(f"the store at {Path(self.path).parent} is on a read-only file system: "
                           "it can be read, not changed")
        self._enter()
        try:
            with self.env.begin(write=True) as txn:
                yield txn
        except lmdb.MapFullError:
            raise CasError(f"the index at {self.path} is full at its map size of "
                           f"{self.env.info()['map_size'] >> 20} MiB, set by the address-space limit "
                           "(ulimit -v): raise the limit and retry") from None
        finally:
            self._live.pop()

    def get(self, txn: lmdb.Transaction[bytes], dbname: str, key: bytes, default: bytes | None = None) -> bytes | None:
        """The value under `key` in a table, or `default`."""
        return txn.get(key, default, db=self.db[dbname])

    def put(self, txn: lmdb.Transaction[bytes], dbname: str, key: bytes, value: bytes, overwrite: bool = True) -> bool:
        """Store `value` under `key`; without `overwrite`, only if the key is new (whether it was)."""
        return txn.put(key, value, overwrite=overwrite, db=self.db[dbname])

    def getter(self, txn: lmdb.Transaction[bytes], dbname: str) -> Callable[..., bytes | None]:
        """`get` of one table bound to a transaction, for loops over many keys (key[, default])."""
        return functools.partial(txn.get, db=self.db[dbname])

    def delete(self, txn: lmdb.Transaction[bytes], dbname: str, key: bytes) -> bool:
        """Remove `key` from a table; whether it was there."""
        return txn.delete(key, db=self.db[dbname])

    def scan(self, txn: lmdb.Transaction[bytes], dbname: str, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Ordered (key, value) pairs whose key starts with prefix: one range scan."""
        cursor = txn.cursor(db=self.db[dbname])
        if not cursor.set_range(prefix):
            return
        for key, value in cursor:
            if not key.startswith(prefix):
                return
            yield key, value

    def values(self, txn: lmdb.Transaction[bytes], dbname: str) -> Iterator[bytes]:
        """Every value of a table in key order (the cursor iterates in C: for whole-table passes)."""
        return txn.cursor(db=self.db[dbname]).iternext(keys=False)

    def prune(self, txn: lmdb.Transaction[bytes], dbname: str, prefix: bytes,
              drop: Callable[[bytes, bytes], bool] | None = None) -> None:
        """Delete the pairs under `prefix` for which `drop(key, value)` holds (None: all), in
        one cursor pass (no list of keys is built)."""
        cursor = txn.cursor(db=self.db[dbname])
        if not cursor.set_range(prefix):
            return
        if drop is None:  # a snapshot's marks, by the million: no call per key
            if cursor.first() and cursor.key().startswith(prefix) and cursor.last() and \
                    cursor.key().startswith(prefix):  # the whole table: emptied without reading its leaves
                txn.drop(self.db[dbname], delete=False)
                return
            cursor.set_range(prefix)
            while cursor.key().startswith(prefix) and cursor.delete():
                pass
            return
        while (key := cursor.key()).startswith(prefix):
            moved = cursor.delete() if drop(key, cursor.value()) else cursor.next()
            if not moved:
                return

    def scan_range(self, txn: lmdb.Transaction[bytes], dbname: str, start: bytes, stop: bytes | None,
                   prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Ordered pairs with start <= key < stop (no upper bound if None), within prefix."""
        cursor = txn.cursor(db=self.db[dbname])
        if not cursor.set_range(max(start, prefix)):
            return
        for key, value in cursor:
            if not key.startswith(prefix) or (stop is not None and key >= stop):
                return
            yield key, value

    def log_change(self, txn: lmdb.Transaction[bytes], project: str, dataset: str | None = None,
                   item: str | None = None) -> None:
        """Note that a project (its meta), a dataset or an item changed or went away, so a
        mount can drop what the kernel caches for it. Only the most recent are kept."""
        db = self.db["changes"]
        cursor = txn.cursor(db=db)
        seq = int.from_bytes(cursor.key(), "big") + 1 if cursor.last() else 1
        txn.put(seq.to_bytes(8, "big"), pack([project, dataset, item]), db=db)
        if seq % 1000 == 0 and seq > CHANGES_KEPT:
            cursor.first()
            while cursor.key() and int.from_bytes(cursor.key(), "big") <= seq - CHANGES_KEPT:
                cursor.delete()

    def last_change(self) -> int:
        """Sequence number of the newest logged change (0: none)."""
        with self.read() as txn:
            cursor = txn.cursor(db=self.db["changes"])
            return int.from_bytes(cursor.key(), "big") if cursor.last() else 0

    def changes_since(self, seq: int) -> tuple[int, list[tuple[str, str | None, str | None]]]:
        """(last sequence number, changes after `seq`)."""
        out = []
        with self.read() as txn:
            cursor = txn.cursor(db=self.db["changes"])
            last = int.from_bytes(cursor.key(), "big") if cursor.last() else 0
            if last > seq and cursor.set_range((seq + 1).to_bytes(8, "big")):
                for _key, raw in cursor:
                    out.append(tuple(unpack(raw)))
        return last, out

    def count(self, txn: lmdb.Transaction[bytes], dbname: str) -> int:
        return txn.stat(self.db[dbname])["entries"]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._shared.pid != _pid:
            return  # the parent's environment, inherited across fork(): not this process's to close
        with _envs_lock:
            self._shared.users -= 1
            if self._shared.users <= 0:
                if _envs.get(self.path) is self._shared:
                    del _envs[self.path]
                self._shared.env.close()


def _inherited(path: str, shared: _Shared) -> None:
    """Leave behind an environment this process inherited across fork(): its handles are the
    parent's, so it is never used here. py-lmdb refuses to open the same files again while
    it is open, so it is closed, which gives up only this process's copy (its reader slots
    are none), unless a transaction was open at the fork: closing would end that one in the
    reader table the processes share, under the parent's feet."""
    if shared.live:
        raise CasError(f"the index at {path} had a transaction open when this process forked, so it cannot be "
                       "opened again here: fork (or start data-loader workers) while no thread uses the store")
    del _envs[path]
    shared.env.close()
