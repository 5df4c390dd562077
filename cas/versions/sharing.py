"""Sharing projects through the store's S3 remote: blobs and trees in pack objects under
`prefix/packs/` (larger blobs, and the trees of remotes written before packs, as objects of
their own under `prefix/blobs/`), one small ref object per project at `prefix/refs/<project>`
holding its head version.

A ref moves only by S3 conditional writes: created with If-None-Match, moved with If-Match
on the ETag read before, and only forward (the remote head must be in the pushed
history). Two machines pushing at once: one wins, the other gets `Conflict` and runs
`cas pull` (which merges item by item) and pushes again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from cas.blobs.catalog import apply_deltas, record_link
from cas.errors import CasError, Conflict, NotFound
from cas.ids import BlobId
from cas.index import item_key
from cas.model.namespace import raw_item
from cas.records import BlobRecord, ItemRecord
from cas.units import counted
from cas.versions.snapshots import add_remote_sizes, learn_remote_blobs, materialize, reachable, set_head, snapshot
from cas.versions.transfer import TransferReport, push_blobs
from cas.versions.trees import Version, read_buckets, read_entries, read_project, read_version, version_items

if TYPE_CHECKING:
    from cas.store import Store

FETCH_THREADS = 8


def _s3(store: Store) -> Any:
    if store.s3 is None:
        raise CasError(f"the store at {store.root} has no S3 remote (cas init --s3 s3://bucket/prefix, or cas clone)")
    return store.s3


def remote_head(store: Store, project: str) -> tuple[BlobId | None, str | None]:
    """(version, ETag) of the project's ref on the remote; (None, None) if it has none."""
    return _s3(store).refs.read(project)


def _ancestors(store: Store, version: BlobId | None) -> set[BlobId]:
    seen: set[BlobId] = set()
    todo = [version] if version else []
    while todo:
        current: BlobId | None = todo.pop()
        while current is not None and current not in seen:
            seen.add(current)
            v = read_version(store, current)
            if v.merged is not None:
                todo.append(v.merged)
            current = v.parent
    return seen


def push(store: Store, project: str, message: str = "push", packs: bool = True) -> tuple[Version, TransferReport]:
    """Snapshot the project if it changed, upload every local blob its versions need (small
    ones and the trees in pack objects, unless not `packs`: see `push_blobs` and
    `snapshots.TreeWriter`), then move the remote ref forward (conditionally)."""
    _s3(store)
    version, _new = snapshot(store, project, message, packs=packs)
    needed = reachable(store)
    report = push_blobs(store, only=needed, packs=packs)
    if report.failed:
        raise CasError(f"{counted(report.failed, 'blob')} could not be uploaded ({report.errors[0]}); "
                       "the ref was not moved")
    remote, etag = remote_head(store, project)
    if remote == version.id:
        return version, report
    if remote is not None and remote not in _ancestors(store, version.id):
        raise Conflict(f"the remote {project} is at {remote.hex()[:12]}, which this store has not seen; "
                       f"run `cas pull {project}`, then push again")
    _s3(store).refs.write(project, version.id, etag)
    return version, report


def fetch_version(store: Store, version: BlobId, progress: Callable[[int], object] | None = None) -> Version:
    """Make a remote version usable here: its trees fetched (several at once) and every
    item blob recorded as remote, with its size from the item. No media bytes move; older
    versions' trees are adopted when first read (`trees.read_version`). `progress` is told
    of the items whose trees arrived."""
    v = read_version(store, version)
    datasets = read_project(store, v.tree).datasets
    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        trees = list(pool.map(lambda d: read_buckets(store, d.tree), datasets))
        for buckets in trees:
            sizes: dict[BlobId, int] = {}
            for entries in pool.map(lambda b: read_entries(store, b.tree), buckets):
                for _name, record, link in entries:
                    add_remote_sizes(sizes, ItemRecord.decode(record), link)
                if progress is not None:
                    progress(len(entries))
            learn_remote_blobs(store, sizes)
    return v


def clone(store: Store, project: str, progress: Callable[[int], object] | None = None) -> Version:
    """Make `project` here exactly the remote's head: trees fetched, index built, no media."""
    if store.ns.has_project(project):
        raise CasError(f"project {project} exists in this store; use `cas pull {project}`")
    remote, _etag = remote_head(store, project)
    if remote is None:
        raise NotFound(f"the remote {_s3(store).remote} has no project {project}")
    version = fetch_version(store, remote, progress)
    with store.lock(what="clone"), store.index.write() as txn:
        materialize(store, txn, project, version)
        set_head(store, txn, project, remote)
    return version


def pull(store: Store, project: str) -> tuple[str, Version]:
    """Bring the remote's head in: a fast-forward when this store has nothing new, else an
    item-level three-way merge (changes on one side win; the same item changed differently
    on both sides is a conflict, and nothing changes). Local changes are snapshotted first."""
    remote, _etag = remote_head(store, project)
    if remote is None:
        raise NotFound(f"the remote {_s3(store).remote} has no project {project}")
    if not store.ns.has_project(project):
        return "cloned", clone(store, project)
    local, _new = snapshot(store, project, "before pull")
    known = _ancestors(store, local.id)
    if remote in known:
        return "up to date", local
    theirs = fetch_version(store, remote)
    if local.id in _ancestors(store, remote):
        with store.lock(what="pull"), store.index.write() as txn:
            materialize(store, txn, project, theirs)
            set_head(store, txn, project, remote)
        return "fast-forward", theirs
    base = _common_ancestor(store, local.id, remote)
    merged = _merge(store, project, base, local, theirs)
    with store.lock(what="pull"), store.index.write() as txn:
        materialize(store, txn, project, theirs)  # then our side's changes on top
        set_head(store, txn, project, remote)
        _apply(store, txn, project, merged)
    version, _ = snapshot(store, project, f"merge {local.id.hex()[:12]} into {remote.hex()[:12]}", merged=local.id)
    return "merged", version


def _common_ancestor(store: Store, a: BlobId, b: BlobId) -> Version | None:
    ours = _ancestors(store, a)
    todo, seen = [b], set()
    while todo:  # breadth first from theirs: the first of ours met is the base
        current = todo.pop(0)
        if current in ours:
            return read_version(store, current)
        if current in seen:
            continue
        seen.add(current)
        v = read_version(store, current)
        todo += [p for p in (v.parent, v.merged) if p is not None]
    return None


def _items(store: Store, version: Version | None) -> dict[tuple[str, str], tuple[ItemRecord, bytes | None]]:
    if version is None:
        return {}
    return {(d, n): (rec, link) for d, n, rec, link in version_items(store, version)}


def _merge(store: Store, project: str, base: Version | None, ours: Version,
           theirs: Version) -> dict[tuple[str, str], tuple[ItemRecord, bytes | None] | None]:
    """Our changes against the base that theirs did not make too: key -> our item (None: removed)."""
    b, o, t = _items(store, base), _items(store, ours), _items(store, theirs)

    def same(x: Any, y: Any) -> bool:
        return (x is None and y is None) or (x is not None and y is not None and x[0].same_content(y[0]))

    changes: dict[tuple[str, str], Any] = {}
    conflicts = []
    for key in b.keys() | o.keys():
        mine, before, other = o.get(key), b.get(key), t.get(key)
        if same(mine, before):
            continue
        if same(other, before) or same(other, mine):
            changes[key] = mine
        else:
            conflicts.append(f"{key[0]}/{key[1]}")
    if conflicts:
        shown = ", ".join(sorted(conflicts)[:10]) + (" ..." if len(conflicts) > 10 else "")
        raise Conflict(f"{counted(len(conflicts), 'item')} of {project} changed differently here and on the remote: "
                       f"{shown}; nothing was changed (restore one side, then pull again)")
    return changes


def _apply(store: Store, txn: Any, project: str, changes: dict[tuple[str, str], Any]) -> None:
    ns = store.ns
    deltas: Counter[BlobId] = Counter()
    for (dataset, name), value in sorted(changes.items()):
        if value is None:
            key = item_key(project, dataset, name)
            raw = raw_item(store.index, txn, key)
            if raw is not None:
                for blob in ItemRecord.decode(raw).blobs():
                    deltas[blob] -= 1
                ns.delete_item(txn, key)
            continue
        rec, link = value
        ns.ensure_dataset(txn, project, dataset)
        if link is not None:
            record_link(store.index, txn, rec.media, BlobRecord.decode(link).with_refcount(0))
        ns.put_item(txn, project, dataset, name, rec, True, deltas)
    apply_deltas(store.index, txn, deltas)
