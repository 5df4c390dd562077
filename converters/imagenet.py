"""Classification folders, ImageNet style: `<class>/<image>` (torchvision's ImageFolder,
Datumaro's `imagenet`), or `<split>/<class>/<image>` (Datumaro's
`imagenet_with_subset_dirs`). Each image gets its class as an image tag without value;
`no_label/` holds images without one (as Datumaro writes them). One dataset per split, else
one named after the folder.

Detection: split folders (train, val, test, ...) of class folders fit better than a plain
folder of images; class folders alone, or under folders of other names, fit less well (a
folder of photos sorted into folders is more often that than a classification set):
`--format imagenet` takes them.
"""

from __future__ import annotations

import functools
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from cas.errors import InvalidInput
from cas.ingest.session import ImportSession
from cas.model.media import is_image_name
from cas.store import Store

from . import geometry as geo
from . import renames
from .contract import Detection, dataset_names, fits, no
from .output import Progress, UniqueNames, no_progress, writes_folder
from .renames import Renames, safe_name
from .walk import files, subdirs

NO_LABEL = "no_label"
SPLIT_CLASS_FOLDERS = 0.15  # above a plain folder of images (0.1): the folders are classes here
SPLIT_NAMES = frozenset({"train", "val", "valid", "validation", "test", "trainval", "dev"})
CLASS_FOLDERS = 0.05  # below it: photos sorted into folders stay datasets unless --format imagenet
READS = ("tags", "media")
WRITES = ("tags", "media")
LAYOUTS = "classification folders: <class>/<image> or <split>/<class>/<image> (ImageNet, torchvision ImageFolder)"
LOOKS_FOR = "class folders of images"


Folders = list[tuple[str, list[os.DirEntry[str]]]]  # (class, its images)


def _class_folders(folder: Path, least: int = 2) -> Folders | None:
    """(class, images) of a folder of class folders, or None when it is not one: a file at
    the top, a folder below a class folder, a class folder with anything but images (an
    annotation file says another format), or fewer than `least` classes."""
    if any(not _hidden(e.name) for e in files(str(folder))):
        return None
    classes = []
    for entry in sorted(subdirs(str(folder)), key=lambda e: e.name):
        if any(True for _ in subdirs(entry.path)):
            return None
        found = [e for e in files(entry.path) if not _hidden(e.name)]
        if not found or not all(is_image_name(e.name) for e in found):
            return None
        classes.append((entry.name, sorted(found, key=lambda e: e.name)))
    return classes if len(classes) >= least else None


def _names_a_split(name: str) -> bool:
    """train, val, test_2024, train_night, ...: a word of the name is a split's."""
    return any(word in SPLIT_NAMES for word in re.split(r"[_\-. ]", name.lower()))


def _hidden(name: str) -> bool:
    return name.startswith(".") or name in ("Thumbs.db", "desktop.ini", "cas_names.json")


def _layout(src: Path) -> dict[str | None, Folders] | None:
    """split (None: no split folders) -> class folders. Split folders hold class folders
    (images two levels down); class folders hold images (one level down)."""
    if not src.is_dir() or any(not _hidden(e.name) for e in files(str(src))):
        return None
    flat = _class_folders(src)
    if flat is not None:
        return {None: flat}
    splits: dict[str | None, Folders] = {}
    for entry in sorted(subdirs(str(src)), key=lambda e: e.name):
        folders = _class_folders(Path(entry.path), least=1)
        if folders is None:
            return None
        splits[entry.name] = folders
    return splits or None


def detect(src: Path) -> Detection:
    layout = _layout(src)
    if layout is None:
        return no("no class folders of images (<class>/<image>, no image at the top)")
    classes = sorted({c for folders in layout.values() for c, _images in folders})
    shown = ", ".join(classes[:3]) + (", ..." if len(classes) > 3 else "")
    if None in layout:
        return fits(f"{len(classes)} folders of images only ({shown}): classes with --format imagenet",
                    CLASS_FOLDERS)
    splits = sorted(str(s) for s in layout)
    # photos/2024/<event>/ is folders of folders of photos, not splits of classes; an export of
    # ours (its names file at the top) says what its folders are
    if not all(_names_a_split(s) for s in splits) and not (src / renames.FILE).is_file():
        return fits(f"folders ({', '.join(splits[:3])}) of {len(classes)} folders of images: classes with "
                    "--format imagenet", CLASS_FOLDERS)
    return fits(f"split folders of {len(classes)} class folders ({shown})", SPLIT_CLASS_FOLDERS)


def count(src: Path) -> int:
    return sum(len(images) for folders in (_layout(src) or {}).values() for _c, images in folders)


def read(src: Path, session: ImportSession, dataset: str | None = None) -> dict[str, int]:
    layout = _layout(src)
    if layout is None:
        raise InvalidInput(str(src), f"no {LOOKS_FOR}")
    classes = sorted({c for folders in layout.values() for c, _images in folders} - {NO_LABEL})
    session.set_meta({"classes": [], "tags": [{"name": c, "value_type": "none", "color": geo.color(i)}
                                              for i, c in enumerate(classes)], "projectType": "images"}, str(src))
    counts: Counter[str] = Counter()
    targets = dataset_names(dataset, (split or "" for split in layout), src.name)
    for split, folders in layout.items():
        target = targets[split or ""]
        session.add_dataset(target)
        names = UniqueNames()
        for cls, images in folders:
            session.expect_items(len(images))
            tags = [] if cls == NO_LABEL else [{"name": cls, "value": None}]
            for entry in images:
                name = names(entry.name, f"{cls}_{entry.name}")
                ann = {"description": "", "tags": tags, "objects": []}
                session.add_item(target, name, entry.path, ann=functools.partial(_with_size, ann),
                                 label=f"{split or '.'}/{cls}/{entry.name}")
        if names.renamed:
            counts["images renamed (one name in two class folders)"] += names.renamed
    return dict(counts)


def _with_size(ann: dict[str, Any], width: int, height: int) -> dict[str, Any]:
    return {**ann, "size": {"height": height, "width": width}}


@writes_folder
def write(store: Store, project: str, dest: Path, progress: Progress = no_progress) -> dict[str, int]:
    """`<class>/<image>` for a project of one dataset, else `<dataset>/<class>/<image>`
    (nested datasets joined with '-'); the class is an item's first image tag without
    value, `no_label/` for none. cas_names.json keeps the names."""
    meta = store.ns.project(project).meta
    class_tags = {t["name"] for t in meta.get("tags", []) if t.get("value_type") == "none"}
    datasets = store.ns.datasets(project)
    counts: Counter[str] = Counter()
    kept, splits = Renames(), UniqueNames()
    for dataset in datasets:
        kept.dataset(dataset)
        split = splits(safe_name(dataset.replace("/", "-"))) if len(datasets) > 1 else ""
        taken: dict[str, UniqueNames] = {}
        for name, item in store.ns.items(project, dataset):
            ann = store.read_json(item.ann, f"{dataset}/ann/{name}.json")
            found = [t["name"] for t in ann.get("tags", []) if t.get("name") in class_tags and t.get("value") is None]
            if len(found) > 1:
                counts["images with several classes written under the first"] += 1
            cls = found[0].replace("/", "_") if found else NO_LABEL
            out_name = taken.setdefault(cls, UniqueNames())(name)
            rel = "/".join(p for p in (split, cls, out_name) if p)
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            note = geo.export_image(store, item, dest / rel)
            if note:
                counts[note] += 1
            kept.item(rel, dataset, name)
            counts["images"] += 1
            if ann.get("objects"):
                counts["objects skipped (class folders hold no shapes)"] += len(ann["objects"])
            progress(1)
    kept.save(dest)
    return {"objects": 0, **counts}
