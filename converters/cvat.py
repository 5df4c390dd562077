"""CVAT for images 1.1 (docs.cvat.ai, "CVAT for images" export format): an XML of
`<annotations>` with `<meta>` (the task's or project's labels and their attributes) and one
`<image id name width height [subset]>` per image holding `<box>`, `<polygon>`,
`<polyline>`, `<points>`, `<mask>` and `<tag>` elements, each with `label`, `occluded` and
`<attribute name>` children. Images are found under `images/` (and `images/<subset>/`), or
beside the XML. CVAT writes `annotations.xml`; Datumaro one `<subset>.xml` per subset.

Datasets: an image's `subset`, else the XML's stem when there are several, else the
folder's name. box -> rectangle, polygon -> polygon, polyline -> line, points -> one point
per coordinate pair, mask -> bitmap (CVAT's RLE: run lengths over the mask's box, row
by row, starting with a run of 0), tag -> image tag; attributes -> object tags (numbers as
numbers), occluded -> a tag without value. The export writes the same, one XML per dataset.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np

from cas.errors import InvalidInput
from cas.ingest.session import ImportSession
from cas.store import Store

from . import geometry as geo
from . import text, walk
from .contract import CERTAIN, Detection, dataset_names, fits, no
from .output import Progress, UniqueNames, no_progress, writes_folder
from .renames import Renames, safe_name

SHAPE_OF = {"box": "rectangle", "polygon": "polygon", "polyline": "line", "points": "point", "mask": "bitmap"}
ELEMENT_OF = {"rectangle": "box", "polygon": "polygon", "line": "polyline", "point": "points", "bitmap": "mask"}
OCCLUDED = "occluded"
MAX_XML_BYTES = 2 << 30
READS = ("boxes", "polygons", "polylines", "points", "masks", "tags")
WRITES = ("boxes", "polygons", "polylines", "points", "masks", "tags")
LAYOUTS = "CVAT for images 1.1: annotations.xml (or Datumaro's <subset>.xml) with images/ beside it"
LOOKS_FOR = "CVAT for images 1.1 XML (annotations.xml) with its images"


def _documents(src: Path) -> list[Path]:
    return sorted(Path(e.path) for e in walk.files(str(src)) if e.name.endswith(".xml") and _is_cvat(Path(e.path)))


def _is_cvat(path: Path) -> bool:
    head = text.head(path)
    return b"<annotations" in head and (b"<version>1.1" in head or b"<image " in head)


def detect(src: Path) -> Detection:
    if src.is_dir():
        found = _documents(src)
        if found:
            return fits(f"{found[0].name} is CVAT for images 1.1", CERTAIN if found[0].name == "annotations.xml"
                        else 0.9)
    return no("no XML of <annotations> with <version>1.1")


def count(src: Path) -> int:
    return sum(len(ElementTree.parse(p).getroot().findall("image")) for p in _documents(src))


def _parse(path: Path, label: str) -> ElementTree.Element:
    if path.stat().st_size > MAX_XML_BYTES:
        raise InvalidInput(label, "over 2 GB: not an annotation file")
    try:
        return ElementTree.parse(path).getroot()
    except ElementTree.ParseError as e:
        raise InvalidInput(label, f"malformed XML ({e})") from None


def _number(raw: str | None, label: str, where: str) -> float:
    try:
        return float(raw or "")
    except ValueError:
        raise InvalidInput(label, f"expected a number, got {raw!r}", where) from None


def _points(raw: str | None, label: str, where: str) -> list[list[float]]:
    """CVAT's `x1,y1;x2,y2;...`."""
    pts = []
    for pair in (raw or "").split(";"):
        x, sep, y = pair.partition(",")
        if not sep:
            raise InvalidInput(label, f"expected 'x,y;x,y;...', got {pair[:40]!r}", where)
        pts.append([_number(x, label, where), _number(y, label, where)])
    return pts


def _shape(el: ElementTree.Element, label: str, where: str) -> dict[str, Any]:
    """One annotation element as plain data (checked here, so workers get no XML)."""
    kind = SHAPE_OF.get(el.tag, "tag")
    out: dict[str, Any] = {"kind": kind, "label": el.get("label") or "", "where": where,
                           "occluded": el.get(OCCLUDED) == "1",
                           "attributes": {a.get("name") or "": (a.text or "").strip() for a in el.findall("attribute")}}
    if not out["label"]:
        raise InvalidInput(label, "expected a label", f"{where}/@label")
    if kind == "rectangle":
        out["box"] = [_number(el.get(k), label, f"{where}/@{k}") for k in ("xtl", "ytl", "xbr", "ybr")]
    elif kind in ("polygon", "line", "point"):
        out["points"] = _points(el.get("points"), label, f"{where}/@points")
    elif kind == "bitmap":
        try:
            out["rle"] = [int(c) for c in (el.get("rle") or "").split(",")]
            out["box"] = [int(el.get(k) or "") for k in ("left", "top", "width", "height")]
        except ValueError:
            raise InvalidInput(label, "expected rle counts and integer left, top, width, height", where) from None
    return out


def read(src: Path, session: ImportSession, dataset: str | None = None) -> dict[str, int]:
    docs = _documents(src)
    counts: Counter[str] = Counter()
    classes: dict[str, set[str]] = {}
    tags: dict[str, str] = {}
    images = []
    for path in docs:
        label = os.path.relpath(path, src)
        root = _parse(path, label)
        for el in root.iter("label"):  # the labels of <meta>: classes even where unused
            name = (el.findtext("name") or "").strip()
            if name:
                classes.setdefault(name, set())
        for i, image in enumerate(root.findall("image"), 1):
            where = f"annotations/image[{i}]"
            try:
                name = image.get("name") or ""
                if not name:
                    raise InvalidInput(label, "expected a name", f"{where}/@name")
                shapes = [_shape(el, label, f"{where}/{el.tag}[{j}]") for j, el in enumerate(image, 1)
                          if el.tag in SHAPE_OF or el.tag == "tag"]
            except InvalidInput as e:
                session.reject(e)
                continue
            for shape in shapes:
                if shape["kind"] == "tag":  # an image tag; its value, where it has one, in the attribute `value`
                    _widen(tags, shape["label"], shape["attributes"].get("value", ""))
                    continue
                classes.setdefault(shape["label"], set()).add(shape["kind"])
                if shape["occluded"]:
                    tags.setdefault(OCCLUDED, "none")
                for key, value in shape["attributes"].items():
                    _widen(tags, key, value)
            subset = image.get("subset") or (path.stem if len(docs) > 1 else None)
            images.append((path, label, where, name, image.get("width"), image.get("height"), subset, shapes))
    meta_classes = [geo.meta_class(name, kinds.pop() if len(kinds) == 1 else "rectangle" if not kinds else "any", i)
                    for i, (name, kinds) in enumerate(sorted(classes.items()))]
    session.set_meta({"classes": meta_classes, "tags": [{"name": n, "value_type": t} for n, t in sorted(tags.items())],
                      "projectType": "images"}, docs[0].name if docs else "cvat")
    session.expect_items(len(images))
    targets = dataset_names(dataset, (image[6] or "" for image in images), src.name)
    for path, label, where, name, width, height, subset, shapes in images:
        target = targets[subset or ""]
        found = _find_image(src, path.parent, name, subset)
        if found is None:
            session.reject(InvalidInput(label, f"image {name!r} not found (images/, images/<subset>/, beside the "
                                               "XML)", f"{where}/@name"))
            continue
        builder = functools.partial(build_annotation, label, where, width, height, shapes, tags)
        session.add_item(target, os.path.basename(name), str(found), ann=builder, label=f"{label}: {name}")
    return dict(counts)


def _widen(types: dict[str, str], name: str, value: str) -> None:
    """The tag type that holds every value seen: none (only empty values), any_number, any_string."""
    kind = "none" if value == "" else "any_number" if _is_number(value) else "any_string"
    if types.setdefault(name, kind) != kind:
        types[name] = "any_string"


def _tag(name: str, value: str, kind: str | None) -> dict[str, Any]:
    if kind == "none":
        return {"name": name, "value": None}
    return {"name": name, "value": float(value) if kind == "any_number" else value}


def _is_number(value: str) -> bool:
    try:
        float(value)
        return True
    except ValueError:
        return False


def _find_image(src: Path, xml_dir: Path, name: str, subset: str | None) -> Path | None:
    for base in (xml_dir / "images" / (subset or ""), xml_dir / "images", xml_dir, src / "images"):
        try:
            path = walk.contained(base, name, name, "name")
        except InvalidInput:
            continue
        if path.is_file():
            return path
    return None


def build_annotation(label: str, where: str, json_w: str | None, json_h: str | None, shapes: list[dict[str, Any]],
                     tag_types: dict[str, str], width: int, height: int) -> tuple[dict[str, Any], dict[str, int]]:
    if json_w is not None and (json_w, json_h) != (str(width), str(height)):
        raise InvalidInput(label, f"says {json_w}x{json_h} but the image is {width}x{height}", f"{where}/@width")
    notes: Counter[str] = Counter()
    clip = geo.Clipper(notes)
    objects: list[dict[str, Any]] = []
    image_tags = []
    for shape in shapes:
        title = shape["label"]
        if shape["kind"] == "tag":
            image_tags.append(_tag(title, shape["attributes"].get("value", ""), tag_types.get(title)))
            continue
        tags: list[dict[str, Any]] = [{"name": OCCLUDED, "value": None}] if shape["occluded"] else []
        tags += [_tag(k, v, tag_types.get(k)) for k, v in shape["attributes"].items()]
        kind = shape["kind"]
        if kind == "rectangle":
            x0, y0, x1, y1 = shape["box"]
            (x0, y0), (x1, y1) = clip.points([[x0, y0], [x1, y1]], width, height)
            objects.append(geo.rectangle(title, x0, y0, x1, y1, tags))
        elif kind == "polygon":
            objects.append(geo.polygon(title, clip.points(shape["points"], width, height), tags=tags))
        elif kind == "line":
            objects.append(geo.line(title, clip.points(shape["points"], width, height), tags))
        elif kind == "point":
            for x, y in clip.points(shape["points"], width, height):
                objects.append(geo.point(title, x, y, tags))
            if len(shape["points"]) > 1:
                notes["CVAT shapes of several points split into points"] += 1
        else:
            mask = decode_rle(shape["rle"], shape["box"], width, height, label, shape["where"])
            ob = geo.bitmap(title, mask, tags)
            if ob is None:
                notes["empty masks skipped"] += 1
            else:
                objects.append(ob)
    return {"description": "", "size": {"height": height, "width": width}, "tags": image_tags,
            "objects": objects}, dict(notes)


def decode_rle(counts: list[int], box: list[int], width: int, height: int, label: str, where: str) -> np.ndarray:
    """CVAT's mask RLE (runs over the box's pixels row by row, the first a run of 0) as a
    full-image boolean mask."""
    left, top, w, h = box
    if w <= 0 or h <= 0 or left < 0 or top < 0 or left + w > width or top + h > height:
        raise InvalidInput(label, f"mask box {box} outside the {width}x{height} image", where)
    if any(c < 0 for c in counts) or sum(counts) != w * h:
        raise InvalidInput(label, f"mask rle covers {sum(counts)} pixels, its box {w * h}", f"{where}/@rle")
    values = np.zeros(len(counts), np.bool_)
    values[1::2] = True
    flat = np.repeat(values, counts)
    mask = np.zeros((height, width), np.bool_)
    mask[top:top + h, left:left + w] = flat.reshape(h, w)
    return mask


def encode_rle(mask: np.ndarray) -> tuple[list[int], tuple[int, int, int, int]] | None:
    """A boolean mask as CVAT's RLE over its extent, and that box (left, top, width, height)."""
    extent = geo.mask_extent(mask)
    if extent is None:
        return None
    x0, y0, x1, y1 = extent
    flat = mask[y0:y1 + 1, x0:x1 + 1].ravel()
    edges = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate(([0], edges, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs.insert(0, 0)
    return runs, (x0, y0, x1 - x0 + 1, y1 - y0 + 1)


@writes_folder
def write(store: Store, project: str, dest: Path, progress: Progress = no_progress) -> dict[str, int]:
    """One `<dataset>.xml` per dataset (as Datumaro writes; nested datasets joined with '-'),
    images under `images/` with names unique over the export; cas_names.json keeps the names."""
    meta = store.ns.project(project).meta
    counts: Counter[str] = Counter()
    (dest / "images").mkdir()
    files_taken, xmls, kept = UniqueNames(), UniqueNames(), Renames()
    image_id = 0
    for dataset in store.ns.datasets(project):
        flat = xmls(safe_name(dataset.replace("/", "-")))
        kept.dataset(dataset)
        root = ElementTree.Element("annotations")
        ElementTree.SubElement(root, "version").text = "1.1"
        _write_meta(ElementTree.SubElement(root, "meta"), meta, flat)
        for name, item in store.ns.items(project, dataset):
            out_name = files_taken(name, f"{flat}-{name}")
            kept.item(f"images/{out_name}", dataset, name)
            note = geo.export_image(store, item, dest / "images" / out_name)
            if note:
                counts[note] += 1
            ann = store.read_json(item.ann, f"{dataset}/ann/{name}.json")
            image = ElementTree.SubElement(root, "image", id=str(image_id), name=out_name, width=str(item.width),
                                           height=str(item.height), subset=flat)
            image_id += 1
            for ob in ann.get("objects", []):
                if _write_shape(image, ob, item.width, item.height, counts):
                    counts["objects"] += 1
            for tag in ann.get("tags", []):
                el = ElementTree.SubElement(image, "tag", label=tag["name"], source="manual")
                if tag.get("value") is not None:
                    ElementTree.SubElement(el, "attribute", name="value").text = f"{tag['value']}"
                counts["image tags"] += 1
            counts["images"] += 1
            progress(1)
        ElementTree.indent(root)
        ElementTree.ElementTree(root).write(dest / f"{flat}.xml", encoding="utf-8", xml_declaration=True)
    kept.save(dest)
    return dict(counts)


def _write_meta(meta_el: ElementTree.Element, meta: dict[str, Any], subset: str) -> None:
    task = ElementTree.SubElement(meta_el, "task")
    ElementTree.SubElement(task, "name").text = subset
    labels = ElementTree.SubElement(task, "labels")
    for cls in meta.get("classes", []):
        el = ElementTree.SubElement(labels, "label")
        ElementTree.SubElement(el, "name").text = cls["title"]
        ElementTree.SubElement(el, "type").text = ELEMENT_OF.get(cls["shape"], "any").replace("box", "rectangle")
        ElementTree.SubElement(el, "attributes")
    for tag in meta.get("tags", []):
        el = ElementTree.SubElement(labels, "label")
        ElementTree.SubElement(el, "name").text = tag["name"]
        ElementTree.SubElement(el, "type").text = "tag"
        ElementTree.SubElement(el, "attributes")


def _write_shape(image: ElementTree.Element, ob: dict[str, Any], width: int, height: int,
                 counts: Counter[str]) -> bool:
    gtype = ob.get("geometryType")
    tags = ob.get("tags", [])
    attrs = {"label": ob["classTitle"], "source": "manual", "z_order": "0",
             OCCLUDED: "1" if any(t.get("name") == OCCLUDED for t in tags) else "0"}
    if gtype == "polygon" and not ob["points"].get("interior"):
        el = ElementTree.SubElement(image, "polygon", attrs, points=_pts(ob["points"]["exterior"]))
    elif gtype == "line":
        el = ElementTree.SubElement(image, "polyline", attrs, points=_pts(ob["points"]["exterior"]))
    elif gtype == "point":
        el = ElementTree.SubElement(image, "points", attrs, points=_pts(ob["points"]["exterior"]))
    elif gtype in ("bitmap", "polygon"):
        if gtype == "polygon":
            counts["polygons with holes written as masks"] += 1
        mask = geo.full_mask(ob, width, height) if gtype == "bitmap" else geo.polygon_mask(ob, width, height)
        encoded = encode_rle(mask)
        if encoded is None:
            counts["empty objects skipped"] += 1
            return False
        runs, (left, top, w, h) = encoded
        el = ElementTree.SubElement(image, "mask", attrs, rle=", ".join(map(str, runs)), left=str(left),
                                    top=str(top), width=str(w), height=str(h))
    else:
        box = geo.counted_box(ob, counts)
        if box is None:
            return False
        el = ElementTree.SubElement(image, "box", attrs, xtl=f"{box[0]:.2f}", ytl=f"{box[1]:.2f}",
                                    xbr=f"{box[2]:.2f}", ybr=f"{box[3]:.2f}")
    for tag in tags:
        if tag.get("name") != OCCLUDED:
            value = tag.get("value")
            ElementTree.SubElement(el, "attribute", name=tag["name"]).text = "" if value is None else f"{value}"
    return True


def _pts(pts: list[list[float]]) -> str:
    return ";".join(f"{x:.2f},{y:.2f}" for x, y in pts)
