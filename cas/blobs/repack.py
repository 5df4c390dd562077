"""Pack maintenance: which packs are in use, and the rewriting of packs that blobs left.

Run with the store alone (gc; a push, when no import is running): an import appends to
packs whose entries are not recorded yet, which would look unused.

A pack is rewritten once its live entries fill less than REWRITE_BELOW of it: the copy
then costs at most the bytes it frees, so the bytes gc writes stay within the bytes it
reclaims, and no pack keeps more than about as much dead space as live data.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple

from cas.blobs import damage
from cas.blobs.backends.packs import HEADER, PackWriter
from cas.blobs.backends.places import traits
from cas.blobs.catalog import get_blob, put_blob, scan_blobs
from cas.blobs.hashing import hash_bytes
from cas.ids import BlobId
from cas.records import BlobRecord

if TYPE_CHECKING:
    from cas.store import Store

REWRITE_BELOW = 0.5  # live fraction under which a pack is rewritten


def packed_entries(store: Store, *, here: bool = True) -> tuple[dict[str, list[tuple[BlobId, int, int]]], set[str]]:
    """The packed blobs of every pack on this machine (`here`; else of every S3 pack object) that
    records point into, as pack name -> [(id, offset, size)], and the packs holding a blob
    fsck marked damaged (a rewrite would stop at it: left for fsck)."""
    out: dict[str, list[tuple[BlobId, int, int]]] = {}
    damaged = set()
    with store.index.read() as txn:
        marked = {bytes(blob_id) for blob_id, state in damage.marks(store.index, txn) if state == damage.DAMAGED}
        for key, raw in scan_blobs(store.index, txn):
            if BlobRecord.raw_is_packed(raw) and _here(rec := BlobRecord.decode(raw)) == here:
                assert rec.pack is not None
                out.setdefault(rec.pack, []).append((BlobId(key), rec.offset, rec.size))
                if key in marked:
                    damaged.add(rec.pack)
    return out, damaged


def _here(rec: BlobRecord) -> bool:
    kind = traits(rec.location)
    return kind is not None and kind.here


def unused_packs(store: Store) -> list[tuple[str, int]]:
    """(path, size) of every file under packs/ that no record points into: packs whose
    entries all went (or that a killed import left), and files that are not packs."""
    used = set(packed_entries(store)[0])
    return [(path, size) for name, path, size in store.local.list_packs() if name not in used]


class Rewrite(NamedTuple):
    name: str
    size: int
    live: list[tuple[BlobId, int, int]]  # (id, offset, size) of the entries to keep
    live_bytes: int


def compaction_plan(store: Store, dead: Collection[bytes] = ()) -> tuple[list[tuple[str, int]], list[Rewrite]]:
    """What compact_packs would do, with the blobs in `dead` counted as gone: the packs to
    remove, as (name, size), and the packs to rewrite (their live entries fill less than
    REWRITE_BELOW of them; not one that holds a blob marked damaged)."""
    packed, damaged = packed_entries(store)
    unused, rewrites = [], []
    for name, _path, size in store.local.list_packs():
        if name is None:
            continue
        live = [entry for entry in packed.get(name, ()) if bytes(entry[0]) not in dead]
        live_bytes = sum(HEADER.size + n for _id, _offset, n in live)
        if not live:
            unused.append((name, size))
        elif live_bytes < REWRITE_BELOW * size and name not in damaged:
            rewrites.append(Rewrite(name, size, live, live_bytes))
    return unused, rewrites


def compact_packs(store: Store, plan: tuple[list[tuple[str, int]], list[Rewrite]] | None = None) -> set[str]:
    """Remove the packs none of whose entries is used, and copy the live entries of every
    pack that is mostly dead into new packs (shared by all the rewrites), then drop the old
    ones (or do what `plan`, from `compaction_plan`, says); returns the names of the packs
    it planned to rewrite and did not. Needs the store alone: an import appends to packs
    not recorded yet.

    The copies are durable before the records move to them, and the old packs go only
    after: a crash leaves unused packs, which the next gc (or fsck --repair) removes. An
    entry whose bytes no longer match its id keeps its pack from being rewritten."""
    unused, rewrites = plan or compaction_plan(store)
    for name, _size in unused:
        os.unlink(store.local.pack_path(name))
    writer = PackWriter(store.local.pack_dir)
    moved: dict[str, dict[BlobId, tuple[str, int]]] = {}
    try:
        for rewrite in rewrites:
            copies = _live_copies(store, rewrite)
            if copies is not None:
                moved[rewrite.name] = {blob_id: writer.append(blob_id, data) for blob_id, data in copies}
    finally:
        writer.close()
    skipped = {rewrite.name for rewrite in rewrites} - set(moved)
    if not moved:
        return skipped
    store.local.sync()
    with store.index.write() as txn:
        for old_pack, entries in moved.items():
            for blob_id, (new_pack, new_offset) in entries.items():
                rec = get_blob(store.index, txn, blob_id)
                if rec is not None and rec.pack == old_pack:
                    put_blob(store.index, txn, blob_id, replace(rec, pack=new_pack, offset=new_offset))
    for name in moved:
        os.unlink(store.local.pack_path(name))
    return skipped


def _live_copies(store: Store, rewrite: Rewrite) -> list[tuple[BlobId, bytes]] | None:
    """The live entries of a pack to rewrite, read and verified (at most REWRITE_BELOW of a
    pack, in memory); None if one does not match its id."""
    copies = []
    with open(store.local.pack_path(rewrite.name), "rb") as f:
        for blob_id, offset, n in rewrite.live:
            data = os.pread(f.fileno(), n, offset)
            if hash_bytes(data) != blob_id:
                return None
            copies.append((blob_id, data))
    return copies
