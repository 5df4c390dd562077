"""Good copies, on this machine, of blobs whose recorded bytes are missing or damaged.

A record can point at bytes that are not there while a good copy is: an entry of a pack at
another offset or in another pack (a pack rewrite cut by a crash between its copy and its
records leaves a whole unused pack of them), a loose file beside a record that says the
blob is packed or in S3 (a push's local copy, left behind), or a local pack entry of a blob
a push moved to S3. fsck re-points such a record at the copy. Each copy is verified against
the blob's id before it is offered.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING

from cas.blobs.backends.packs import entries
from cas.blobs.hashing import hash_bytes, hash_file
from cas.ids import BlobId
from cas.records import LOCAL, PACK, BlobRecord

if TYPE_CHECKING:
    from cas.store import Store


def find_copies(store: Store, wanted: dict[BlobId, BlobRecord]) -> dict[BlobId, BlobRecord]:
    """For each blob of `wanted` (with its record) that has a verified copy elsewhere here,
    its record re-pointed at that copy (a loose file first, else the first pack entry)."""
    found: dict[BlobId, BlobRecord] = {}
    for blob_id, rec in wanted.items():
        if rec.location != LOCAL and (size := _loose_size(store, blob_id)) is not None:
            found[blob_id] = replace(rec, size=size, location=LOCAL, pack=None, offset=0)
    left = set(wanted) - set(found)
    for name, path, _size in store.local.list_packs():
        if not left:
            break
        if name is None:
            continue
        with open(path, "rb") as f:
            for blob_id, offset, size in entries(path):
                if blob_id not in left:
                    continue
                old = wanted[blob_id]
                if (old.location, old.pack, old.offset) != (PACK, name, offset) \
                        and hash_bytes(os.pread(f.fileno(), size, offset)) == blob_id:
                    found[blob_id] = replace(old, size=size, location=PACK, pack=name, offset=offset)
                    left.discard(blob_id)
    return found


def _loose_size(store: Store, blob_id: BlobId) -> int | None:
    """The size of the blob's loose file if it holds the blob's bytes."""
    try:
        digest, size = hash_file(store.local.path(blob_id))
    except FileNotFoundError:
        return None
    return size if digest == blob_id else None


def copy_path(store: Store, rec: BlobRecord, blob_id: BlobId) -> str:
    """The file that holds a copy `find_copies` found."""
    return store.local.pack_path(rec.pack) if rec.location == PACK and rec.pack is not None \
        else store.local.path(blob_id)
