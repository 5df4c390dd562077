"""The original names of an export, kept inside it.

Formats whose lists split on whitespace (VOC's ImageSets), whose layout has no nested
datasets (YOLO, COCO: one folder per dataset) or whose readers assume ASCII get names they
accept: `safe_name`, made unique over the export. The export keeps, in `cas_names.json`
at its root, each written image path with the dataset and item name it came from, and
every dataset (an empty one too); our importer reads it back (`Renamed`), so that
export -> import keeps every dataset and item name. Other readers ignore the file.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

from cas.errors import InvalidInput

from . import text
from .contract import dataset_names

FILE = "cas_names.json"
VERSION = 1
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """`name` in ASCII letters, digits, '.', '_' and '-': accents dropped (é -> e), every
    other run of characters one '_'. Never empty, never a dot file."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return _UNSAFE.sub("_", ascii_name).lstrip(".") or "_"


class Renames:
    """Written image path (relative to the export root, '/'-separated) -> (dataset, name)."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[str, str]] = {}
        self.datasets: list[str] = []

    def dataset(self, dataset: str) -> None:
        self.datasets.append(dataset)

    def item(self, written: str, dataset: str, name: str) -> None:
        self.items[written] = (dataset, name)

    def save(self, root: Path) -> None:
        doc = {"version": VERSION, "datasets": self.datasets,
               "items": {path: list(names) for path, names in self.items.items()}}
        (root / FILE).write_text(json.dumps(doc, ensure_ascii=False))


def load(root: Path) -> Renames | None:
    """The names kept in an export at `root`, or None; a damaged file is an error naming it."""
    path = root / FILE
    if not path.is_file():
        return None
    doc = text.read_json(path, FILE)
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), dict):
        raise InvalidInput(FILE, "expected an object with 'items'", "items")
    renames = Renames()
    datasets = doc.get("datasets", [])
    if not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets):
        raise InvalidInput(FILE, "expected a list of dataset names", "datasets")
    renames.datasets = datasets
    for written, names in doc["items"].items():
        if not (isinstance(names, list) and len(names) == 2 and all(isinstance(n, str) for n in names)):
            raise InvalidInput(FILE, "expected [dataset, item name]", f"items[{written!r}]")
        renames.items[written] = (names[0], names[1])
    return renames


class Renamed:
    """An import session whose items take the names an export kept: an item found in
    `renames` goes to its original dataset (named under `prefix`, the dataset the user asked
    for, by `contract.dataset_names`) with its original name; the others as read."""

    def __init__(self, session: Any, renames: Renames, root: Path, prefix: str | None) -> None:
        self.session = session
        self.renames = renames
        self.root = str(root)
        self.targets = dataset_names(prefix, [*renames.datasets, *(d for d, _name in renames.items.values())], "")
        for dataset in renames.datasets:
            session.add_dataset(self.targets[dataset])

    def add_dataset(self, dataset: str) -> None:
        """The datasets are the export's (an empty folder the format needs is not one)."""

    def add_item(self, dataset: str, name: str, media: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(media, (str, os.PathLike)):
            kept = self.renames.items.get(Path(os.path.relpath(media, self.root)).as_posix())
            if kept is not None:
                dataset, name = self.targets[kept[0]], kept[1]
        self.session.add_item(dataset, name, media, *args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.session, attr)
