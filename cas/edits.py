"""Single-item changes: replace an item's annotation or item meta, import one file.

Used by the FUSE view (a file written into the mount) and by API callers. Each
change writes its new blob durably first, then moves references in one
transaction, under the store's shared lock so `gc` cannot interleave.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .annotation import Meta, dumps, loads
from .errors import InvalidInput, NotFound
from .index import item_key
from .prepare import PrepareConfig, Preparer, item_record, record_new_parts
from .records import ItemRecord
from .refs import adjust_refs

if TYPE_CHECKING:
    from .store import Source, Store


def _replace_item(store: Store, project: str, dataset: str, name: str, **changes: Any) -> None:
    with store.index.write() as txn:
        old = store.ns.item(project, dataset, name, txn)
        new = replace(old, mtime=time.time_ns(), **changes)
        for blob in new.blobs():
            adjust_refs(store.index, txn, blob, +1)
        for blob in old.blobs():
            adjust_refs(store.index, txn, blob, -1)
        store.ns.write_item(txn, item_key(project, dataset, name), new.encode())
        store.index.log_change(txn, project, dataset, name)


def check_annotation(store: Store, project: str, ann: Any, label: str,
                     width: int | None = None, height: int | None = None) -> dict[str, Any]:
    """Parse (if bytes) and validate an annotation against the project meta; returns it."""
    if isinstance(ann, (bytes, bytearray)):
        ann = loads(bytes(ann), label)
    Meta(store.ns.project(project).meta, f"{project}/meta.json").check_annotation(ann, label, width, height)
    return ann


def set_annotation(store: Store, project: str, dataset: str, name: str, ann: Any, label: str) -> None:
    """Replace an item's annotation after validating it against the meta and the image size."""
    item = store.ns.item(project, dataset, name)
    ann = check_annotation(store, project, ann, label, item.width, item.height)
    data = dumps(ann)
    with store.lock(what="change an annotation"):
        _replace_item(store, project, dataset, name, ann=store.put(data, pin=False), ann_size=len(data))


def set_item_meta(store: Store, project: str, dataset: str, name: str, meta: Any, label: str) -> None:
    """Replace (or with None remove) an item's meta; it must be a JSON object."""
    if isinstance(meta, (bytes, bytearray)):
        meta = loads(bytes(meta), label)
    if meta is not None and not isinstance(meta, dict):
        raise InvalidInput(label, "expected a JSON object", "$")
    with store.lock(what="change item meta"):
        if meta is None:
            _replace_item(store, project, dataset, name, meta=None, meta_size=0)
            return
        data = dumps(meta)
        _replace_item(store, project, dataset, name, meta=store.put(data, pin=False), meta_size=len(data))


def import_item(store: Store, project: str, dataset: str, name: str, media: Source,
                ann: Any = None, item_meta: dict[str, Any] | None = None, label: str | None = None,
                ann_label: str | None = None) -> str:
    """Import (or replace) one item atomically, with one sync and one transaction; returns
    'added', 'skipped' or 'replaced'. When it exists and `ann` / `item_meta` are None, its
    annotation (which must still fit the image) and item meta are kept."""
    try:
        old: ItemRecord | None = store.ns.item(project, dataset, name)
    except NotFound:
        old = None
    if old is not None:
        if ann is None:
            ann = store.read_json(old.ann, f"{project}/{dataset}/ann/{name}.json")
            if (ann.get("size") or {}) == {"height": old.height, "width": old.width} and not ann.get("objects") \
                    and not ann.get("tags"):
                ann = None  # an empty annotation follows the new image's size
        if old.meta is not None and item_meta is None:
            item_meta = store.read_json(old.meta, f"{project}/{dataset}/meta/{name}.json")
    with store.lock(what="import"):
        config = PrepareConfig(str(store.root), store.tmp_dir, project, store.ns.project(project).meta,
                               check_conflicts=False, verify_dedup=False)
        with store.index.read() as txn:
            prepared = Preparer(config, store, pack=False).prepare(txn, dataset, name, media, ann, item_meta,
                                                       label or f"{dataset}/img/{name}",
                                                       ann_label or f"{dataset}/ann/{name}.json")
        new = [part for part in prepared.parts() if part.new]
        if new:
            store.write_backend.sync()  # bytes durable before the one transaction that records them
        with store.index.write() as txn:
            record_new_parts(store, txn, new)
            store.ns.ensure_dataset(txn, project, dataset)
            return store.ns.put_item(txn, project, dataset, name, item_record(prepared), overwrite=True)
