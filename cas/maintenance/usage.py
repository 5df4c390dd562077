"""Bytes used by projects and datasets (`cas du`): logical, unique, shared with other projects,
and stored here.

Definitions, for a set of items (a project, or a dataset with its nested datasets):
- logical bytes: the sizes of the blobs each item references (media, annotation, item meta),
  summed once per item: two items with the same image count it twice;
- unique bytes: the distinct blobs those items reference, each counted once;
- shared bytes: the distinct blobs that items of another project also reference;
- stored bytes: the distinct blobs whose bytes are on this machine (local files and packs);
  blobs in the S3 remote and link media are summed apart (s3_bytes, link_bytes).
A link imported without a HEAD and never read has no known size: its item is counted in
unknown_size_items (and its annotation in logical bytes), its blob in unknown_size_blobs,
and none of the byte sums includes it. Only items' references count: blobs that only a
version or a `cas put` holds belong to no row (`cas stats` counts them).

One read transaction; each item record is decoded once on raw fields; a blob record is read
when a blob first appears in a row. Memory: a set of 16-byte ids per row being summed, and
for the whole store a dict over its distinct blobs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from cas.blobs.backends.places import traits
from cas.blobs.catalog import raw_blob_getter
from cas.index import SEP, item_prefix, project_key
from cas.model.namespace import scan_items
from cas.records import BlobRecord, ItemRecord

if TYPE_CHECKING:
    from cas.store import Store


@dataclass(slots=True)
class UsageRow:
    """The usage of one project or dataset (with its nested datasets); see the module's docstring."""

    name: str
    items: int = 0
    logical_bytes: int = 0
    blobs: int = 0  # distinct blobs
    unique_bytes: int = 0
    shared_blobs: int = 0
    shared_bytes: int = 0
    stored_bytes: int = 0
    s3_bytes: int = 0
    link_bytes: int = 0
    unknown_size_items: int = 0
    unknown_size_blobs: int = 0


@dataclass
class Usage:
    """Rows (projects of the store, or datasets of a project or dataset, each with its nested
    datasets) and the total of the target itself (`target` None: the whole store)."""

    target: str | None
    rows: list[UsageRow]
    total: UsageRow

    def as_dict(self) -> dict[str, Any]:
        """The `--json` form (keys in the README, "Where the bytes go")."""
        return {"target": self.target, "rows": [asdict(r) for r in self.rows], "total": asdict(self.total)}


@dataclass(slots=True)
class _Tally:
    row: UsageRow
    seen: set[bytes] = field(default_factory=set)


def _facts(raw: bytes | None) -> tuple[int, str | None]:
    """(size, location) of an encoded blob record; a missing record (`cas fsck` reports it)
    counts as a blob of unknown size."""
    if raw is None:
        return -1, None
    size, _refs, location = BlobRecord.raw_summary(raw)
    return size, location


def _count(row: UsageRow, size: int, location: str | None, times: int = 1) -> None:
    """Add a distinct blob to a row's unique sums (`times` -1 takes it out again)."""
    row.blobs += times
    if size < 0:
        row.unknown_size_blobs += times
        return
    row.unique_bytes += size * times
    kind = traits(location)
    if kind is None:
        return
    if kind.here:
        row.stored_bytes += size * times
    elif kind.owns_bytes:  # in the S3 remote, one object or a pack's entry
        row.s3_bytes += size * times
    else:
        row.link_bytes += size * times


def _add_items(txn: Any, blob_record: Any, pairs: Iterable[tuple[bytes, bytes]], tallies: list[_Tally]) -> None:
    """Add items ((key, encoded record) pairs) to every tally of `tallies`, outermost first:
    each tally holds every item of the ones after it, so a blob an inner tally has seen, the
    outer ones have too."""
    inner_first = tallies[::-1]
    items = logical = unknown = 0
    for _key, raw in pairs:
        media, size, ann, ann_size, meta, meta_size, related = ItemRecord.raw_blobs(raw)
        media_facts = None
        if size < 0:  # a link imported without a HEAD: a read may have learned its size since
            media_facts = _facts(blob_record(media))
            size = media_facts[0]
            if size < 0:
                unknown += 1
                size = 0
        items += 1
        logical += size + ann_size + meta_size + sum(n for _blob, n in related)
        for blob in [media, ann, *([] if meta is None else [meta]), *(b for b, _n in related)]:
            facts = media_facts if blob is media else None
            for t in inner_first:
                if blob in t.seen:
                    break
                t.seen.add(blob)
                if facts is None:
                    facts = _facts(blob_record(blob))
                _count(t.row, *facts)
    for t in tallies:
        t.row.items += items
        t.row.logical_bytes += logical
        t.row.unknown_size_items += unknown


def _share(row: UsageRow, size: int) -> None:
    row.shared_blobs += 1
    row.shared_bytes += max(size, 0)


def _project_items(index: Any, txn: Any, project: str) -> Iterator[tuple[bytes, bytes]]:
    return scan_items(index, txn, project_key(project) + SEP)


def store_usage(store: Store) -> Usage:
    """One row per project; the total is the whole store, where shared means referenced by
    more than one project."""
    index = store.index
    total = UsageRow("total")
    rows: list[UsageRow] = []
    owner: dict[bytes, int] = {}  # blob -> the first project referencing it
    holders: dict[bytes, list[int]] = {}  # blob referenced by several projects -> those projects
    with index.read() as txn:
        blob_record = raw_blob_getter(index, txn)
        for p, name in enumerate(store.ns.projects(txn)):
            tally = _Tally(UsageRow(name))
            _add_items(txn, blob_record, _project_items(index, txn, tally.row.name), [tally])
            rows.append(tally.row)
            for blob in tally.seen:
                first = owner.setdefault(blob, p)
                if first != p:
                    holders.setdefault(blob, [first]).append(p)
        # The total's unique sums are the projects' less what several of them counted.
        for row in rows:
            for name in ("items", "logical_bytes", "unknown_size_items", "blobs", "unique_bytes",
                         "stored_bytes", "s3_bytes", "link_bytes", "unknown_size_blobs"):
                setattr(total, name, getattr(total, name) + getattr(row, name))
        for blob, projects in holders.items():
            size, location = _facts(blob_record(blob))
            _count(total, size, location, times=1 - len(projects))
            _share(total, size)
            for p in projects:
                _share(rows[p], size)
    return Usage(None, rows, total)


def dataset_usage(store: Store, project: str, dataset: str | None = None) -> Usage:
    """One row per dataset of `project`, or per dataset nested in `dataset`, each with its
    nested datasets; the total is the project (or `dataset`). Shared means referenced by an
    item of another project. The project and dataset must exist (see `cli.resolve`)."""
    index = store.index
    total = _Tally(UsageRow(project if dataset is None else f"{project}/{dataset}"))
    with index.read() as txn:
        blob_record = raw_blob_getter(index, txn)
        paths = [d for d in store.ns.datasets(project, txn)
                 if dataset is None or d == dataset or d.startswith(dataset + "/")]
        paths.sort(key=lambda d: d.split("/"))  # a tree's order: "a", "a/b", "a-c"
        tallies = {d: _Tally(UsageRow(d)) for d in paths if d != dataset}
        for d in paths:
            parts = d.split("/")
            within = [tallies[a] for a in ("/".join(parts[:i]) for i in range(1, len(parts) + 1)) if a in tallies]
            _add_items(txn, blob_record, scan_items(index, txn, item_prefix(project, d)), [total, *within])
        shared: set[bytes] = set()
        for other in store.ns.projects(txn):
            if other == project:
                continue
            for _key, raw in _project_items(index, txn, other):
                media, _size, ann, _ann_size, meta, _meta_size, related = ItemRecord.raw_blobs(raw)
                for blob in (media, ann, meta, *(b for b, _n in related)):
                    if blob in total.seen:
                        shared.add(blob)
        for blob in shared:
            size = _facts(blob_record(blob))[0]
            for t in (total, *tallies.values()):
                if blob in t.seen:
                    _share(t.row, size)
    return Usage(total.row.name, [t.row for t in tallies.values()], total.row)
