"""Runs of S3 pack objects, fetched whole into the cache for readers that walk a dataset.

A pack object (cas.blobs.backends.s3packs) is cut into slots of SLOT bytes at fixed offsets;
run `s` is its bytes from s x SLOT to (s + 1) x SLOT + REACH (a packed blob is at most
PACK_MAX bytes, so it lies whole in the run of the slot it starts in), fetched in one ranged
GET and cached as one file (`BlobCache.put_run`): a thousand small blobs cost one GET and
one cache file, not one of each per blob. The offsets being fixed, every reader asks for the
same runs: a lock file per run lets one process fetch it while the others (a DataLoader's
workers, the mount's threads) wait, then read it from the cache.

A run is fetched only for a reader that walks: `read_many` asked for WALK_ENTRIES or more
neighbours at once (a batch of consecutive items), or a reader whose previous blob of the
same pack ended at most WALK_GAP bytes before this one (`cp -r` through the mount). A lone
read elsewhere stays one GET of its own blob. A walker entering a slot has the runs after it
fetched in the background, up to READ_AHEAD bytes of the pack (a run being fetched is held
in memory: the read-ahead holds at most AHEAD runs at once per process). Blobs read from a
run are verified against their ids, and a run holding a bad one is dropped. A cache too
small for a few runs (`PackRuns.usable`) is read a blob at a time.

SLOT is 8 MiB: ranged GETs of 8-16 MB are what S3 serves at full speed per connection, and a
walker that stops early has fetched at most READ_AHEAD bytes past what it read.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from cas.blobs.backends.packs import PACK_MAX
from cas.blobs.cache import discard
from cas.blobs.hashing import hash_bytes
from cas.blobs.reader import BlobReader
from cas.errors import CasError, CorruptBlob
from cas.ids import BlobId
from cas.records import BlobRecord

if TYPE_CHECKING:
    from cas.store import Store

log = logging.getLogger("cas")

SLOT = 8 << 20
REACH = PACK_MAX  # read past a slot's end: where a blob starting in it may end
READ_AHEAD = 32 << 20  # bytes of the pack past a walker's slot fetched in the background
AHEAD = READ_AHEAD // SLOT
WALK_GAP = 64 << 10
WALK_ENTRIES = 4

Members = list[tuple[BlobId, BlobRecord]]


def slot_of(rec: BlobRecord) -> int:
    return rec.offset // SLOT


class PackRuns:
    """The runs of a store's S3 pack objects in its cache (see module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._ends: dict[str, int] = {}  # pack -> end of this process's last read in it
        self._ahead: set[tuple[str, int]] = set()
        self._pool: ThreadPoolExecutor | None = None

    @property
    def usable(self) -> bool:
        """Whether the cache holds enough runs for a walk (else it evicts them before their
        blobs are read): a small cache reads a blob at a time, as without runs."""
        return self.store.cache.max_bytes >= 4 * (AHEAD + 1) * (SLOT + REACH)

    def reader(self, blob_id: BlobId, rec: BlobRecord) -> BlobReader | None:
        """A reader of the blob from its run in the cache, fetched first if this read walks
        on from the previous one; None: read it alone."""
        assert rec.pack is not None
        with self._lock:
            last = self._ends.get(rec.pack)
            self._ends[rec.pack] = rec.offset + rec.size
        walks = last is not None and 0 <= rec.offset - last <= WALK_GAP and self.usable
        found = self._open(blob_id, rec)
        if walks:
            assert last is not None
            entered = found is None or (last - 1) // SLOT != slot_of(rec)
            if found is None:
                self.fetch(rec.pack, slot_of(rec))
                found = self._open(blob_id, rec)
            if entered:  # the walker is in a new slot: the next ones come in the background
                self._read_ahead(rec.pack, slot_of(rec))
        return found

    def cached(self, rec: BlobRecord) -> bool:
        """Whether the blob's run is in the cache (a stat)."""
        assert rec.pack is not None
        held = self.store.cache.run_size(rec.pack, slot_of(rec))
        return held is not None and held >= rec.offset - slot_of(rec) * SLOT + rec.size

    def read_walk(self, pack: str, members: Members) -> dict[BlobId, bytes]:
        """The verified bytes of neighbours in pack `pack`, asked for together: their runs
        fetched (unless cached), the next ones fetched in the background."""
        slots = sorted({slot_of(rec) for _b, rec in members})
        for slot in slots:
            self.fetch(pack, slot)
        self._read_ahead(pack, slots[-1])
        with self._lock:
            self._ends[pack] = max(rec.offset + rec.size for _b, rec in members)
        out: dict[BlobId, bytes] = {}
        fds: dict[int, int | None] = {}  # slot -> its run, opened once
        try:
            for blob_id, rec in members:
                slot = slot_of(rec)
                if slot not in fds:
                    fds[slot] = self.store.cache.open_run(pack, slot, 0)
                fd = fds[slot]
                data = os.pread(fd, rec.size, rec.offset - slot * SLOT) if fd is not None else b""
                if len(data) < rec.size:  # the run did not fit in the cache, or the blob reaches past it
                    out[blob_id] = self.store.read_bytes(blob_id)
                    continue
                if hash_bytes(data) != blob_id:
                    self.store.cache.drop_run(pack, slot)
                    raise CorruptBlob(f"pack {pack} at offset {rec.offset}: content digest {hash_bytes(data)} does "
                                      f"not match {blob_id}; its cached run is dropped")
                self.store.cache.count_hit(rec.size)
                out[blob_id] = data
        finally:
            for fd in fds.values():
                if fd is not None:
                    os.close(fd)
        return out

    def fetch(self, pack: str, slot: int) -> None:
        """Have run `slot` of `pack` in the cache: one GET, unless a reader (here or in another
        process) has it or is getting it."""
        cache, s3 = self.store.cache, self.store.s3
        assert s3 is not None
        if os.path.exists(cache.run_path(pack, slot)):
            return
        lock_path = f"{cache.tmp_dir}/run.{pack}.{slot}.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not os.path.exists(cache.run_path(pack, slot)):
                data = s3.get_range(s3.pack_key(pack), slot * SLOT, SLOT + REACH, f"pack {pack}")
                cache.put_run(pack, slot, data)  # short, or empty past the end: readers ahead stop there
                cache.note_miss(len(data))
            # Whoever waits on this (now unlinked) lock finds the run when it gets the lock; a
            # newcomer makes a new lock file and finds it too.
            discard(lock_path)
        finally:
            os.close(fd)

    def _open(self, blob_id: BlobId, rec: BlobRecord) -> BlobReader | None:
        assert rec.pack is not None
        pack, slot = rec.pack, slot_of(rec)
        base = rec.offset - slot * SLOT
        fd = self.store.cache.open_run(pack, slot, base + rec.size)
        if fd is None:
            return None
        self.store.cache.count_hit(rec.size)
        return BlobReader(fd, blob_id, rec.size, base=base, shared=True,
                          on_corrupt=lambda: self.store.cache.drop_run(pack, slot))

    def _read_ahead(self, pack: str, slot: int) -> None:
        """Fetch the AHEAD runs after run `slot` in the background, if the pack goes on past it."""
        cache = self.store.cache
        if (cache.run_size(pack, slot) or 0) < SLOT + REACH:
            return  # not cached, or the pack ends in it
        for ahead in range(slot + 1, slot + 1 + AHEAD):
            held = cache.run_size(pack, ahead)
            if held is not None:
                if held < SLOT + REACH:
                    return  # the pack ends in that run
                continue
            with self._lock:
                if (pack, ahead) in self._ahead:
                    continue
                self._ahead.add((pack, ahead))
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(AHEAD, thread_name_prefix="cas-run-ahead")
            self._pool.submit(self._fetch_ahead, pack, ahead)

    def _fetch_ahead(self, pack: str, slot: int) -> None:
        try:
            self.fetch(pack, slot)
        except CasError as e:  # the reader that gets there fetches it again, and reports what is wrong
            log.debug("read-ahead of run %d of pack %s: %s", slot, pack, e)
        finally:
            with self._lock:
                self._ahead.discard((pack, slot))

    def close(self) -> None:
        """Wait for the read-ahead in flight (at most AHEAD GETs)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
