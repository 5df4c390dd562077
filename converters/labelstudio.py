"""Label Studio's JSON export (labelstud.io, "Export formats: JSON"): a list of tasks, each
with `data` (the image: `/data/upload/<project>/<8 hex>-<name>` for an uploaded file,
`/data/local-files/?d=<path>` for local storage, or a URL) and `annotations` (the first one
not cancelled is taken, else the first of `predictions`), whose `result` entries are:

- `rectanglelabels` (x, y, width, height in percent of original_width/height; a rotation
  turns it into a polygon), `polygonlabels` (points in percent), `keypointlabels` (x, y),
  `brushlabels` (Label Studio's RLE of the RGBA canvas: the alpha channel is the mask);
- `choices` -> image tags without value; `textarea` -> a string tag named by from_name.

Images are resolved against the folder: by the path after `?d=` (with leading parts
dropped), then by file name, with and without the 8-hex upload prefix.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import numpy as np

from cas.errors import InvalidInput, shown
from cas.ingest.session import ImportSession
from cas.model.media import is_image_name
from cas.store import Store

from . import geometry as geo
from . import text, walk
from .contract import Detection, fits, no
from .output import Progress, UniqueNames, no_progress, writes_folder
from .renames import Renames, safe_name

LABEL_KEYS = {"rectanglelabels": "rectangle", "polygonlabels": "polygon", "keypointlabels": "point",
              "brushlabels": "bitmap"}
UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")
MAX_JSON_BYTES = 2 << 30
EXPORT_FILE = "label_studio.json"
READS = ("boxes", "polygons", "points", "masks", "tags", "captions")
WRITES = ("boxes", "polygons", "points", "masks", "tags", "captions")
LAYOUTS = "Label Studio JSON export (a list of tasks with data.image and annotations), images in the folder"
LOOKS_FOR = "Label Studio JSON export (a list of tasks with data and annotations)"


def _documents(src: Path) -> list[Path]:
    if src.is_file():
        return [src] if _is_export(src) else []
    return sorted(Path(e.path) for e in walk.files(str(src)) if e.name.endswith(".json") and _is_export(Path(e.path)))


def _is_export(path: Path) -> bool:
    head = text.head(path, 1 << 16)
    return head.lstrip()[:1] == b"[" and b'"data"' in head and (b'"annotations"' in head or b'"predictions"' in head)


def detect(src: Path) -> Detection:
    found = _documents(src)
    if found:
        return fits(f"{found[0].name} is a list of tasks with data and annotations")
    return no("no JSON list of tasks with data and annotations")


def _load(path: Path, label: str) -> list[Any]:
    if path.stat().st_size > MAX_JSON_BYTES:
        raise InvalidInput(label, "over 2 GB: not an export")
    doc = text.read_json(path, label)
    if not isinstance(doc, list):
        raise InvalidInput(label, "expected a list of tasks", "$")
    return doc


def count(src: Path) -> int:
    return sum(len(_load(p, p.name)) for p in _documents(src))


class Images:
    """The image files of a folder, by relative path and by name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.by_name: dict[str, str] = {}
        for _rel, entry in walk.tree(root):
            if is_image_name(entry.name):
                self.by_name.setdefault(entry.name, entry.path)
                self.by_name.setdefault(UPLOAD_PREFIX.sub("", entry.name), entry.path)

    def find(self, ref: str) -> str | None:
        parsed = urlparse(ref)
        path = parse_qs(parsed.query).get("d", [""])[0] if parsed.path.endswith("/data/local-files/") else \
            parsed.path
        parts = [p for p in Path(path).parts if p not in ("/", "..", ".")]
        for k in range(len(parts)):
            candidate = self.root.joinpath(*parts[k:])
            if candidate.is_file() and candidate.resolve().is_relative_to(self.root.resolve()):
                return str(candidate)
        name = os.path.basename(path)
        return self.by_name.get(name) or self.by_name.get(UPLOAD_PREFIX.sub("", name))


def _image_ref(task: dict[str, Any]) -> str | None:
    data = task.get("data")
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("image"), str):
        return str(data["image"])
    return next((v for v in data.values() if isinstance(v, str) and is_image_name(urlparse(v).path or v)), None)


def _results(task: dict[str, Any]) -> list[Any]:
    for key in ("annotations", "predictions"):
        entries = [a for a in task.get(key) or [] if isinstance(a, dict) and not a.get("was_cancelled")]
        if entries:
            results = entries[0].get("result") or []
            return results if isinstance(results, list) else []
    return []


def read(src: Path, session: ImportSession, dataset: str | None = None) -> dict[str, int]:
    root = src if src.is_dir() else src.parent
    images = Images(root)
    counts: Counter[str] = Counter()
    classes: dict[str, set[str]] = {}
    tags: dict[str, str] = {}
    tasks = []
    for path in _documents(src):
        label = os.path.relpath(path, root)
        for i, task in enumerate(_load(path, label)):
            where = f"[{i}]"
            ref = _image_ref(task) if isinstance(task, dict) else None
            if ref is None:
                session.reject(InvalidInput(label, "expected a task with data.image", f"{where}.data"))
                continue
            results = []
            for j, result in enumerate(_results(task)):
                kind = result.get("type") if isinstance(result, dict) else None
                value = result.get("value") if isinstance(result, dict) else None
                if not isinstance(value, dict):
                    continue
                if kind in LABEL_KEYS and isinstance(value.get(kind), list) and value[kind]:
                    rotated = kind == "rectanglelabels" and value.get("rotation") not in (None, 0, 0.0)
                    classes.setdefault(str(value[kind][0]), set()).add("polygon" if rotated else LABEL_KEYS[kind])
                elif kind == "choices" and isinstance(value.get("choices"), list):
                    for choice in value["choices"]:
                        tags.setdefault(str(choice), "none")
                elif kind == "textarea" and isinstance(value.get("text"), list):
                    tags.setdefault(str(result.get("from_name") or "text"), "any_string")
                else:
                    counts[f"Label Studio {kind} results skipped"] += 1
                    continue
                results.append((f"{where}.annotations[0].result[{j}]", result))
            tasks.append((label, where, ref, results))
    session.set_meta({"classes": [geo.meta_class(n, k.pop() if len(k) == 1 else "any", i)
                                  for i, (n, k) in enumerate(sorted(classes.items()))],
                      "tags": [{"name": n, "value_type": t} for n, t in sorted(tags.items())],
                      "projectType": "images"}, "label studio")
    session.expect_items(len(tasks))
    target = dataset or root.name
    session.add_dataset(target)
    names = UniqueNames()
    for label, where, ref, results in tasks:
        found = images.find(ref)
        if found is None:
            session.reject(InvalidInput(label, f"image {ref!r} not found in the folder", f"{where}.data.image"))
            continue
        name = names(os.path.basename(found))
        session.add_item(target, name, found, ann=functools.partial(build_annotation, label, results),
                         label=os.path.relpath(found, root))
    return dict(counts)


def build_annotation(label: str, results: list[tuple[str, dict[str, Any]]], width: int, height: int
                     ) -> tuple[dict[str, Any], dict[str, int]]:
    notes: Counter[str] = Counter()
    clip = geo.Clipper(notes)
    objects: list[dict[str, Any]] = []
    image_tags: list[dict[str, Any]] = []
    for where, result in results:
        kind, value = result["type"], result["value"]
        ow, oh = result.get("original_width"), result.get("original_height")
        if isinstance(ow, (int, float)) and (ow, oh) != (width, height):
            raise InvalidInput(label, f"says {ow}x{oh} but the image is {width}x{height}", f"{where}.original_width")
        try:
            if kind == "choices":
                image_tags += [{"name": str(c), "value": None} for c in value["choices"]]
            elif kind == "textarea":
                image_tags.append({"name": str(result.get("from_name") or "text"),
                                   "value": "\n".join(map(str, value["text"]))})
            else:
                title = str(value[kind][0])
                ob = _object(kind, title, value, width, height, clip, label, where)
                if ob is None:
                    notes["empty masks skipped"] += 1
                else:
                    objects.append(ob)
        except (KeyError, TypeError, ValueError):
            raise InvalidInput(label, f"a {kind} result without its numbers", f"{where}.value") from None
    return {"description": "", "size": {"height": height, "width": width}, "tags": image_tags,
            "objects": objects}, dict(notes)


def _object(kind: str, title: str, value: dict[str, Any], width: int, height: int, clip: geo.Clipper,
            label: str, where: str) -> dict[str, Any] | None:
    sx, sy = width / 100.0, height / 100.0
    if kind == "rectanglelabels":
        x, w = float(value["x"]) * sx, float(value["width"]) * sx
        y, h = float(value["y"]) * sy, float(value["height"]) * sy
        angle = math.radians(float(value.get("rotation") or 0))
        if angle:  # rotated clockwise about its top-left corner, in pixels, as Label Studio draws it
            cos, sin = math.cos(angle), math.sin(angle)
            pts = [[x + dx * cos - dy * sin, y + dx * sin + dy * cos] for dx, dy in ((0, 0), (w, 0), (w, h), (0, h))]
            return geo.polygon(title, clip.points(pts, width, height))
        (x0, y0), (x1, y1) = clip.points([[x, y], [x + w, y + h]], width, height)
        return geo.rectangle(title, x0, y0, x1, y1)
    if kind == "polygonlabels":
        pts = [[float(px) * sx, float(py) * sy] for px, py in value["points"]]
        return geo.polygon(title, clip.points(pts, width, height))
    if kind == "keypointlabels":
        (px, py), = clip.points([[float(value["x"]) * sx, float(value["y"]) * sy]], width, height)
        return geo.point(title, px, py)
    if value.get("format") != "rle":
        raise InvalidInput(label, f"expected brush format 'rle', got {shown(value.get('format'))}",
                           f"{where}.value.format")
    rgba = decode_rle(value["rle"], label, f"{where}.value.rle")
    if rgba.size != width * height * 4:
        raise InvalidInput(label, f"brush covers {rgba.size // 4} pixels, the image {width * height}",
                           f"{where}.value.rle")
    return geo.bitmap(title, rgba.reshape(height, width, 4)[:, :, 3] > 0)


# -- Label Studio's brush RLE (thi.ng/rle-pack, as label-studio-converter's brush.py reads it) --------
RLE_SIZES = (3, 4, 8, 16)


def decode_rle(data: list[int], label: str, where: str) -> np.ndarray:
    """The bytes an RLE list holds: a 32-bit count, a 5-bit word size, four 4-bit run-length
    sizes, then runs (1, size index, length - 1, one word) and literals (0, ..., words)."""
    if not isinstance(data, list) or not all(isinstance(b, int) and 0 <= b < 256 for b in data):
        raise InvalidInput(label, "expected a list of bytes", where)
    bits = "".join(f"{b:08b}" for b in data)
    pos = 0

    def take(n: int) -> int:
        nonlocal pos
        if pos + n > len(bits):
            raise InvalidInput(label, "brush RLE ends early", where)
        value = int(bits[pos:pos + n], 2) if n else 0
        pos += n
        return value

    total, word = take(32), take(5) + 1
    sizes = [take(4) + 1 for _ in range(4)]
    if total > 1 << 30:
        raise InvalidInput(label, f"brush RLE of {total} values: too large", where)
    out = np.zeros(total, np.uint8)
    i = 0
    while i < total:
        run = take(1)
        j = min(total, i + 1 + take(sizes[take(2)]))
        if run:
            out[i:j] = take(word)
        else:
            for k in range(i, j):
                out[k] = take(word)
        i = j
    return out


def encode_rle(values: np.ndarray) -> list[int]:
    """`values` (uint8) in Label Studio's brush RLE, as runs."""
    flat = values.ravel()
    bits = [f"{flat.size:032b}", f"{8 - 1:05b}", "".join(f"{s - 1:04b}" for s in RLE_SIZES)]
    edges = np.flatnonzero(np.diff(flat)) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [flat.size]))
    for start, end in zip(starts.tolist(), ends.tolist()):
        length, value = end - start, int(flat[start])
        while length > 0:
            n = min(length, 1 << RLE_SIZES[-1])
            index = next(k for k, s in enumerate(RLE_SIZES) if n - 1 < 1 << s)
            bits.append(f"1{index:02b}{n - 1:0{RLE_SIZES[index]}b}{value:08b}")
            length -= n
    stream = "".join(bits)
    stream += "0" * (-len(stream) % 8)
    return [int(stream[k:k + 8], 2) for k in range(0, len(stream), 8)]


# -- export ---------------------------------------------------------------------------------------
@writes_folder
def write(store: Store, project: str, dest: Path, progress: Progress = no_progress) -> dict[str, int]:
    """`label_studio.json` (the JSON export's list of tasks) with images under
    `images/<dataset>/`, referenced as local files (`/data/local-files/?d=images/...`);
    cas_names.json keeps the names."""
    meta = store.ns.project(project).meta
    tag_types = {t["name"]: t.get("value_type") for t in meta.get("tags", [])}
    counts: Counter[str] = Counter()
    tasks: list[dict[str, Any]] = []
    folders, kept = UniqueNames(), Renames()
    for dataset in store.ns.datasets(project):
        flat = folders(safe_name(dataset.replace("/", "-")))
        (dest / "images" / flat).mkdir(parents=True)
        kept.dataset(dataset)
        for name, item in store.ns.items(project, dataset):
            rel = f"images/{flat}/{name}"
            kept.item(rel, dataset, name)
            note = geo.export_image(store, item, dest / rel)
            if note:
                counts[note] += 1
            ann = store.read_json(item.ann, f"{dataset}/ann/{name}.json")
            result = [r for ob in ann.get("objects", []) if (r := _result(ob, item.width, item.height, counts))]
            counts["objects"] += len(result)
            result += _tag_results(ann.get("tags", []), tag_types, item.width, item.height, counts)
            for k, entry in enumerate(result):
                entry["id"] = f"{len(tasks) + 1}-{k}"
            tasks.append({"id": len(tasks) + 1, "data": {"image": f"/data/local-files/?d={quote(rel)}"},
                          "annotations": [{"id": len(tasks) + 1, "result": result, "was_cancelled": False}]})
            counts["images"] += 1
            progress(1)
    (dest / EXPORT_FILE).write_text(json.dumps(tasks, ensure_ascii=False))
    kept.save(dest)
    return dict(counts)


def _base(kind: str, width: int, height: int) -> dict[str, Any]:
    return {"type": kind, "from_name": "tags" if kind == "choices" else "label", "to_name": "image",
            "original_width": width, "original_height": height, "image_rotation": 0}


def _result(ob: dict[str, Any], width: int, height: int, counts: Counter[str]) -> dict[str, Any] | None:
    gtype, title = ob.get("geometryType"), ob["classTitle"]
    sx, sy = 100.0 / width, 100.0 / height
    if gtype == "polygon":
        if ob["points"].get("interior"):
            counts["polygon holes dropped (Label Studio polygons have none)"] += 1
        value: dict[str, Any] = {"points": [[x * sx, y * sy] for x, y in ob["points"]["exterior"]],
                                 "polygonlabels": [title]}
        return {**_base("polygonlabels", width, height), "value": value}
    if gtype == "point":
        x, y = ob["points"]["exterior"][0]
        value = {"x": x * sx, "y": y * sy, "width": 0.5, "keypointlabels": [title]}
        return {**_base("keypointlabels", width, height), "value": value}
    if gtype == "bitmap":
        mask = geo.full_mask(ob, width, height)
        rgba = np.repeat((mask.astype(np.uint8) * 255)[:, :, None], 4, axis=2)
        value = {"format": "rle", "rle": encode_rle(rgba), "brushlabels": [title]}
        return {**_base("brushlabels", width, height), "value": value}
    box = geo.counted_box(ob, counts, "rectangles")
    if box is None:
        return None
    x0, y0, x1, y1 = box
    value = {"x": x0 * sx, "y": y0 * sy, "width": (x1 - x0) * sx, "height": (y1 - y0) * sy, "rotation": 0,
             "rectanglelabels": [title]}
    return {**_base("rectanglelabels", width, height), "value": value}


def _tag_results(tags: list[dict[str, Any]], types: dict[str, Any], width: int, height: int,
                 counts: Counter[str]) -> list[dict[str, Any]]:
    """Image tags without value as one `choices` result; the others as `textarea` results."""
    out = []
    choices = [t["name"] for t in tags if t.get("value") is None]
    if choices:
        out.append({**_base("choices", width, height), "value": {"choices": choices}})
    for tag in tags:
        if tag.get("value") is not None:
            out.append({**_base("textarea", width, height), "from_name": tag["name"],
                        "value": {"text": [f"{tag['value']}"]}})
            if types.get(tag["name"]) not in ("any_string", None):
                counts[f"tag {tag['name']!r} written as text"] += 1
    return out
