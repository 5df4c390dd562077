"""Pack maintenance: which packs are in use, and the rewriting of packs that blobs left.

Run with the store alone (gc; a push, when no import is running): an import appends to
packs whose entries are not recorded yet, which would look unused.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple

from cas.blobs.backends.packs import HEADER, PackWriter
from cas.blobs.catalog import get_blob, put_blob, scan_blobs
from cas.blobs.hashing import hash_bytes
from cas.ids import BlobId
from cas.records import PACK, BlobRecord

if TYPE_CHECKING:
    from cas.store import Store


def _packed(store: Store) -> dict[str, list[tuple[BlobId, int, int]]]:
    """The packed blobs of every local pack in use: pack name -> [(id, offset, size)]."""
    out: dict[str, list[tuple[BlobId, int, int]]] = {}
    with store.index.read() as txn:
        for key, raw in scan_blobs(store.index, txn):
            if BlobRecord.raw_is_packed(raw) and (rec := BlobRecord.decode(raw)).location == PACK:
                assert rec.pack is not None
                out.setdefault(rec.pack, []).append((BlobId(key), rec.offset, rec.size))
    return out


def unused_packs(store: Store) -> list[tuple[str, int]]:
    """(path, size) of every file under packs/ that no record points into: packs whose
    entries all went (or that a killed import left), and files that are not packs."""
    used = set(_packed(store))
    return [(path, size) for name, path, size in store.local.list_packs() if name not in used]


class Rewrite(NamedTuple):
    name: str
    size: int
    live: list[tuple[BlobId, int, int]]  # (id, offset, size) of the entries to keep
    live_bytes: int


def compaction_plan(store: Store, dead: Collection[bytes] = ()) -> tuple[list[tuple[str, int]], list[Rewrite]]:
    """What compact_packs would do, with the blobs in `dead` counted as gone: the packs to
    remove, as (name, size), and the packs to rewrite (their live entries fill less than half)."""
    packed = _packed(store)
    unused, sizes = [], {}
    for name, _path, size in store.local.list_packs():
        if name is not None and not any(bytes(blob_id) not in dead for blob_id, _o, _n in packed.get(name, ())):
            unused.append((name, size))
        elif name is not None:
            sizes[name] = size
    rewrites = []
    for name, entries in packed.items():
        live = [entry for entry in entries if bytes(entry[0]) not in dead]
        live_bytes = sum(HEADER.size + n for _id, _offset, n in live)
        if name in sizes and live_bytes * 2 < sizes[name]:
            rewrites.append(Rewrite(name, sizes[name], live, live_bytes))
    return unused, rewrites


def compact_packs(store: Store, plan: tuple[list[tuple[str, int]], list[Rewrite]] | None = None) -> tuple[int, int]:
    """Rewrite every pack whose live entries fill less than half of it, then drop the old
    one, and remove the packs none of whose entries is used (or do what `plan`, from
    `compaction_plan`, says); returns (packs rewritten or removed, bytes freed). Needs the
    store alone: an import appends to packs not recorded yet.

    The copies are durable before the records move to them, and the old pack goes only
    after: a crash leaves an unused pack, which the next gc (or fsck --repair) removes."""
    unused, rewrites = plan or compaction_plan(store)
    for name, _size in unused:
        os.unlink(store.local.pack_path(name))
    rewritten, freed = len(unused), sum(size for _name, size in unused)
    for name, size, live, live_bytes in rewrites:
        writer = PackWriter(store.local.pack_dir)
        moved: dict[BlobId, tuple[str, int]] = {}
        try:
            with open(store.local.pack_path(name), "rb") as f:
                for blob_id, offset, n in live:
                    data = os.pread(f.fileno(), n, offset)
                    if hash_bytes(data) == blob_id:  # a damaged entry stays where fsck reports it
                        moved[blob_id] = writer.append(blob_id, data)
        finally:
            writer.close()
        if len(moved) < len(live):
            if writer.name:
                os.unlink(store.local.pack_path(writer.name))
            continue
        store.local.sync()
        with store.index.write() as txn:
            for blob_id, (new_pack, new_offset) in moved.items():
                rec = get_blob(store.index, txn, blob_id)
                if rec is not None and rec.pack == name:
                    put_blob(store.index, txn, blob_id, replace(rec, pack=new_pack, offset=new_offset))
        os.unlink(store.local.pack_path(name))
        freed += size - live_bytes
        rewritten += 1
    return rewritten, freed
