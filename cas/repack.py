"""Pack maintenance: which packs are in use, and the rewriting of packs that blobs left.

Run with the store alone (gc; a push, when no import is running): an import appends to
packs whose entries are not recorded yet, which would look unused.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING

from .backends.packs import HEADER, PackWriter
from .hashing import hash_bytes
from .ids import BlobId
from .records import BlobRecord
from .refs import get_blob

if TYPE_CHECKING:
    from .store import Store


def _packed(store: "Store") -> dict[str, list[tuple[BlobId, int, int]]]:
    """The packed blobs of every pack in use: pack name -> [(id, offset, size)]."""
    out: dict[str, list[tuple[BlobId, int, int]]] = {}
    with store.index.read() as txn:
        for key, raw in store.index.scan(txn, "blobs"):
            if BlobRecord.raw_is_packed(raw):
                rec = BlobRecord.decode(raw)
                assert rec.pack is not None
                out.setdefault(rec.pack, []).append((BlobId(key), rec.offset, rec.size))
    return out


def unused_packs(store: "Store") -> list[tuple[str, int]]:
    """(path, size) of every file under packs/ that no record points into: packs whose
    entries all went (or that a killed import left), and files that are not packs."""
    used = set(_packed(store))
    return [(path, size) for name, path, size in store.backend.list_packs() if name not in used]


def compact_packs(store: "Store") -> tuple[int, int]:
    """Rewrite every pack whose live entries fill less than half of it, then drop the old
    one, and remove the packs none of whose entries is used; returns (packs rewritten or
    removed, bytes freed). Needs the store alone: an import appends to packs not recorded yet.

    The copies are durable before the records move to them, and the old pack goes only
    after: a crash leaves an unused pack, which the next gc (or fsck --repair) removes."""
    rewritten = freed = 0
    packed = _packed(store)
    sizes = {}
    for name, path, size in store.backend.list_packs():
        if name is not None and name not in packed:
            os.unlink(path)
            rewritten += 1
            freed += size
        elif name is not None:
            sizes[name] = size
    for name, live in packed.items():
        size = sizes.get(name, 0)
        live_bytes = sum(HEADER.size + n for _id, _offset, n in live)
        if live_bytes * 2 >= size:
            continue
        writer = PackWriter(store.backend.pack_dir)
        moved: dict[BlobId, tuple[str, int]] = {}
        try:
            with open(store.backend.pack_path(name), "rb") as f:
                for blob_id, offset, n in live:
                    data = os.pread(f.fileno(), n, offset)
                    if hash_bytes(data) == blob_id:  # a damaged entry stays where fsck reports it
                        moved[blob_id] = writer.append(blob_id, data)
        finally:
            writer.close()
        if len(moved) < len(live):
            if writer.name:
                os.unlink(store.backend.pack_path(writer.name))
            continue
        store.backend.sync()
        with store.index.write() as txn:
            for blob_id, (new_pack, new_offset) in moved.items():
                rec = get_blob(store.index, txn, blob_id)
                if rec is not None and rec.pack == name:
                    txn.put(bytes(blob_id), replace(rec, pack=new_pack, offset=new_offset).encode(),
                            db=store.index.db["blobs"])
        os.unlink(store.backend.pack_path(name))
        freed += size - live_bytes
        rewritten += 1
    return rewritten, freed
