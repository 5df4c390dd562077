"""The on-disk cache of remote blobs: `<store>/cache/ab/<hex>`, size-capped, evicted LRU.
Beside the blobs, runs of S3 pack objects: `<store>/cache/runs/<pack>.<slot>` holds the
pack's bytes from `slot` x `SLOT` on (see `cas.blobs.pack_runs`), one file for the many
small blobs in it.

An entry appears only by renaming a fill file (`cache/tmp/fill-<pid>-<n>`) whose content
was checked against its digest (a run: whole, as the GET returned it), so a crash at any
moment leaves either no entry or a complete one; fill files of dead processes are swept. Reads of an entry go through
`BlobReader`, which re-checks the digest on every full sequential read: an entry that
went bad on disk is dropped, never served twice. Recency is the entry's mtime, touched
on each open.
"""

from __future__ import annotations

import itertools
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cas.ids import BlobId
from cas.records import pack, unpack

if TYPE_CHECKING:
    from cas.index import Index

EVICT_TO = 0.9  # after an overflow, evict down to this share of the cap
_fill_names = itertools.count()  # per process: fill files are named fill-<pid>-<n>


COUNTERS_KEY = b"cache-counters"  # in the index's meta table: every process's hits and misses, summed


@dataclass
class CacheCounters:
    hits: int = 0
    misses: int = 0
    bytes_hit: int = 0
    bytes_fetched: int = 0

    def as_list(self) -> list[int]:
        return [self.hits, self.misses, self.bytes_hit, self.bytes_fetched]

    def add_to_totals(self, index: Index) -> None:
        """Add these counts to the totals kept in the index."""
        with index.write() as txn:
            totals = [a + b for a, b in zip(stored_totals(index, txn), self.as_list())]
            index.put(txn, "meta", COUNTERS_KEY, pack(totals))


def stored_totals(index: Index, txn: Any) -> list[int]:
    """[hits, misses, bytes hit, bytes fetched] of every process so far."""
    raw = index.get(txn, "meta", COUNTERS_KEY)
    return list(unpack(raw)) if raw is not None else [0, 0, 0, 0]


class BlobCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.dir = Path(root) / "cache"
        self.tmp_dir = self.dir / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.counters = CacheCounters()
        self._used: int | None = None  # bytes in entries; learned by one scan on first need
        self._lock = threading.Lock()
        self._sweep_dead_fills()

    def path(self, key: BlobId) -> str:
        h = key.hex()
        return f"{self.dir}/{h[:2]}/{h}"

    def run_path(self, pack: str, slot: int) -> str:
        return f"{self.dir}/runs/{pack}.{slot}"

    def open(self, key: BlobId, size: int) -> int | None:
        """A descriptor on a cached entry of `size` bytes (any size if negative), or None."""
        try:
            fd = os.open(self.path(key), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        actual = os.fstat(fd).st_size
        if size >= 0 and actual != size:
            os.close(fd)
            self.drop(key)
            return None
        _touch(fd)
        self.count_hit(actual)
        return fd

    def run_size(self, pack: str, slot: int) -> int | None:
        """The bytes the cached run `slot` of `pack` holds (a stat), or None if it is not cached."""
        try:
            return os.stat(self.run_path(pack, slot)).st_size
        except FileNotFoundError:
            return None

    def open_run(self, pack: str, slot: int, end: int) -> int | None:
        """A descriptor on the cached run `slot` of `pack` when it holds its first `end` bytes, or None."""
        try:
            fd = os.open(self.run_path(pack, slot), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        if os.fstat(fd).st_size < end:
            os.close(fd)
            return None
        _touch(fd)
        return fd

    def count_hit(self, size: int) -> None:
        with self._lock:
            self.counters.hits += 1
            self.counters.bytes_hit += size

    def holds(self, key: BlobId, size: int) -> bool:
        """Whether an entry of `size` bytes is cached (a stat; not counted as a hit)."""
        try:
            return os.stat(self.path(key)).st_size == size
        except FileNotFoundError:
            return False

    def note_miss(self, size: int) -> None:
        with self._lock:
            self.counters.misses += 1
            self.counters.bytes_fetched += max(size, 0)

    def new_fill(self) -> tuple[int, str]:
        path = f"{self.tmp_dir}/fill-{os.getpid()}-{next(_fill_names)}"
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444), path

    def commit(self, fill_path: str, key: BlobId, size: int) -> None:
        """Make a verified fill file the entry for `key`; evict if over the cap."""
        self._commit(fill_path, self.path(key), size)

    def put_run(self, pack: str, slot: int, data: bytes) -> None:
        """Cache bytes of pack object `pack` from `slot` x SLOT on (checked as each blob in them is read)."""
        self._commit(self._filled(data), self.run_path(pack, slot), len(data))

    def drop_run(self, pack: str, slot: int) -> None:
        discard(self.run_path(pack, slot))
        with self._lock:
            self._used = None

    def _commit(self, fill_path: str, dest: str, size: int) -> None:
        if size > self.max_bytes:
            discard(fill_path)
            return
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.replace(fill_path, dest)
        with self._lock:
            if self._used is not None:
                self._used += size
            over = self._used is None or self._used > self.max_bytes
        if over:
            self.evict(self.max_bytes)

    def put(self, key: BlobId, data: bytes) -> None:
        """Cache bytes whose digest the caller computed (e.g. trees it just wrote to S3)."""
        self.commit(self._filled(data), key, len(data))

    def _filled(self, data: bytes) -> str:
        """A new fill file holding `data`."""
        fd, path = self.new_fill()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        return path

    def drop(self, key: BlobId) -> None:
        discard(self.path(key))
        with self._lock:
            self._used = None

    def used(self) -> int:
        return sum(size for _mtime, size, _path in self._entries())

    def evict(self, cap: int) -> int:
        """Delete least recently used entries until the cache holds at most EVICT_TO x `cap`
        (when it holds more than `cap`). Returns the bytes it then holds."""
        entries = sorted(self._entries())
        used = sum(size for _m, size, _p in entries)
        if used > cap:
            for _mtime, size, path in entries:
                if used <= cap * EVICT_TO:
                    break
                discard(path)
                used -= size
        with self._lock:
            self._used = used
        return used

    def _entries(self) -> list[tuple[int, int, str]]:
        out = []
        for top in os.scandir(self.dir):
            if top.name == "tmp" or not top.is_dir():
                continue
            for entry in os.scandir(top.path):
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                out.append((st.st_mtime_ns, st.st_size, entry.path))
        return out

    def _sweep_dead_fills(self) -> None:
        for entry in os.scandir(self.tmp_dir):
            parts = entry.name.split("-")
            if len(parts) == 3 and parts[1].isdigit() and not _alive(int(parts[1])):
                discard(entry.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def discard(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _touch(fd: int) -> None:
    """Mark an open cache file as used now (recency for LRU)."""
    try:
        os.utime(fd)
    except OSError:
        pass
