"""Cityscapes: `gtFine/<split>/<city>/<stem>_gtFine_polygons.json` (imgWidth, imgHeight,
objects with label and polygon) with `leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png`.
Each split/city is a dataset (`train/aachen`); polygons -> polygons of their label's
class. Objects flagged `deleted` are skipped and counted."""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path
from typing import Any

from cas.errors import InvalidInput
from cas.ingest.session import ImportSession

from . import geometry as geo
from .contract import Detection, dataset_names, fits, no
from .supervisely import read_json_document
from .walk import files, subdirs

SUFFIX = "_gtFine_polygons.json"


READS = ("polygons",)
LAYOUTS = "Cityscapes: gtFine/<split>/<city>/*_gtFine_polygons.json beside leftImg8bit/"


def _root(src: Path) -> Path:
    return src / "gtFine" if (src / "gtFine").is_dir() else src


def detect(src: Path) -> Detection:
    if src.is_dir() and (src / "gtFine").is_dir() and (src / "leftImg8bit").is_dir():
        return fits("gtFine/ and leftImg8bit/")
    return no("no gtFine/ beside leftImg8bit/")


def _documents(src: Path) -> list[Path]:
    return sorted(Path(e.path) for split in subdirs(str(_root(src))) for city in subdirs(split.path)
                  for e in files(city.path) if e.name.endswith(SUFFIX))


def count(src: Path) -> int:
    return len(_documents(src))


def _load(path: Path, label: str) -> dict[str, Any]:
    doc = read_json_document(path, label, "objects")
    for i, ob in enumerate(doc["objects"]):
        if not isinstance(ob, dict) or not isinstance(ob.get("label"), str):
            raise InvalidInput(label, "expected an object with a label", f"objects[{i}].label")
        poly = ob.get("polygon")
        if not geo.is_points(poly):
            raise InvalidInput(label, "expected a list of [x, y] points", f"objects[{i}].polygon")
    return doc


def read(src: Path, session: ImportSession, dataset: str | None = None) -> dict[str, int]:
    docs = []
    labels: set[str] = set()
    for path in _documents(src):
        label = str(path.relative_to(src))
        try:
            doc = _load(path, label)
        except InvalidInput as e:
            session.reject(e)
            continue
        labels.update(ob["label"] for ob in doc["objects"] if not ob.get("deleted"))
        docs.append((path, label, doc))
    session.set_meta({"classes": [geo.meta_class(name, "polygon", i) for i, name in enumerate(sorted(labels))],
                      "tags": [], "projectType": "images"}, "gtFine")
    counts: Counter[str] = Counter()
    targets = dataset_names(dataset, (f"{path.parent.parent.name}/{path.parent.name}" for path, _l, _d in docs),
                            src.name)
    for path, label, doc in docs:
        city, split = path.parent.name, path.parent.parent.name
        stem = path.name[:-len(SUFFIX)]
        image = src / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"
        if not image.is_file():
            session.reject(InvalidInput(label, f"no image leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png"))
            continue
        target = targets[f"{split}/{city}"]
        builder = functools.partial(build_annotation, label, doc)
        session.add_item(target, image.name, str(image), ann=builder, label=str(image.relative_to(src)))
    return dict(counts)


def build_annotation(label: str, doc: dict[str, Any], width: int, height: int) -> tuple[dict[str, Any], dict[str, int]]:
    if (doc.get("imgWidth"), doc.get("imgHeight")) not in ((width, height), (None, None)):
        raise InvalidInput(label, f"says {doc.get('imgWidth')}x{doc.get('imgHeight')} but the image is "
                                  f"{width}x{height}", "imgWidth")
    notes: Counter[str] = Counter()
    clip = geo.Clipper(notes)
    objects = []
    for ob in doc["objects"]:
        if ob.get("deleted"):
            notes["deleted objects skipped"] += 1
            continue
        if len(ob["polygon"]) < 3:
            notes["polygons with fewer than 3 points skipped"] += 1
            continue
        objects.append(geo.polygon(ob["label"], clip.points([[float(x), float(y)] for x, y in ob["polygon"]],
                                                           width, height)))
    return {"description": "", "size": {"height": height, "width": width}, "tags": [], "objects": objects}, dict(notes)
