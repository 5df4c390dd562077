"""YOLO, Ultralytics layout: `data.yaml` (`names`, split folders, `kpt_shape` for pose)
with `images/<split>/` and `labels/<split>/*.txt`, or an older layout with `classes.txt`
(or `obj.names`) and labels beside the images. One dataset per split.

Label lines are normalized to the image: `c cx cy w h` (box -> rectangle), `c x1 y1 x2 y2
...` (polygon), and with `kpt_shape: [K, 2|3]` in data.yaml `c cx cy w h` plus K points
(pose -> rectangle plus a graph of class `<name>_keypoints`). Coordinates are scaled by
the real image size in the import's workers, clipped, and counted when clipped.
"""

from __future__ import annotations

import functools
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml

from cas.errors import AlreadyExists, InvalidInput
from cas.media import is_image_name
from cas.session import ImportSession
from cas.store import Store

from . import geometry as geo
from . import text
from .walk import contained, files, tree_files

CLASS_FILES = ("classes.txt", "obj.names")


def detect(src: Path) -> bool:
    return src.is_dir() and (_yaml_file(src) is not None or (
        any((src / f).is_file() for f in CLASS_FILES) and not (src / "masks").is_dir()
        and any(p.name not in CLASS_FILES for p in tree_files(src, ".txt"))))


def _yaml_file(src: Path) -> Path | None:
    for name in ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml"):
        if (src / name).is_file():
            return src / name
    return None


class Layout:
    """Class names, keypoint shape and (split, images folder) pairs of a YOLO dataset."""

    def __init__(self, src: Path) -> None:
        self.src = src
        self.kpt: tuple[int, int] | None = None
        yml = _yaml_file(src)
        if yml is not None:
            self._from_yaml(yml)
        else:
            names_file = next(src / f for f in CLASS_FILES if (src / f).is_file())
            self.names = text.lines(names_file, names_file.name)
            self.splits = [(p.name, p) for p in sorted(src.iterdir()) if p.is_dir() and _has_images(p)] or \
                [(src.name, src)]

    def _from_yaml(self, yml: Path) -> None:
        data = text.read_yaml(yml)
        if not isinstance(data, dict):
            raise InvalidInput(yml.name, "expected a mapping", "$")
        names = data.get("names")
        if isinstance(names, dict):
            try:
                self.names = [str(names[k]) for k in sorted(names, key=int)]
            except (TypeError, ValueError):
                raise InvalidInput(yml.name, "expected integer class ids", "names") from None
        elif isinstance(names, list):
            self.names = [str(n) for n in names]
        else:
            raise InvalidInput(yml.name, "expected a list or a mapping of class names", "names")
        kpt = data.get("kpt_shape")
        if kpt is not None:
            if not (isinstance(kpt, list) and len(kpt) == 2 and kpt[1] in (2, 3) and isinstance(kpt[0], int)):
                raise InvalidInput(yml.name, "expected [keypoints, 2 or 3]", "kpt_shape")
            self.kpt = (kpt[0], kpt[1])
        path = data.get("path")
        if path is not None and not isinstance(path, str):
            raise InvalidInput(yml.name, "expected a folder", "path")
        base = contained(self.src, path or ".", yml.name, "path")
        if not base.is_dir():
            base = self.src
        self.splits = []
        for split in ("train", "val", "test"):
            rel = data.get(split)
            if not isinstance(rel, str):
                continue
            for top in (base, self.src):
                if contained(top, rel, yml.name, split).is_dir():
                    self.splits.append((split, top / rel))
                    break
        if not self.splits:
            raise InvalidInput(yml.name, "no train/val/test image folder found", "train")

    def label_path(self, image: Path) -> Path:
        """Ultralytics: the last `images` path part replaced by `labels`; else beside the image."""
        parts = list(image.parts)
        if "images" in parts:
            i = len(parts) - 1 - parts[::-1].index("images")
            parts[i] = "labels"
            candidate = Path(*parts).with_suffix(".txt")
            if candidate.exists() or not image.with_suffix(".txt").exists():
                return candidate
        return image.with_suffix(".txt")


def _has_images(folder: Path) -> bool:
    return any(is_image_name(e.name) for e in files(str(folder)))


def _images(folder: Path) -> list[Path]:
    return [p for p in tree_files(folder) if is_image_name(p.name)]


def count(src: Path) -> int:
    return sum(len(_images(folder)) for _split, folder in Layout(src).splits)


def _read_label(path: Path, src: Path) -> str:
    try:
        return text.read_text(path, os.path.relpath(path, src))
    except FileNotFoundError:
        return ""  # an image without a label file has no objects


def _kind(tokens: int, kpt: tuple[int, int] | None) -> str:
    if kpt is not None:
        return "pose"
    return "rectangle" if tokens == 5 else "polygon"


def read(src: Path, session: ImportSession, dataset: str | None = None) -> dict[str, int]:
    layout = Layout(src)
    names = layout.names
    kinds: dict[int, set[str]] = defaultdict(set)
    entries = []
    for split, folder in layout.splits:
        for image in _images(folder):
            label = layout.label_path(image)
            try:
                content = _read_label(label, src)
            except InvalidInput as e:
                session.reject(e)
                continue
            for line in content.splitlines():
                tokens = line.split()
                if tokens and tokens[0].isdigit() and len(tokens[0]) < 10:
                    kinds[int(tokens[0])].add(_kind(len(tokens), layout.kpt))
            entries.append((split, folder, image, label))  # the label is read again below
    classes: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        shapes = {"rectangle" if k == "pose" else k for k in kinds.get(i, {"rectangle"})}
        classes.append(geo.meta_class(name, shapes.pop() if len(shapes) == 1 else "any", len(classes)))
    if layout.kpt is not None:
        nodes = {str(k): {"label": str(k), "loc": [0, 0], "color": geo.color(k)} for k in range(layout.kpt[0])}
        for name in names:
            classes.append(geo.meta_class(f"{name}_keypoints", "graph", len(classes), {"nodes": nodes, "edges": []}))
    session.set_meta({"classes": classes, "tags": [], "projectType": "images"}, "data.yaml")
    for split, folder, image, label in entries:
        content = _read_label(label, src)
        target = f"{dataset}/{split}" if dataset and len(layout.splits) > 1 else dataset or split
        rel_label = os.path.relpath(label, src)
        builder = functools.partial(build_annotation, rel_label, content, tuple(names), layout.kpt)
        name = str(image.relative_to(folder)).replace(os.sep, "_")
        session.add_item(target, name, str(image), ann=builder, label=os.path.relpath(image, src))
    return {}


def build_annotation(label: str, text: str, names: tuple[str, ...], kpt: tuple[int, int] | None,
                     width: int, height: int) -> tuple[dict[str, Any], dict[str, int]]:
    """One image's annotation from its label file's text (run by an import worker)."""
    notes: Counter[str] = Counter()
    clip = geo.Clipper(notes)
    objects = []
    for number, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"line {number}"
        try:
            cls = int(tokens[0])
            values = [float(t) for t in tokens[1:]]
        except ValueError:
            raise InvalidInput(label, f"expected a class id and numbers, got {line.strip()[:80]!r}", where) from None
        if not 0 <= cls < len(names):
            raise InvalidInput(label, f"class id {cls} is not in the {len(names)} names of data.yaml", where)
        name = names[cls]
        if kpt is not None:
            n, dims = kpt
            if len(values) != 4 + n * dims:
                raise InvalidInput(label, f"pose line needs 4 + {n} x {dims} numbers, got {len(values)}", where)
            objects.append(_box(name, values[:4], width, height, clip))
            nodes = {}
            for k in range(n):
                x, y = values[4 + k * dims], values[5 + k * dims]
                visible = values[6 + k * dims] if dims == 3 else 1.0
                if visible > 0 and (x, y) != (0.0, 0.0):
                    nodes[str(k)] = [x * width, y * height]
            if nodes:
                pts = clip.points(list(nodes.values()), width, height)
                objects.append(geo.graph(f"{name}_keypoints", dict(zip(nodes, pts))))
        elif len(values) == 4:
            objects.append(_box(name, values, width, height, clip))
        elif len(values) >= 6 and len(values) % 2 == 0:
            pts = [[values[k] * width, values[k + 1] * height] for k in range(0, len(values), 2)]
            objects.append(geo.polygon(name, clip.points(pts, width, height)))
        else:
            raise InvalidInput(label, f"expected 4 numbers (box) or 3+ x, y pairs (polygon), got {len(values)}",
                               where)
    return {"description": "", "size": {"height": height, "width": width}, "tags": [], "objects": objects}, dict(notes)


def _box(name: str, v: list[float], width: int, height: int, clip: geo.Clipper) -> dict[str, Any]:
    cx, cy, w, h = v[0] * width, v[1] * height, v[2] * width, v[3] * height
    (left, top), (right, bottom) = clip.points([[cx - w / 2, cy - h / 2], [cx + w / 2, cy + h / 2]], width, height)
    return geo.rectangle(name, left, top, right, bottom)


# -- export --------------------------------------------------------------------------------------
def write(store: Store, project: str, dest: Path, task: str = "detect") -> dict[str, int]:
    """`data.yaml` plus `images/<dataset>/` and `labels/<dataset>/` (nested datasets joined
    with '_'). detect: every object as its box; segment: polygons, other shapes as the
    polygon of their box. Conversions are counted."""
    if dest.exists() and any(dest.iterdir()):
        raise AlreadyExists(f"{dest} exists and is not empty")
    meta = store.ns.project(project).meta
    names = [c["title"] for c in meta.get("classes", []) if c["shape"] != "graph"]
    index = {n: i for i, n in enumerate(names)}
    counts: Counter[str] = Counter()
    splits = []
    for dataset in store.ns.datasets(project):
        flat = dataset.replace("/", "_")
        splits.append(flat)
        (dest / "images" / flat).mkdir(parents=True, exist_ok=True)
        (dest / "labels" / flat).mkdir(parents=True, exist_ok=True)
        for name, item in store.ns.items(project, dataset):
            geo.export_media(store, item.media, dest / "images" / flat / name)
            ann = store.read_json(item.ann, f"{dataset}/ann/{name}.json")
            lines = []
            for ob in ann.get("objects", []):
                line = _yolo_line(ob, index, item.width, item.height, task, counts)
                if line:
                    lines.append(line)
            (dest / "labels" / flat / (Path(name).stem + ".txt")).write_text("".join(f"{ln}\n" for ln in lines))
            counts["images"] += 1
            counts["objects"] += len(lines)
    doc: dict[str, Any] = {"path": ".", "names": dict(enumerate(names))}
    for role, split in zip(("train", "val", "test"), splits):
        doc[role] = f"images/{split}"
    if len(splits) > 3:
        counts["datasets beyond train/val/test listed only as folders"] += len(splits) - 3
    (dest / "data.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return dict(counts)


def _yolo_line(ob: dict[str, Any], index: dict[str, int], width: int, height: int, task: str,
               counts: Counter[str]) -> str | None:
    gtype = ob.get("geometryType")
    title = ob["classTitle"]
    if title not in index:
        counts[f"{gtype}s without a box class skipped"] += 1
        return None
    box = geo.bbox(ob)
    if box is None or width <= 0 or height <= 0:
        counts["empty objects skipped"] += 1
        return None
    x0, y0, x1, y1 = box
    if task == "segment" and gtype == "polygon":
        if ob["points"].get("interior"):
            counts["polygon holes dropped (YOLO has none)"] += 1
        pts = ob["points"]["exterior"]
        return f"{index[title]} " + " ".join(f"{x / width:.6f} {y / height:.6f}" for x, y in pts)
    if task == "segment":
        counts[f"{gtype}s written as box polygons"] += 1
        pts = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
        return f"{index[title]} " + " ".join(f"{x / width:.6f} {y / height:.6f}" for x, y in pts)
    if gtype != "rectangle":
        counts[f"{gtype}s written as boxes"] += 1
    return f"{index[title]} {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} " \
           f"{(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}"
