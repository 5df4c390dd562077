"""Good copies, on this machine, of blobs whose recorded bytes are missing or damaged.

A record can point at bytes that are not there while a good copy is: an entry of a pack at
another offset or in another pack (a pack rewrite cut by a crash between its copy and its
records leaves a whole unused pack of them), a loose file beside a record that says the
blob is packed or in S3 (a push's local copy, left behind), or a local pack entry of a blob
a push moved to S3. fsck re-points such a record at the copy. Each copy is verified against
the blob's id before it is offered.

With an S3 remote, the copies looked for last are there: an object of the blob's own, or an
entry of another pack object (a push redone after a crash, a gc's rewrite cut short, or another
store's push of the same blob), each read and verified.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING

from cas.blobs.backends.packs import entries
from cas.blobs.backends.places import traits
from cas.blobs.hashing import hash_bytes, hash_file
from cas.ids import BlobId
from cas.records import LOCAL, PACK, S3, S3PACK, BlobRecord

if TYPE_CHECKING:
    from cas.store import Store


def find_copies(store: Store, wanted: dict[BlobId, BlobRecord]) -> dict[BlobId, BlobRecord]:
    """For each blob of `wanted` (with its record) that has a verified copy elsewhere here,
    its record re-pointed at that copy (a loose file first, else the first pack entry)."""
    found: dict[BlobId, BlobRecord] = {}
    for blob_id, rec in wanted.items():
        if not _is(rec, here=True, packed=False) and (size := _loose_size(store, blob_id)) is not None:
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
                if not old.at_entry(PACK, name, offset) \
                        and hash_bytes(os.pread(f.fileno(), size, offset)) == blob_id:
                    found[blob_id] = replace(old, size=size, location=PACK, pack=name, offset=offset)
                    left.discard(blob_id)
    if left and store.s3 is not None:
        found.update(_s3_copies(store, {blob_id: wanted[blob_id] for blob_id in left}))
    return found


def _s3_copies(store: Store, wanted: dict[BlobId, BlobRecord]) -> dict[BlobId, BlobRecord]:
    """Verified copies in the S3 remote: an object of the blob's own, else an entry of a pack
    object other than the one recorded."""
    s3 = store.s3
    assert s3 is not None
    found: dict[BlobId, BlobRecord] = {}
    for blob_id, old in wanted.items():
        size = s3.size_of(blob_id) if not _is(old, here=False, packed=False) else None
        if size is not None and hash_bytes(s3.read_range(blob_id, 0, size)) == blob_id:
            found[blob_id] = replace(old, size=size, location=S3, pack=None, offset=0)
    left = set(wanted) - set(found)
    for name, _url, pack_size in s3.list_packs() if left else ():
        if name is None:
            continue
        for entry in s3.pack_entries(name, pack_size):
            rec = wanted.get(entry.blob_id)
            if entry.blob_id not in left or rec is None or rec.at_entry(S3PACK, name, entry.offset):
                continue
            data = s3.get_range(s3.pack_key(name), entry.offset, entry.size, f"pack {name}")
            if hash_bytes(data) == entry.blob_id:
                found[entry.blob_id] = replace(rec, size=entry.size, location=S3PACK, pack=name, offset=entry.offset)
                left.discard(entry.blob_id)
    return found


def _loose_size(store: Store, blob_id: BlobId) -> int | None:
    """The size of the blob's loose file if it holds the blob's bytes."""
    try:
        digest, size = hash_file(store.local.path(blob_id))
    except FileNotFoundError:
        return None
    return size if digest == blob_id else None


def _is(rec: BlobRecord, here: bool, packed: bool) -> bool:
    """Whether the record's bytes are the store's own, on this machine or not, packed or not."""
    kind = traits(rec.location)
    return kind is not None and kind.owns_bytes and kind.here == here and kind.packed == packed
