"""LabelMe (5.x): an image plus a `.json` beside it with `shapes` (label, points,
shape_type), `imagePath`, `imageWidth`/`imageHeight`, and perhaps the image itself
embedded as base64 `imageData` (used when the image file is missing). One dataset per
folder. polygon -> polygon, rectangle -> rectangle, point -> point, line and linestrip
-> line, circle (center and a point on the rim) -> a 32-gon; `flags` set to true become
tags on the image (shapes' flags on the object).
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from cas.errors import InvalidInput, shown
from cas.ingest.session import ImportSession

from . import geometry as geo
from . import text
from .contract import Detection, dataset_names, fits, no
from .supervisely import read_json_document
from .walk import contained, tree_files

SHAPES = {"polygon": "polygon", "rectangle": "rectangle", "point": "point", "line": "line",
          "linestrip": "line", "circle": "polygon"}
CIRCLE_SIDES = 32


READS = ("polygons", "boxes", "points", "polylines", "tags")
LAYOUTS = "LabelMe: one JSON per image with shapes and imagePath"


def _documents(src: Path) -> list[Path]:
    return [p for p in tree_files(src, ".json") if _is_labelme(p)]


def _is_labelme(path: Path) -> bool:
    head = text.head(path)
    return b'"shapes"' in head and (b'"imagePath"' in head or b'"version"' in head)


def detect(src: Path) -> Detection:
    if src.is_dir() and not (src / "meta.json").exists():
        found = next((p for p in tree_files(src, ".json") if _is_labelme(p)), None)
        if found is not None:
            return fits(f"{found.relative_to(src)} has \"shapes\" and \"imagePath\"")
    return no('no JSON with "shapes" and "imagePath"')


def count(src: Path) -> int:
    return len(_documents(src))


def _load(path: Path, label: str) -> dict[str, Any]:
    doc = read_json_document(path, label, "shapes")
    for key, expected in (("flags", dict), ("imagePath", str), ("imageData", str)):
        if doc.get(key) is not None and not isinstance(doc[key], expected):
            raise InvalidInput(label, f"expected {'an object' if expected is dict else 'a string'} or null", key)
    for i, shape in enumerate(doc["shapes"]):
        where = f"shapes[{i}]"
        if not isinstance(shape, dict) or not isinstance(shape.get("label"), str) or not shape["label"]:
            raise InvalidInput(label, "expected a shape with a label", f"{where}.label")
        if shape.get("flags") is not None and not isinstance(shape["flags"], dict):
            raise InvalidInput(label, "expected an object or null", f"{where}.flags")
        kind = shape.get("shape_type") or "polygon"
        if not isinstance(kind, str) or kind not in SHAPES:
            raise InvalidInput(label, f"unknown shape_type {shown(kind)} (known: {', '.join(SHAPES)})",
                               f"{where}.shape_type")
        pts = shape.get("points")
        if not geo.is_points(pts):
            raise InvalidInput(label, "expected a list of [x, y] points", f"{where}.points")
        need = {"polygon": 3, "rectangle": 2, "point": 1, "line": 2, "linestrip": 2, "circle": 2}[kind]
        if len(pts) < need:
            raise InvalidInput(label, f"{kind} needs at least {need} points, got {len(pts)}", f"{where}.points")
    return doc


def _folder(path: Path, src: Path) -> str:
    """A document's folder under `src` ("" for `src` itself)."""
    rel = path.parent.relative_to(src).as_posix()
    return "" if rel == "." else rel


def read(src: Path, session: ImportSession, dataset: str | None = None) -> dict[str, int]:
    docs = []
    kinds: dict[str, set[str]] = defaultdict(set)
    flags: set[str] = set()
    for path in _documents(src):
        label = os.path.relpath(path, src)
        try:
            doc = _load(path, label)
        except InvalidInput as e:
            session.reject(e)
            continue
        for shape in doc["shapes"]:
            kinds[shape["label"]].add(SHAPES[shape.get("shape_type") or "polygon"])
            flags.update(k for k, v in (shape.get("flags") or {}).items() if v)
        flags.update(k for k, v in (doc.get("flags") or {}).items() if v)
        docs.append((path, label))  # parsed again below: embedded images are not all held at once
    classes = [geo.meta_class(name, shapes.pop() if len(shapes) == 1 else "any", i)
               for i, (name, shapes) in enumerate(sorted(kinds.items()))]
    session.set_meta({"classes": classes, "tags": [{"name": f, "value_type": "none"} for f in sorted(flags)],
                      "projectType": "images"}, "labelme")
    counts: Counter[str] = Counter()
    targets = dataset_names(dataset, (_folder(path, src) for path, _label in docs), src.name)
    for path, label in docs:
        doc = _load(path, label)
        target = targets[_folder(path, src)]
        try:
            image_path = contained(path.parent, doc.get("imagePath") or "", label, "imagePath")
        except InvalidInput as e:
            session.reject(e)
            continue
        media: Any
        if doc.get("imagePath") and image_path.is_file():
            media, name = str(image_path), image_path.name
        elif doc.get("imageData"):
            try:
                media = base64.b64decode(doc["imageData"], validate=True)
            except (binascii.Error, ValueError):
                session.reject(InvalidInput(label, "imageData is not base64", "imageData"))
                continue
            name = os.path.basename(str(doc.get("imagePath") or "")) or f"{path.stem}.png"
            counts["images taken from embedded imageData"] += 1
        else:
            session.reject(InvalidInput(label, f"image {shown(doc.get('imagePath'))} not found and no imageData",
                                        "imagePath"))
            continue
        builder = functools.partial(build_annotation, label, doc["shapes"], doc.get("flags") or {},
                                    doc.get("imageWidth"), doc.get("imageHeight"))
        session.add_item(target, name, media, ann=builder, label=os.path.relpath(image_path, src))
    return dict(counts)


def build_annotation(label: str, shapes: list[dict[str, Any]], flags: dict[str, Any], json_w: Any, json_h: Any,
                     width: int, height: int) -> tuple[dict[str, Any], dict[str, int]]:
    if json_w is not None and (json_w, json_h) != (width, height):
        raise InvalidInput(label, f"says {json_w}x{json_h} but the image is {width}x{height}", "imageWidth")
    notes: Counter[str] = Counter()
    clip = geo.Clipper(notes)
    objects = []
    for shape in shapes:
        kind = shape.get("shape_type") or "polygon"
        title = shape["label"]
        tags = [{"name": k, "value": None} for k, v in (shape.get("flags") or {}).items() if v]
        pts = clip.points([[float(x), float(y)] for x, y in shape["points"]], width, height)
        if kind == "rectangle":
            (x0, y0), (x1, y1) = pts[0], pts[1]
            objects.append(geo.rectangle(title, min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1), tags))
        elif kind == "polygon":
            objects.append(geo.polygon(title, pts, tags=tags))
        elif kind == "point":
            x, y = pts[0]
            objects.append(geo.point(title, x, y, tags=tags))
        elif kind in ("line", "linestrip"):
            objects.append(geo.line(title, pts, tags))
        else:  # circle: center, then a point on the rim
            (cx, cy), (px, py) = pts[0], pts[1]
            r = math.hypot(px - cx, py - cy)
            angles = (2 * math.pi * k / CIRCLE_SIDES for k in range(CIRCLE_SIDES))
            ring = [[cx + r * math.cos(a), cy + r * math.sin(a)] for a in angles]
            objects.append(geo.polygon(title, clip.points(ring, width, height), tags=tags))
            notes["circles written as 32-gons"] += 1
    image_tags = [{"name": k, "value": None} for k, v in flags.items() if v]
    return {"description": "", "size": {"height": height, "width": width}, "tags": image_tags,
            "objects": objects}, dict(notes)
