"""Pascal VOC (the VOC2012 layout): `Annotations/*.xml`, `JPEGImages/`, splits in
`ImageSets/Main/<split>.txt` (one dataset each; all items in one dataset `all` when there
are none), `SegmentationObject/` and `SegmentationClass/` PNGs.

bndbox -> rectangle (VOC's 1-based inclusive pixels become 0-based); difficult,
truncated, occluded -> tags without value, pose -> a string tag. With a
SegmentationObject PNG, each object's pixels (palette index = the object's position in
the XML) become a bitmap of its class; with only a SegmentationClass PNG, each class
present becomes one bitmap. 255 (the boundary) is not part of any mask.
"""

from __future__ import annotations

import functools
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
from PIL import Image

from cas.errors import AlreadyExists, InvalidInput
from cas.media import check_pixels, decode, open_for_decoding
from cas.session import ImportSession
from cas.store import Store

from . import geometry as geo
from . import text, walk
from .walk import files

FLAG_TAGS = ("difficult", "truncated", "occluded")
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")


def detect(src: Path) -> bool:
    return src.is_dir() and (src / "Annotations").is_dir() and (src / "JPEGImages").is_dir()


def _stems(src: Path) -> list[str]:
    return sorted(e.name[:-4] for e in files(str(src / "Annotations")) if e.name.endswith(".xml"))


def count(src: Path) -> int:
    return sum(len(members) for members in _splits(src).values())


def _splits(src: Path) -> dict[str, list[str]]:
    main = src / "ImageSets" / "Main"
    splits = {}
    if main.is_dir():
        for entry in files(str(main)):
            stem = entry.name[:-4]
            if not entry.name.endswith(".txt") or "_" in stem:  # per-class lists (aeroplane_train.txt)
                continue
            label = f"ImageSets/Main/{entry.name}"
            members = [ln.split()[0] for ln in text.lines(Path(entry.path), label)]
            for number, member in enumerate(members, 1):
                if "/" in member or "\\" in member or "\x00" in member or member in (".", "..") or len(member) > 200:
                    raise InvalidInput(label, f"expected an image id, got {member[:80]!r}", f"line {number}")
            splits[stem] = members
    if {"train", "val"} <= splits.keys():
        splits.pop("trainval", None)  # the union of the two
    return splits or {"all": _stems(src)}


def parse_xml(path: Path, label: str) -> dict[str, Any]:
    """The parts of a VOC XML we use, with element paths in errors."""
    try:
        root = ElementTree.parse(path).getroot()
    except FileNotFoundError:
        raise InvalidInput(label, "annotation file is missing") from None
    except ElementTree.ParseError as e:
        raise InvalidInput(label, f"malformed XML ({e})") from None
    except OSError as e:
        raise InvalidInput(label, f"unreadable ({e.strerror})") from None
    out: dict[str, Any] = {"filename": root.findtext("filename"), "objects": []}
    size = root.find("size")
    if size is not None:
        try:
            out["size"] = (int(size.findtext("width") or 0), int(size.findtext("height") or 0))
        except ValueError:
            raise InvalidInput(label, "expected integers", "annotation/size") from None
    for i, ob in enumerate(root.findall("object"), 1):
        where = f"annotation/object[{i}]"
        name = (ob.findtext("name") or "").strip()
        if not name:
            raise InvalidInput(label, "object without a name", f"{where}/name")
        box = ob.find("bndbox")
        coords = None
        if box is not None:
            try:
                coords = [float(box.findtext(k) or "") for k in ("xmin", "ymin", "xmax", "ymax")]
            except ValueError:
                raise InvalidInput(label, "expected numbers xmin, ymin, xmax, ymax", f"{where}/bndbox") from None
        flags = [k for k in FLAG_TAGS if (ob.findtext(k) or "0").strip() in ("1", "true")]
        pose = (ob.findtext("pose") or "").strip()
        out["objects"].append({"name": name, "box": coords, "flags": flags,
                               "pose": pose if pose and pose != "Unspecified" else None})
    return out


def read(src: Path, session: ImportSession, dataset: str | None = None) -> dict[str, int]:
    splits = _splits(src)
    parsed: dict[str, dict[str, Any]] = {}
    kinds: dict[str, set[str]] = defaultdict(set)
    for stem in sorted({s for members in splits.values() for s in members}):
        try:
            parsed[stem] = info = parse_xml(src / "Annotations" / f"{stem}.xml", f"Annotations/{stem}.xml")
        except InvalidInput as e:
            session.reject(e)
            continue
        seg = (src / "SegmentationObject" / f"{stem}.png").is_file() or (src / "SegmentationClass" / f"{stem}.png").is_file()
        for ob in info["objects"]:
            kinds[ob["name"]].add("rectangle")
            if seg:
                kinds[ob["name"]].add("bitmap")
    classes = [geo.meta_class(name, shapes.pop() if len(shapes) == 1 else "any", i)
               for i, (name, shapes) in enumerate(sorted(kinds.items()))]
    tags = [{"name": k, "value_type": "none"} for k in FLAG_TAGS] + [{"name": "pose", "value_type": "any_string"}]
    session.set_meta({"classes": classes, "tags": tags, "projectType": "images"}, "Annotations")
    for split, members in splits.items():
        target = f"{dataset}/{split}" if dataset and len(splits) > 1 else dataset or split
        session.add_dataset(target)
        for stem in members:
            info = parsed.get(stem)
            if info is None:
                if stem not in parsed and not (src / "Annotations" / f"{stem}.xml").exists():
                    session.reject(InvalidInput(f"ImageSets/Main/{split}.txt", f"{stem}: no Annotations/{stem}.xml"))
                continue
            try:
                image = walk.contained(src / "JPEGImages", info["filename"] or f"{stem}.jpg", f"Annotations/{stem}.xml",
                                       "annotation/filename")
            except InvalidInput as e:
                session.reject(e)
                continue
            if not image.is_file():
                image = src / "JPEGImages" / f"{stem}.jpg"
            obj_png = src / "SegmentationObject" / f"{stem}.png"
            cls_png = src / "SegmentationClass" / f"{stem}.png"
            builder = functools.partial(build_annotation, f"Annotations/{stem}.xml", info,
                                        str(obj_png) if obj_png.is_file() else None,
                                        str(cls_png) if cls_png.is_file() else None)
            session.add_item(target, image.name, str(image), ann=builder, label=f"JPEGImages/{image.name}")
    return {}


def build_annotation(label: str, info: dict[str, Any], obj_png: str | None, cls_png: str | None,
                     width: int, height: int) -> tuple[dict[str, Any], dict[str, int]]:
    if info.get("size") and info["size"] != (width, height) and info["size"] != (0, 0):
        w, h = info["size"]
        raise InvalidInput(label, f"says {w}x{h} but the image is {width}x{height}", "annotation/size")
    notes: Counter[str] = Counter()
    clip = geo.Clipper(notes)
    objects = []
    for ob in info["objects"]:
        tags = [{"name": k, "value": None} for k in ob["flags"]]
        if ob["pose"]:
            tags.append({"name": "pose", "value": ob["pose"]})
        if ob["box"] is not None:
            x0, y0, x1, y1 = ob["box"]
            (left, top), (right, bottom) = clip.points([[x0 - 1, y0 - 1], [x1 - 1, y1 - 1]], width, height)
            objects.append(geo.rectangle(ob["name"], left, top, right, bottom, tags))
    if obj_png is not None:
        indices = _png_indices(obj_png, width, height, label)
        for i, ob in enumerate(info["objects"], 1):
            bm = geo.bitmap(ob["name"], indices == i)
            if bm is not None:
                objects.append(bm)
    elif cls_png is not None:
        indices = _png_indices(cls_png, width, height, label)
        names = {ob["name"] for ob in info["objects"]}
        for value in np.unique(indices):
            if value in (0, 255):
                continue
            name = VOC_CLASSES[value] if value < len(VOC_CLASSES) else str(value)
            if name not in names:
                notes["segmentation classes without an object skipped"] += 1
                continue
            bm = geo.bitmap(name, indices == value)
            if bm is not None:
                objects.append(bm)
    return {"description": "", "size": {"height": height, "width": width}, "tags": [], "objects": objects}, dict(notes)


def _png_indices(path: str, width: int, height: int, label: str) -> np.ndarray:
    img = open_for_decoding(path, os.path.basename(path))
    if img.size != (width, height):
        raise InvalidInput(os.path.basename(path), f"mask is {img.size[0]}x{img.size[1]}, image {width}x{height}")
    if img.mode not in ("P", "L"):
        raise InvalidInput(os.path.basename(path), f"expected a palette or gray PNG, got mode {img.mode}")
    return np.array(decode(img, os.path.basename(path)))


# -- export --------------------------------------------------------------------------------------
def voc_palette() -> list[int]:
    """The VOC color map (bit-interleaved), index 255 white for boundaries."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    pal[255 * 3:] = [224, 224, 192]
    return pal


def write(store: Store, project: str, dest: Path) -> dict[str, int]:
    """VOC2012 layout: an XML per image with every object's box (shapes other than
    rectangles are converted to their box, counted), ImageSets/Main/<dataset>.txt, and
    SegmentationObject / SegmentationClass PNGs for images with bitmaps or polygons."""
    if dest.exists() and any(dest.iterdir()):
        raise AlreadyExists(f"{dest} exists and is not empty")
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    meta = store.ns.project(project).meta
    class_index = {c["title"]: i + 1 for i, c in enumerate(c for c in meta.get("classes", []) if c["shape"] != "graph")}
    counts: Counter[str] = Counter()
    palette = voc_palette()
    for dataset in store.ns.datasets(project):
        members = []
        for name, item in store.ns.items(project, dataset):
            stem = Path(name).stem
            members.append(stem)
            geo.export_media(store, item.media, dest / "JPEGImages" / name)
            ann = store.read_json(item.ann, f"{dataset}/ann/{name}.json")
            objects = [ob for ob in ann.get("objects", []) if ob["classTitle"] in class_index]
            counts["graphs skipped (VOC has no keypoints)"] += len(ann.get("objects", [])) - len(objects)
            entries = _pair_masks(objects)
            _write_xml(dest / "Annotations" / f"{stem}.xml", name, item.width, item.height, entries, counts)
            if any(shape is not None for _ob, shape in entries):
                check_pixels(item.width, item.height, f"{dataset}/{name}")
                obj_img = np.zeros((item.height, item.width), np.uint8)
                cls_img = np.zeros((item.height, item.width), np.uint8)
                for i, (_ob, shape) in enumerate(entries, 1):
                    if shape is not None:
                        mask = geo.full_mask(shape, item.width, item.height) if shape["geometryType"] == "bitmap" \
                            else geo.polygon_mask(shape, item.width, item.height)
                        obj_img[mask] = i
                        cls_img[mask] = class_index[shape["classTitle"]]
                for folder, arr in (("SegmentationObject", obj_img), ("SegmentationClass", cls_img)):
                    (dest / folder).mkdir(exist_ok=True)
                    png = Image.fromarray(arr, mode="L").convert("P")
                    png.putpalette(palette)
                    png.save(dest / folder / f"{stem}.png")
                counts["segmentation masks"] += 1
            counts["images"] += 1
            counts["objects"] += len(entries)
        (dest / "ImageSets" / "Main" / f"{dataset.replace('/', '_')}.txt").write_text("".join(f"{m}\n" for m in members))
    return dict(counts)


def _pair_masks(objects: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """XML objects with the mask (bitmap or polygon) that goes with each. A mask whose box
    matches a rectangle of its class within 2 px is that rectangle's (as VOC's own objects
    come in: box plus mask); any other mask is an object of its own."""
    entries: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    free: list[int] = []  # entries holding a rectangle with no mask yet
    for ob in objects:
        if ob.get("geometryType") not in ("bitmap", "polygon"):
            entries.append((ob, None))
            if ob.get("geometryType") == "rectangle":
                free.append(len(entries) - 1)
            continue
        box = geo.bbox(ob)
        match = next((i for i in free if entries[i][0]["classTitle"] == ob["classTitle"] and box is not None
                      and all(abs(a - b) <= 2 for a, b in zip(geo.bbox(entries[i][0]) or (), box))), None)
        if match is None:
            entries.append((ob, ob))
        else:
            free.remove(match)
            entries[match] = (entries[match][0], ob)
    return entries


def _write_xml(path: Path, filename: str, width: int, height: int,
               entries: list[tuple[dict[str, Any], dict[str, Any] | None]], counts: Counter[str]) -> None:
    root = ElementTree.Element("annotation")
    ElementTree.SubElement(root, "folder").text = "JPEGImages"
    ElementTree.SubElement(root, "filename").text = filename
    size = ElementTree.SubElement(root, "size")
    for key, value in (("width", width), ("height", height), ("depth", 3)):
        ElementTree.SubElement(size, key).text = str(value)
    ElementTree.SubElement(root, "segmented").text = str(int(any(shape for _ob, shape in entries)))
    for ob, shape in entries:
        box = geo.bbox(ob) or (0.0, 0.0, 0.0, 0.0)
        if ob.get("geometryType") not in ("rectangle", "bitmap", "polygon"):
            counts[f"{ob.get('geometryType')}s written as boxes"] += 1
        if shape is not None and shape.get("geometryType") == "polygon":
            counts["polygons written as segmentation masks"] += 1
        node = ElementTree.SubElement(root, "object")
        ElementTree.SubElement(node, "name").text = ob["classTitle"]
        tags = {t.get("name"): t.get("value") for t in ob.get("tags", [])}
        ElementTree.SubElement(node, "pose").text = str(tags.get("pose") or "Unspecified")
        for flag in FLAG_TAGS:
            ElementTree.SubElement(node, flag).text = "1" if flag in tags else "0"
        bnd = ElementTree.SubElement(node, "bndbox")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), box):
            ElementTree.SubElement(bnd, key).text = str(round(value + 1, 2))
    ElementTree.indent(root)
    ElementTree.ElementTree(root).write(path, encoding="utf-8", xml_declaration=False)
