"""One dataset's items as a map-style dataset for training loops (PyTorch's DataLoader and
the like): `len(ds)`, and `ds[i]` is `(image, annotation dict)`, read through the store's
verified path (local blobs, S3 and links alike, remote ones through the cache).

It pickles to the store's root, the dataset's path and its item list, and opens the store
in each process on first use: a worker forked from a process that had it open opens its
own (LMDB handles never cross a fork), and a spawned worker opens it from the pickle.

`ds.__getitems__(indices)`, which DataLoader's workers call with each batch of indexes,
reads the batch's blobs at once (`Store.read_many`): a remote blob costs a round trip, and
a batch of neighbours in an S3 pack is read from the pack's runs (`cas.blobs.pack_runs`: 8 MiB
of it in one GET and one cache file, which every worker reads, the next runs read ahead).
"""

from __future__ import annotations

import operator
import os
import threading
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cas.config import NetOptions, settings
from cas.errors import InvalidInput, NotFound
from cas.model.annotation import loads
from cas.records import ItemRecord
from cas.store import Store
from cas.units import counted

DECODES = ("bytes", "pil", "numpy")
KEPT_MODES = ("RGB", "RGBA", "L")  # what decode="pil" returns as stored, with the deep modes


class _Packed:
    """Byte strings kept as one buffer and their end offsets. A worker process forked from
    the parent would copy the pages of a list of a million small objects as it touched
    their reference counts; two buffers it only reads stay shared (and pickle fast)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.ends = array("Q")

    def append(self, part: bytes) -> None:
        self.data += part
        self.ends.append(len(self.data))

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, i: int) -> bytes:
        return bytes(self.data[self.ends[i - 1] if i else 0:self.ends[i]])


class StoreDataset:
    """The items of one dataset, in name order, as they were when it was opened (see
    `open_dataset`)."""

    def __init__(self, root: Path, project: str, dataset: str, decode: str, net: NetOptions,
                 names: _Packed, records: _Packed) -> None:
        self.root = root
        self.project = project
        self.dataset = dataset
        self.decode = decode
        self.net = net
        self._names = names
        self._records = records
        self._opened: Store | None = None
        self._pid = 0  # the process that opened `_opened`
        self._lock = threading.Lock()

    @property
    def store(self) -> Store:
        """This process's store, opened on first use, and again after a fork."""
        if self._pid != os.getpid():  # never opened here: the parent's store is not ours to use
            self._opened, self._pid, self._lock = None, os.getpid(), threading.Lock()
        if self._opened is None:
            with self._lock:
                if self._opened is None:
                    self._opened = Store(self.root, net=self.net)
        return self._opened

    def __len__(self) -> int:
        return len(self._records)

    def _position(self, index: int) -> int:
        i = operator.index(index)
        n = len(self._records)
        if not -n <= i < n:
            raise IndexError(f"item index {index} out of range: {self.project}/{self.dataset} has {counted(n, 'item')}")
        return i % n

    def item_name(self, index: int) -> str:
        """The name of item `index` (negative counts from the end, as in a list)."""
        return self._names[self._position(index)].decode()

    @property
    def names(self) -> list[str]:
        """Every item's name, in index order."""
        return [self._names[i].decode() for i in range(len(self._names))]

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Any, dict[str, Any]]]:
        """`[ds[i] for i in indices]`, the blobs read several at once (DataLoader calls it
        with each batch of indexes)."""
        positions = [self._position(i) for i in indices]
        records = [ItemRecord.decode(self._records[i]) for i in positions]
        blobs = (data for _id, data in self.store.read_many([blob for rec in records for blob in (rec.media, rec.ann)]))
        where = f"{self.project}/{self.dataset}"
        out = []
        for i in positions:
            name = self._names[i].decode()
            media, ann = next(blobs), next(blobs)
            out.append((_decoded(media, self.decode, f"{where}/{name}"), loads(ann, f"{where}/ann/{name}.json")))
        return out

    def close(self) -> None:
        """Close the store if this process opened it (it reopens on the next read)."""
        if self._opened is not None and self._pid == os.getpid():
            self._opened.close()
        self._opened = None

    def __enter__(self) -> StoreDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "project": self.project, "dataset": self.dataset, "decode": self.decode,
                "net": self.net, "names": self._names, "records": self._records}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]  # unpickling re-runs __init__: it opens the store here

    def __repr__(self) -> str:
        return (f"StoreDataset({str(self.root)!r}, {self.project + '/' + self.dataset!r}, "
                f"{counted(len(self), 'item')}, decode={self.decode!r})")


def open_dataset(store: str | os.PathLike[str] | Store, path: str, decode: str = "bytes") -> StoreDataset:
    """The items of dataset `path` ("project/dataset"; nested: "project/train/night") of the
    store at `store` (a path, or an open Store: its root), as a map-style dataset whose
    `ds[i]` is `(image, annotation)`: the annotation is the item's Supervisely annotation as
    a dict, and the image is, by `decode`:

    - "bytes": the file's bytes as stored;
    - "pil": a loaded PIL image, turned upright as its EXIF orientation says (annotations
      are in those coordinates); RGB, RGBA, L and 16/32-bit modes as stored, any other
      mode (palette, CMYK, 1-bit, ...) converted to RGB, or RGBA when it has transparency;
    - "numpy": an HxWx3 uint8 RGB array of those pixels (grey replicated, alpha dropped:
      one shape for every item, to batch); an image deeper than 8 bits is an error.

    Items are those of that dataset only (not of its nested datasets), sorted by name, as
    they were at this call. Reads are verified against the blob ids and take no store lock;
    each process that reads opens the store (never creates one; see the module docstring).
    """
    if decode not in DECODES:
        raise InvalidInput("decode", f"unknown decode {decode!r} (one of: {', '.join(DECODES)})")
    project, _, dataset = path.strip("/").partition("/")
    if not project or not dataset:
        raise InvalidInput(path, "name a dataset as project/dataset")
    root, net = (store.root, store.net) if isinstance(store, Store) else (Path(store), settings().net)
    opened = Store(root, net=net)
    try:
        ns = opened.ns
        with opened.index.read() as txn:
            ns.project(project, txn)
            if not ns.has_dataset(project, dataset, txn):
                known = ", ".join(ns.datasets(project, txn)[:20]) or "none"
                raise NotFound(f"no dataset {project}/{dataset} (datasets of {project}: {known})")
            names, records = _Packed(), _Packed()
            for name, rec in ns.items(project, dataset, txn):
                names.append(name.encode())
                records.append(rec.encode())
        if opened.s3 is not None:
            opened.s3.client  # noqa: B018 - made here, forked workers make theirs in a fraction of the time
    except BaseException:
        opened.close()
        raise
    ds = StoreDataset(opened.root, project, dataset, decode, net, names, records)
    ds._opened, ds._pid = opened, os.getpid()
    return ds


def _decoded(data: bytes, decode: str, label: str) -> Any:
    if decode == "bytes":
        return data
    from cas.model.media import decode as load  # Pillow's plugins: only to decode
    from cas.model.media import open_for_decoding
    img = load(open_for_decoding(data, label), label, oriented=True)
    deep = img.mode == "F" or img.mode.startswith("I")
    if decode == "pil":
        if img.mode in KEPT_MODES or deep:
            return img
        transparent = img.mode in ("LA", "La", "PA", "RGBa") or "transparency" in img.info
        return img.convert("RGBA" if transparent else "RGB")
    if deep:
        raise InvalidInput(label, f"{img.mode} pixels are deeper than 8 bits: read it with decode='pil'")
    import numpy as np
    return np.array(img if img.mode == "RGB" else img.convert("RGB"))  # a copy: writable, for torch
