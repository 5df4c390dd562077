"""YOLO, in the layouts tools write:

- Ultralytics / Roboflow / FiftyOne: a YAML config (`data.yaml`, `dataset.yaml`, the
  Supervisely SDK's `data_config.yaml`) with `names` (a list or an id -> name mapping),
  an optional `path`, and `train` / `val` / `test` given as image folders or as .txt
  lists of image paths (one or a list of several); labels found by Ultralytics' rule
  (the last `images` path part replaced by `labels`) or beside the images;
- darknet / CVAT YOLO 1.1: `obj.data` (`names = data/obj.names`, `train = data/train.txt`)
  with labels beside the images;
- an older layout with `classes.txt` (or `obj.names`) and labels beside the images.

One dataset per split. Label lines are normalized to the image: `c cx cy w h` (box ->
rectangle), `c x1 y1 x2 y2 ...` (polygon), and with `kpt_shape: [K, 2|3]` in the config
`c cx cy w h` plus K points (pose -> rectangle plus a graph of class `<name>_keypoints`).
Coordinates are scaled by the real image size in the import's workers, clipped, and
counted when clipped.
"""

from __future__ import annotations

import functools
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml

from cas.errors import InvalidInput, shown
from cas.ingest.session import ImportSession
from cas.model.media import is_image_name
from cas.outputs import new_folder
from cas.store import Store
from cas.units import counted

from . import geometry as geo
from . import text
from .contract import CERTAIN, Detection, dataset_names, fits, no
from .output import Progress, UniqueNames, no_progress
from .renames import FILE, Renames
from .walk import contained, files, tree_files

CLASS_FILES = ("classes.txt", "obj.names")
CONFIGS = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml", "data_config.yaml")
DARKNET = "obj.data"
DARKNET_SETTINGS = ("classes", "names", "backup", "eval", "results")
SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
READS = ("boxes", "polygons", "keypoints")
WRITES = ("boxes", "polygons")
LAYOUTS = ("YOLO: data.yaml (Ultralytics, Roboflow, FiftyOne), obj.data (darknet, CVAT), "
           "or classes.txt / obj.names with labels beside the images")
LOOKS_FOR = f"YOLO dataset ({', '.join(CONFIGS)}, {DARKNET}, or {' / '.join(CLASS_FILES)} with label .txt files)"


def detect(src: Path) -> Detection:
    if not src.is_dir():
        return no("not a folder")
    config = _config_file(src)
    if config is not None:
        return fits(config.name, CERTAIN)
    if (src / DARKNET).is_file():
        return fits(DARKNET, CERTAIN)
    names = next((f for f in CLASS_FILES if (src / f).is_file()), None)
    if names and not (src / "masks").is_dir() and any(p.name not in CLASS_FILES for p in tree_files(src, ".txt")):
        return fits(f"{names} and label .txt files")
    return no(f"no {', '.join(CONFIGS[:2])}, {DARKNET} or {' / '.join(CLASS_FILES)} with label files")


def _config_file(src: Path) -> Path | None:
    for name in CONFIGS:
        if (src / name).is_file():
            return src / name
    return None


class Layout:
    """Class names, keypoint shape and the (split, images) of a YOLO dataset."""

    def __init__(self, src: Path) -> None:
        self.src = src
        self.kpt: tuple[int, int] | None = None
        self.splits: dict[str, list[tuple[str, Path]]] = {}  # split -> (item name, image)
        self.outside: InvalidInput | None = None  # the first path found leading out, said if nothing is found
        yml = _config_file(src)
        if yml is not None:
            self._from_yaml(yml)
        elif (src / DARKNET).is_file():
            self._from_darknet(src / DARKNET)
        else:
            names_file = next((src / f for f in CLASS_FILES if (src / f).is_file()), None)
            if names_file is None:
                raise InvalidInput(str(src), f"no {LOOKS_FOR}")
            self.names = text.lines(names_file, names_file.name)
            folders = [(p.name, p) for p in sorted(src.iterdir()) if p.is_dir() and _has_images(p)] or \
                [(src.name, src)]
            self.splits = {split: _folder_images(folder) for split, folder in folders}

    def _from_yaml(self, yml: Path) -> None:
        data = text.read_yaml(yml)
        if not isinstance(data, dict):
            raise InvalidInput(yml.name, "expected a mapping", "$")
        self.names = _names(data.get("names"), yml.name)
        kpt = data.get("kpt_shape")
        if kpt is not None:
            if not (isinstance(kpt, list) and len(kpt) == 2 and kpt[1] in (2, 3) and isinstance(kpt[0], int)):
                raise InvalidInput(yml.name, "expected [keypoints, 2 or 3]", "kpt_shape")
            self.kpt = (kpt[0], kpt[1])
        path = data.get("path")
        if path is not None and not isinstance(path, str):
            raise InvalidInput(yml.name, "expected a folder", "path")
        bases = [self.src]
        if path:  # relative to the config's folder (Ultralytics takes it from its working folder)
            try:
                base = contained(self.src, path, yml.name, "path")
                if base.is_dir():
                    bases.insert(0, base)
            except InvalidInput as e:
                self.outside = e  # maybe the machine that wrote the export: try the config's folder
        for key, split in SPLITS.items():
            given = data.get(key)
            if given is None:
                continue
            parts = given if isinstance(given, list) else [given]
            if not all(isinstance(p, str) for p in parts):
                raise InvalidInput(yml.name, "expected a folder, a .txt list of images, or a list of them", key)
            for part in parts:
                self.splits.setdefault(split, []).extend(self._images_of(part, bases, yml.name, key))
        if not self.splits:
            looked = ", ".join(str(b) for b in bases)
            raise self.outside or InvalidInput(
                yml.name, f"no train, val or test image folder or list found (looked under {looked})", "train")

    def _from_darknet(self, cfg: Path) -> None:
        """darknet's `key = value` lines (CVAT YOLO 1.1): paths there start with `data/`, the
        folder darknet runs in."""
        entries = {}
        for line in text.lines(cfg, cfg.name):
            key, sep, value = line.partition("=")
            if sep:
                entries[key.strip()] = value.strip()
        names_file = self._find(entries.get("names") or "obj.names", [self.src], cfg.name, "names")
        if names_file is None or not names_file.is_file():
            raise InvalidInput(cfg.name, f"names file {shown(entries.get('names'))} not found", "names")
        self.names = text.lines(names_file, names_file.name)
        for key, value in entries.items():  # every other `key = list.txt` is a subset (Datumaro: train_night)
            if key not in DARKNET_SETTINGS and value.endswith(".txt"):
                self.splits.setdefault(SPLITS.get(key, key), []).extend(
                    self._images_of(value, [self.src], cfg.name, key))
        if not self.splits:
            raise InvalidInput(cfg.name, "no train or valid image list found", "train")

    def _find(self, given: str, bases: list[Path], label: str, where: str) -> Path | None:
        """`given` under one of `bases`, by Ultralytics' and darknet's rules: as written, then
        with leading parts dropped (`../train/images` -> `train/images`; `data/train.txt`)."""
        parts = Path(given).parts
        for base in bases:
            for k in range(len(parts)):
                try:
                    candidate = contained(base, str(Path(*parts[k:])), label, where)
                except InvalidInput as e:
                    self.outside = self.outside or e
                    continue
                if candidate.exists():
                    return candidate
        return None

    def _images_of(self, given: str, bases: list[Path], label: str, where: str) -> list[tuple[str, Path]]:
        found = self._find(given, bases, label, where)
        if found is None:
            raise self.outside or InvalidInput(label, f"{given!r} not found under {bases[0]}", where)
        if found.is_dir():
            return _folder_images(found)
        listed = []
        for number, line in enumerate(text.lines(found, os.path.relpath(found, self.src)), 1):
            image = self._find(line.removeprefix("./"), [found.parent, *bases], found.name, f"line {number}")
            if image is None or not image.is_file():
                raise self.outside or InvalidInput(os.path.relpath(found, self.src), f"image {line[:200]!r} not found",
                                                   f"line {number}")
            listed.append(image)
        if not listed:
            return []
        top = Path(os.path.commonpath([p.parent for p in listed]))
        return [(str(p.relative_to(top)).replace(os.sep, "_"), p) for p in listed]

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


def _names(names: Any, label: str) -> list[str]:
    if isinstance(names, dict):
        try:
            return [str(names[k]) for k in sorted(names, key=int)]
        except (TypeError, ValueError):
            raise InvalidInput(label, "expected integer class ids", "names") from None
    if isinstance(names, list):
        return [str(n) for n in names]
    raise InvalidInput(label, "expected a list or a mapping of class names", "names")


def _has_images(folder: Path) -> bool:
    return any(is_image_name(e.name) for e in files(str(folder)))


def _folder_images(folder: Path) -> list[tuple[str, Path]]:
    return [(str(p.relative_to(folder)).replace(os.sep, "_"), p) for p in tree_files(folder) if is_image_name(p.name)]


def count(src: Path) -> int:
    return sum(len(images) for images in Layout(src).splits.values())


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
    for split, images in layout.splits.items():
        for name, image in images:
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
            entries.append((split, name, image, label))  # the label is read again below
    classes: list[dict[str, Any]] = []
    for i, class_name in enumerate(names):
        shapes = {"rectangle" if k == "pose" else k for k in kinds.get(i, {"rectangle"})}
        classes.append(geo.meta_class(class_name, shapes.pop() if len(shapes) == 1 else "any", len(classes)))
    if layout.kpt is not None:
        nodes = {str(k): {"label": str(k), "loc": [0, 0], "color": geo.color(k)} for k in range(layout.kpt[0])}
        for class_name in names:
            classes.append(geo.meta_class(f"{class_name}_keypoints", "graph", len(classes),
                                          {"nodes": nodes, "edges": []}))
    session.set_meta({"classes": classes, "tags": [], "projectType": "images"}, "data.yaml")
    session.expect_items(len(entries))
    targets = dataset_names(dataset, layout.splits, src.name)
    for split, name, image, label in entries:
        content = _read_label(label, src)
        target = targets[split]
        rel_label = os.path.relpath(label, src)
        builder = functools.partial(build_annotation, rel_label, content, tuple(names), layout.kpt)
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
            raise InvalidInput(label, f"class id {cls} is not in the {counted(len(names), 'name')} of data.yaml", where)
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
def split_of(dataset: str) -> str | None:
    """The YOLO split a dataset's top-level name says (`train`, `val`, `valid`, `validation`,
    `test`, any case; `train/night` is train), or None."""
    return SPLITS.get(dataset.split("/")[0].lower())


def write(store: Store, project: str, dest: Path, task: str = "detect", other_split: str = "train",
          progress: Progress = no_progress, force: bool = False) -> dict[str, int]:
    """`data.yaml` plus `images/<dataset>/` and `labels/<dataset>/` (nested datasets joined
    with '_'). Each dataset goes to the split `split_of` names, else to `other_split`; data.yaml lists every split's
    folders and gives `path` as the export's absolute folder, so Ultralytics finds the
    images from any working folder. Item names that share a stem in one folder (`a.jpg`,
    `a.png`) are renamed so labels stay apart. detect: every object as its box; segment:
    polygons, other shapes as the polygon of their box. Conversions are counted. `force`: as
    `cas.outputs.new_folder`."""
    final = dest.resolve()
    with new_folder(dest, force, keep=store.root) as tmp:
        return _write(store, project, tmp, final, task, other_split, progress)


def _write(store: Store, project: str, dest: Path, final: Path, task: str, other_split: str,
           progress: Progress) -> dict[str, int]:
    meta = store.ns.project(project).meta
    names = [c["title"] for c in meta.get("classes", []) if c["shape"] != "graph"]
    index = {n: i for i, n in enumerate(names)}
    counts: Counter[str] = Counter()
    splits: dict[str, list[str]] = {}
    folders = UniqueNames()
    stems = UniqueNames(by_stem=True)  # over the export: readers that merge a split's folders keep every image
    kept = Renames()
    for dataset in store.ns.datasets(project):
        split = split_of(dataset)
        if split is None and other_split == "none":
            counts["datasets left out (not named train, val or test)"] += 1
            continue
        if split is None:
            split = other_split
            counts[f"datasets written to the {split} split (not named train, val or test)"] += 1
        flat = folders(dataset.replace("/", "_"))
        splits.setdefault(split, []).append(f"images/{flat}")
        (dest / "images" / flat).mkdir(parents=True, exist_ok=True)
        (dest / "labels" / flat).mkdir(parents=True, exist_ok=True)
        kept.dataset(dataset)
        renamed = stems.renamed
        for name, item in store.ns.items(project, dataset):
            out_name = stems(name, f"{flat}_{name}")
            kept.item(f"images/{flat}/{out_name}", dataset, name)
            note = geo.export_image(store, item, dest / "images" / flat / out_name)
            if note:
                counts[note] += 1
            ann = store.read_json(item.ann, f"{dataset}/ann/{name}.json")
            lines = []
            for ob in ann.get("objects", []):
                line = _yolo_line(ob, index, item.width, item.height, task, counts)
                if line:
                    lines.append(line)
            (dest / "labels" / flat / (Path(out_name).stem + ".txt")).write_text("".join(f"{ln}\n" for ln in lines))
            counts["images"] += 1
            progress(1)
            counts["objects"] += len(lines)
        if stems.renamed > renamed:
            counts["images renamed (a stem taken in another folder or by another image; "
                   f"{FILE} keeps the names)"] += stems.renamed - renamed
    doc: dict[str, Any] = {"path": str(final)}
    for role in ("train", "val", "test"):
        if role in splits:
            doc[role] = splits[role] if len(splits[role]) > 1 else splits[role][0]
    if "val" not in doc and "train" in doc:
        doc["val"] = doc["train"]  # Ultralytics requires a val split
        counts["val splits made of the train folders (no val dataset)"] += 1
    doc["names"] = dict(enumerate(names))
    (dest / "data.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    kept.save(dest)
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
