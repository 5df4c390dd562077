"""Many blobs read at once, for loaders that walk a dataset (`Store.read_many`).

The ids are taken in windows; in each, the blobs of S3 pack objects that the cache does not
hold are grouped by pack and sorted by offset, and neighbours no more than `GAP` bytes apart
are read together: `WALK_ENTRIES` or more of them (a batch of consecutive items) through the
runs of their pack (`cas.blobs.pack_runs`: 8 MiB of the pack in one GET and one cache file,
the next runs read ahead), fewer in one ranged GET of their bytes (at most `RUN_MAX`), each
blob cached. A dataset pushed in order thus reads as a few large GETs, not one per item.
Every other blob is one `Store.read_bytes` (local, cached, S3 object, link); those on this
machine or in a cached run in the caller's thread, at their turn (a pread needs no thread).
The remote reads of a window, and of the next one, run in a thread pool; the bytes are
verified against each id and yielded in the order asked.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING

from cas.blobs.backends.places import traits
from cas.blobs.catalog import get_blob
from cas.blobs.hashing import hash_bytes
from cas.blobs.pack_runs import WALK_ENTRIES
from cas.errors import CorruptBlob, NotFound
from cas.ids import BlobId
from cas.records import BlobRecord

if TYPE_CHECKING:
    from cas.store import Store

WINDOW = 256  # ids planned together
GAP = 64 << 10  # unread bytes between two entries that one GET may span
RUN_MAX = 16 << 20  # bytes of one coalesced GET
WORKERS = 8


def read_many(store: Store, blob_ids: Iterable[BlobId]) -> Iterator[tuple[BlobId, bytes]]:
    ids = iter(blob_ids)
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="cas-read-many") as pool:
        planned: deque[list[tuple[BlobId, Future[dict[BlobId, bytes]] | None]]] = deque()
        while True:
            while len(planned) < 2:  # this window and the next in flight
                window = list(islice(ids, WINDOW))
                if not window:
                    break
                planned.append(_plan(store, pool, window))
            if not planned:
                return
            for blob_id, future in planned.popleft():
                yield blob_id, store.read_bytes(blob_id) if future is None else future.result()[blob_id]


def _plan(store: Store, pool: ThreadPoolExecutor,
          window: list[BlobId]) -> list[tuple[BlobId, Future[dict[BlobId, bytes]] | None]]:
    """Submit the reads of a window; each id with the future that yields its bytes (None for
    bytes on this machine: one pread, done in the caller's thread when its turn comes)."""
    with store.index.read() as txn:
        records = {b: get_blob(store.index, txn, b) for b in window}
    by_pack: dict[str, list[tuple[BlobId, BlobRecord]]] = {}
    futures: dict[BlobId, Future[dict[BlobId, bytes]] | None] = {}
    for blob_id, rec in records.items():
        kind = traits(rec.location) if rec is not None else None
        if rec is not None and kind is not None and kind.packed and not kind.here and store.s3 is not None \
                and rec.size > 0 and not store.cache.holds(blob_id, rec.size):
            assert rec.pack is not None
            by_pack.setdefault(rec.pack, []).append((blob_id, rec))
        elif kind is not None and kind.here:
            futures[blob_id] = None
        else:
            futures[blob_id] = pool.submit(lambda b: {b: store.read_bytes(b)}, blob_id)
    for name, members in by_pack.items():
        for run in _runs(sorted(members, key=lambda m: m[1].offset)):
            if len(run) < WALK_ENTRIES and all(store.pack_runs.cached(rec) for _b, rec in run):
                futures.update((blob_id, None) for blob_id, _rec in run)  # in a run in the cache: a pread
                continue
            walk = len(run) >= WALK_ENTRIES and store.pack_runs.usable
            future = pool.submit(store.pack_runs.read_walk if walk else partial(_read_run, store), name, run)
            for blob_id, _rec in run:
                futures[blob_id] = future
    return [(b, futures[b]) for b in window]


def _runs(members: list[tuple[BlobId, BlobRecord]]) -> Iterator[list[tuple[BlobId, BlobRecord]]]:
    """Entries sorted by offset, cut where the gap or the length of one GET would grow too large."""
    run: list[tuple[BlobId, BlobRecord]] = []
    for member in members:
        if run:
            first, last = run[0][1], run[-1][1]
            end = member[1].offset + member[1].size
            if member[1].offset - (last.offset + last.size) > GAP or end - first.offset > RUN_MAX:
                yield run
                run = []
        run.append(member)
    if run:
        yield run


def _read_run(store: Store, name: str, run: list[tuple[BlobId, BlobRecord]]) -> dict[BlobId, bytes]:
    """One ranged GET of a run of entries of pack `name`; each entry verified and cached."""
    assert store.s3 is not None
    out: dict[BlobId, bytes] = {}
    read = store.s3.read_entries(name, [(blob_id, rec.offset, rec.size) for blob_id, rec in run])
    for (blob_id, rec), (_id, _offset, part) in zip(run, read, strict=True):
        if len(part) != rec.size:
            raise NotFound(f"blob {blob_id}: {store.s3.pack_url(name)} ends before its bytes "
                           f"(offset {rec.offset}, {rec.size} bytes)")
        if hash_bytes(part) != blob_id:
            raise CorruptBlob(f"{store.s3.pack_url(name)} at offset {rec.offset}: content digest "
                              f"{hash_bytes(part)} does not match {blob_id}; not cached")
        store.cache.put(blob_id, part)
        store.cache.note_miss(rec.size)
        out[blob_id] = part
    return out
