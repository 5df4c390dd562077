"""KITTI object detection, as the devkit's readme_object.txt defines it: `image_2/<id>.png`
and `label_2/<id>.txt` (under `training/` and `testing/`, or Datumaro's `<subset>/`), one
object per line in 15 space-separated fields, a 16th with a score:

    type truncated occluded alpha left top right bottom height width length x y z rotation_y [score]

Each object becomes a rectangle of class `type` (DontCare too: the regions a benchmark
ignores stay marked). truncated (0..1) and occluded (0 visible .. 3 unknown) become number
tags where they are not 0; the 3D box (alpha, dimensions, location, rotation_y), where it
is not the 2D-only default (-10, -1, -1000), becomes the string tag `kitti_3d`; a score the
tag `score`. The export writes them back, and other shapes as their boxes (counted).
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from pathlib import Path
from typing import Any

from cas.errors import InvalidInput
from cas.ingest.session import ImportSession
from cas.model.media import is_image_name
from cas.store import Store

from . import geometry as geo
from . import text
from .contract import Detection, fits, no
from .output import Progress, UniqueNames, no_progress, writes_folder
from .renames import Renames, safe_name
from .walk import files

IMAGES, LABELS = "image_2", "label_2"
NUMBER_TAGS = ("truncated", "occluded")
TAG_3D, SCORE = "kitti_3d", "score"
DEFAULT_3D = (-10.0, -1.0, -1.0, -1.0, -1000.0, -1000.0, -1000.0, -10.0)  # alpha, h w l, x y z, ry
READS = ("boxes", "tags")
WRITES = ("boxes", "tags")
LAYOUTS = "KITTI object detection: image_2/ and label_2/*.txt (15 fields, DontCare), under training/ or a subset"
LOOKS_FOR = "KITTI image_2/ with label_2/"
META_TAGS = [{"name": "truncated", "value_type": "any_number"}, {"name": "occluded", "value_type": "any_number"},
             {"name": TAG_3D, "value_type": "any_string"}, {"name": SCORE, "value_type": "any_number"}]


def detect(src: Path) -> Detection:
    if src.is_dir() and (src / IMAGES).is_dir() and (src / LABELS).is_dir():
        return fits(f"{IMAGES}/ and {LABELS}/")
    return no(f"no {IMAGES}/ beside {LABELS}/")


def _images(src: Path) -> list[os.DirEntry[str]]:
    return sorted((e for e in files(str(src / IMAGES)) if is_image_name(e.name)), key=lambda e: e.name)


def count(src: Path) -> int:
    return len(_images(src))


def parse_labels(path: Path, label: str) -> list[dict[str, Any]]:
    """The objects of one label_2 file; a bad line is an error naming it and its field."""
    objects = []
    for number, line in enumerate(text.lines(path, label), 1):
        fields = line.split()
        if len(fields) not in (15, 16):
            raise InvalidInput(label, f"expected 15 fields (16 with a score), got {len(fields)}", f"line {number}")
        try:
            values = [float(v) for v in fields[1:]]
        except ValueError:
            raise InvalidInput(label, "expected numbers after the type", f"line {number}") from None
        left, top, right, bottom = values[3:7]
        if right < left or bottom < top:
            raise InvalidInput(label, "expected left <= right and top <= bottom", f"line {number}")
        objects.append({"type": fields[0], "truncated": values[0], "occluded": values[1],
                        "box": (left, top, right, bottom), "3d": (values[2], *values[7:14]),
                        "score": values[14] if len(values) == 15 else None})
    return objects


def read(src: Path, session: ImportSession, dataset: str | None = None) -> dict[str, int]:
    parsed = []
    classes: set[str] = set()
    for entry in _images(src):
        stem = os.path.splitext(entry.name)[0]
        label_file = src / LABELS / f"{stem}.txt"
        objects: list[dict[str, Any]] = []
        if label_file.is_file():
            try:
                objects = parse_labels(label_file, f"{LABELS}/{stem}.txt")
            except InvalidInput as e:
                session.reject(e)
                continue
        classes.update(ob["type"] for ob in objects)
        parsed.append((entry, objects))
    session.set_meta({"classes": [geo.meta_class(c, "rectangle", i) for i, c in enumerate(sorted(classes))],
                      "tags": META_TAGS, "projectType": "images"}, LABELS)
    session.expect_items(len(parsed))
    target = dataset or src.name
    session.add_dataset(target)
    for entry, objects in parsed:
        session.add_item(target, entry.name, entry.path, ann=functools.partial(build_annotation, objects),
                         label=f"{IMAGES}/{entry.name}")
    return {}


def build_annotation(objects: list[dict[str, Any]], width: int, height: int) -> tuple[dict[str, Any], dict[str, int]]:
    notes: Counter[str] = Counter()
    clip = geo.Clipper(notes)
    out = []
    for ob in objects:
        tags: list[dict[str, Any]] = [{"name": k, "value": ob[k]} for k in NUMBER_TAGS if ob[k]]
        if tuple(ob["3d"]) != DEFAULT_3D:
            tags.append({"name": TAG_3D, "value": " ".join(f"{v:g}" for v in ob["3d"])})
        if ob["score"] is not None:
            tags.append({"name": SCORE, "value": ob["score"]})
        left, top, right, bottom = ob["box"]
        (x0, y0), (x1, y1) = clip.points([[left, top], [right, bottom]], width, height)
        out.append(geo.rectangle(ob["type"], x0, y0, x1, y1, tags))
    if any(ob["type"] == "DontCare" for ob in objects):
        notes["DontCare regions kept as class DontCare"] += sum(ob["type"] == "DontCare" for ob in objects)
    return {"description": "", "size": {"height": height, "width": width}, "tags": [], "objects": out}, dict(notes)


@writes_folder
def write(store: Store, project: str, dest: Path, progress: Progress = no_progress) -> dict[str, int]:
    """One `<dataset>/image_2/` and `label_2/` per dataset (nested ones joined with '-'), ids
    in ASCII, unique over the export; cas_names.json keeps the names."""
    counts: Counter[str] = Counter()
    folders, ids, kept = UniqueNames(), UniqueNames(by_stem=True), Renames()
    for dataset in store.ns.datasets(project):
        flat = folders(safe_name(dataset.replace("/", "-")))
        (dest / flat / IMAGES).mkdir(parents=True)
        (dest / flat / LABELS).mkdir()
        kept.dataset(dataset)
        for name, item in store.ns.items(project, dataset):
            out_name = ids(safe_name(name), f"{flat}-{safe_name(name)}")
            kept.item(f"{flat}/{IMAGES}/{out_name}", dataset, name)
            note = geo.export_image(store, item, dest / flat / IMAGES / out_name)
            if note:
                counts[note] += 1
            ann = store.read_json(item.ann, f"{dataset}/ann/{name}.json")
            lines = [_line(ob, counts) for ob in ann.get("objects", [])]
            lines = [ln for ln in lines if ln]
            (dest / flat / LABELS / f"{Path(out_name).stem}.txt").write_text("".join(f"{ln}\n" for ln in lines))
            counts["images"] += 1
            counts["objects"] += len(lines)
            progress(1)
    kept.save(dest)
    return dict(counts)


def _line(ob: dict[str, Any], counts: Counter[str]) -> str | None:
    box = geo.counted_box(ob, counts)
    if box is None:
        return None
    tags = {t.get("name"): t.get("value") for t in ob.get("tags", [])}
    values_3d: tuple[float, ...] = DEFAULT_3D
    if isinstance(tags.get(TAG_3D), str):
        try:
            parsed = tuple(float(v) for v in tags[TAG_3D].split())
            values_3d = parsed if len(parsed) == 8 else DEFAULT_3D
        except ValueError:
            pass
    truncated, occluded = (_number(tags[k]) if k in tags else 0.0 for k in NUMBER_TAGS)
    alpha, *rest = values_3d
    fields = [safe_name(ob["classTitle"]), f"{truncated:g}", f"{int(occluded)}", f"{alpha:g}",
              *(f"{v:.2f}" for v in box), *(f"{v:g}" for v in rest)]
    if isinstance(tags.get(SCORE), (int, float)):
        fields.append(f"{tags[SCORE]:g}")
    return " ".join(fields)


def _number(value: Any) -> float:
    """A tag's value as KITTI's number; a tag without value (occluded: none) as 1."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 1.0
