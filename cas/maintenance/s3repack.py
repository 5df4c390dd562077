"""gc of S3 pack objects: the pack objects this store's records point into that its dead
entries left mostly empty are rewritten (their live entries copied into a new pack object),
and those with no live entry left are deleted, as gc does with local packs (cas.blobs.repack,
same REWRITE_BELOW).

A shared bucket holds packs that other stores read, so a pack object is touched only when
  - this store's records point into it (or pointed, see below): other stores' packs are theirs;
  - it is older than the store's `s3_grace_seconds`: a push elsewhere may be about to use it;
  - no entry of its index is a blob the remote's versions reach: another store that cloned or
    pulled them may have recorded it at this pack and offset.

Order: the new pack object is acknowledged by S3 before the records move to it, and an old
one is deleted only after. A crash in between leaves pack objects that no record points into
any more (a new one not recorded yet, an old one whose records moved or went): their names are
written first to `<store>/s3packs-pending`, so the next gc finds them and deletes them too.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from cas.blobs.backends.packs import HEADER
from cas.blobs.backends.s3packs import PACK_OBJECT_TARGET, BadPack, new_pack_name
from cas.blobs.catalog import get_blob, put_blob
from cas.blobs.hashing import hash_bytes
from cas.blobs.repack import REWRITE_BELOW, Rewrite, packed_entries
from cas.ids import BlobId
from cas.records import S3PACK

if TYPE_CHECKING:
    from cas.blobs.backends.s3 import S3Backend
    from cas.store import Store

PENDING = "s3packs-pending"  # in the store's root: names of pack objects that may have lost their records


@dataclass
class S3PackPlan:
    """What gc does with S3 pack objects, computed with the store alone."""

    unused: list[tuple[str, int]] = field(default_factory=list)  # (name, size): no live entry left
    rewrites: list[Rewrite] = field(default_factory=list)
    kept: int = 0  # due for compaction but left in place: too young, or the remote's versions reach an entry
    watched: set[str] = field(default_factory=set)  # pending names kept in place: still pending after this gc

    @property
    def names(self) -> set[str]:
        return {name for name, _size in self.unused} | {r.name for r in self.rewrites}


def is_young(store: Store, age: float) -> bool:
    return age < store.config.s3_grace_seconds


def plan(store: Store, dead: Collection[bytes], shared: Collection[bytes],
         listing: dict[str, tuple[int, float]]) -> S3PackPlan:
    """The compaction of the pack objects of `listing` (name -> (size, age), from
    `S3Backend.pack_ages`) with the blobs of `dead` counted as gone; `shared`: the blobs the
    remote's versions reach."""
    s3 = store.s3
    assert s3 is not None
    packed, damaged = packed_entries(store, here=False)
    pending = read_pending(store)
    out = S3PackPlan()
    for name in sorted(set(packed) | pending):
        if name not in listing:
            continue  # gone (a record pointing into it is fsck's)
        size, age = listing[name]
        live = [entry for entry in packed.get(name, ()) if bytes(entry[0]) not in dead]
        live_bytes = sum(HEADER.size + n for _id, _offset, n in live)
        if live and (live_bytes >= REWRITE_BELOW * size or name in damaged):
            continue
        if is_young(store, age) or _holds_any(s3, name, size, shared):
            out.kept += 1
            if not live and name in pending:
                out.watched.add(name)
        elif live:
            out.rewrites.append(Rewrite(name, size, live, live_bytes))
        else:
            out.unused.append((name, size))
    return out


def _holds_any(s3: S3Backend, name: str, size: int, shared: Collection[bytes]) -> bool:
    """Whether the pack's index lists a blob of `shared` (a pack whose index is unreadable
    counts as holding one: it is left for fsck to name)."""
    try:
        return any(bytes(e.blob_id) in shared for e in s3.pack_entries(name, size))
    except BadPack:
        return True


def note_pending(store: Store, s3_plan: S3PackPlan) -> None:
    """Before the records of a plan's packs change: its packs are pending, with those still watched."""
    write_pending(store, s3_plan.watched | s3_plan.names)


def compact(store: Store, s3_plan: S3PackPlan) -> set[str]:
    """Carry out a plan (after `note_pending`, and after the dead records went): delete the
    unused pack objects, rewrite the others into new ones (several rewrites share one new pack,
    up to PACK_OBJECT_TARGET); returns the packs it planned to rewrite and did not (a live entry
    whose bytes no longer match its id: fsck names it)."""
    s3 = store.s3
    assert s3 is not None
    pending = s3_plan.watched | s3_plan.names
    for name, _size in s3_plan.unused:
        s3.delete_pack(name)
        pending.discard(name)
    write_pending(store, pending)
    skipped: set[str] = set()
    group: list[Rewrite] = []
    for rewrite in s3_plan.rewrites:
        group.append(rewrite)
        if sum(r.live_bytes for r in group) >= PACK_OBJECT_TARGET:
            skipped |= _rewrite(store, s3, group, pending)
            group = []
    if group:
        skipped |= _rewrite(store, s3, group, pending)
    return skipped


def _rewrite(store: Store, s3: S3Backend, group: list[Rewrite], pending: set[str]) -> set[str]:
    """Copy the live entries of `group` into one new pack object, move their records to it,
    then delete the old objects; the rewrites skipped."""
    new = new_pack_name()
    pending.add(new)
    write_pending(store, pending)  # before the PUT: a crash after it leaves no unknown pack
    skipped: set[str] = set()
    entries = s3.upload_pack(new, _verified(s3, group, skipped), store.tmp_dir)
    where = {e.blob_id: e.offset for e in entries}
    done = [r for r in group if r.name not in skipped]
    with store.index.write() as txn:
        for rewrite in done:
            for blob_id, offset, _n in rewrite.live:
                rec = get_blob(store.index, txn, blob_id)
                if rec is not None and rec.at_entry(S3PACK, rewrite.name, offset):
                    put_blob(store.index, txn, blob_id, replace(rec, pack=new, offset=where[blob_id]))
    for rewrite in done:
        s3.delete_pack(rewrite.name)
        pending.discard(rewrite.name)
    pending.discard(new)
    write_pending(store, pending)
    return skipped


def _verified(s3: S3Backend, group: Iterable[Rewrite], skipped: set[str]) -> Iterator[tuple[BlobId, bytes]]:
    """The live entries of each rewrite, read (one ranged GET per pack, from its first live
    entry to the end of its last) and checked against their ids; a rewrite with one that does
    not match yields nothing and is added to `skipped`."""
    for rewrite in group:
        copies = [(blob_id, data) for blob_id, _offset, data in s3.read_entries(rewrite.name, rewrite.live)]
        if all(hash_bytes(copy) == blob_id for blob_id, copy in copies):
            yield from copies
        else:
            skipped.add(rewrite.name)


def read_pending(store: Store) -> set[str]:
    try:
        with open(store.root / PENDING) as f:
            return {line.strip() for line in f if line.strip()}
    except FileNotFoundError:
        return set()


def write_pending(store: Store, names: set[str]) -> None:
    """Replace the pending names, durably (none: the file goes)."""
    path = store.root / PENDING
    if not names:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(f".{PENDING}.tmp")
    with open(tmp, "w") as f:
        f.write("".join(f"{name}\n" for name in sorted(names)))
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    fd = os.open(store.root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
