"""Pascal VOC, in the layouts tools write: `Annotations/*.xml` and `JPEGImages/` (VOC2012,
CVAT Pascal VOC 1.1, Datumaro, the Supervisely SDK under VOCdevkit/VOC/), FiftyOne's
VOCDetectionDataset (`labels/*.xml` and `data/`), and masks without XML (CVAT
Segmentation mask 1.1: `SegmentationClass/`, `SegmentationObject/`, `labelmap.txt`).

Splits: the lists in `ImageSets/Main/` and `ImageSets/Segmentation/` (one dataset each;
a list of `id  1/-1` lines is a per-class list and is skipped), or one dataset `all`.
A list may name an item without an XML (an image without objects, or masks only).

bndbox -> rectangle (VOC's 1-based inclusive pixels become 0-based); difficult,
truncated, occluded -> tags without value, pose -> a string tag. A SegmentationObject
PNG (palette index or VOC colour = the object's position in the XML) turns each object
with pixels into one bitmap of its class; pixels of no XML object become bitmaps of the
class the class mask gives them. With only a SegmentationClass PNG, each class present
becomes one bitmap beside the boxes. Class colours come from `labelmap.txt` (CVAT,
Datumaro: `name:r,g,b::`), `colors.txt` (the SDK: `name r g b`), else the VOC palette.
255 (the boundary, colour 224,224,192) is not part of any mask. The Supervisely SDK
writes `<id>_instance.png` in class colours (read as class masks, as its own reader does)
and `<id>_class.png` with a colour per object and no link to the XML (skipped, counted).
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
from PIL import Image

from cas.errors import InvalidInput
from cas.ingest.session import ImportSession
from cas.model.media import check_pixels, is_image_name
from cas.store import Store

from . import geometry as geo
from . import text, walk
from .contract import Detection, dataset_names, fits, no
from .geometry import voc_palette
from .masks import class_map, distinct_colors, load_mask, pack, packed_colors, unpack
from .output import Progress, UniqueNames, no_progress, writes_folder
from .renames import FILE, Renames, safe_name
from .walk import files

FLAG_TAGS = ("difficult", "truncated", "occluded")
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
BOUNDARY = (224, 224, 192)
READS = ("boxes", "masks", "tags")
WRITES = ("boxes", "masks", "tags")
LAYOUTS = ("Pascal VOC: Annotations/ and JPEGImages/ (VOC2012, CVAT, Datumaro, the SDK), "
           "FiftyOne labels/ and data/, CVAT segmentation masks")
LOOKS_FOR = "Pascal VOC dataset (Annotations/ and JPEGImages/, labels/ and data/, or Segmentation*/ with JPEGImages/)"
SDK_CLASS_MASKS = "Supervisely SDK _class masks skipped (a colour per object, not linked to the XML)"


class Layout:
    """Where a VOC dataset keeps its parts, and its images by name and by stem."""

    def __init__(self, src: Path) -> None:
        self.src = src
        fiftyone = (src / "data").is_dir() and (src / "labels").is_dir() and not (src / "JPEGImages").is_dir()
        self.ann_dir = src / ("labels" if fiftyone else "Annotations")
        self.img_dir = src / ("data" if fiftyone else "JPEGImages")
        self.images = {e.name: Path(e.path) for e in files(str(self.img_dir))} if self.img_dir.is_dir() else {}
        self.by_stem: dict[str, Path] = {}
        for name, path in self.images.items():
            if is_image_name(name):
                self.by_stem.setdefault(os.path.splitext(name)[0], path)
        self.xml_stems = sorted(e.name[:-4] for e in files(str(self.ann_dir)) if e.name.endswith(".xml")) \
            if self.ann_dir.is_dir() else []
        self.xml_set = set(self.xml_stems)
        self.colors = _class_colors(src)

    def xml(self, item_id: str) -> Path | None:
        """The XML of an id."""
        for stem in _stems(item_id):
            path = self.ann_dir / f"{stem}.xml"
            if path.is_file():
                return path
        return None

    def knows(self, item_id: str) -> bool:
        """Whether an XML or an image answers to `item_id`."""
        return any(stem in self.by_stem or stem in self.images or stem in self.xml_set for stem in _stems(item_id))

    def image(self, item_id: str, filename: str | None, label: str) -> Path | None:
        """The image of an item: the XML's filename (with or without extension), else by id."""
        if filename:
            path = walk.contained(self.img_dir, filename, label, "annotation/filename")
            if path.is_file():
                return path
            if os.path.basename(filename) in self.by_stem:
                return self.by_stem[os.path.basename(filename)]
        return self.images.get(item_id) or self.by_stem.get(item_id) or self.by_stem.get(os.path.splitext(item_id)[0])

    def masks(self, item_id: str) -> tuple[str | None, str | None, bool]:
        """(object mask, class mask, written by the Supervisely SDK) of an item. The SDK's
        `_instance` PNG holds class colours, so it is the class mask (as the SDK's own reader
        takes it); its `_class` PNG, a colour per object with no link to the XML, is not used."""
        obj, sdk = self._mask("SegmentationObject", "_instance", item_id)
        if sdk:
            return None, obj, True
        return obj, self._mask("SegmentationClass", "_class", item_id)[0], False

    def _mask(self, folder: str, sdk_suffix: str, item_id: str) -> tuple[str | None, bool]:
        for stem in _stems(item_id):
            for suffix in ("", sdk_suffix):
                path = self.src / folder / f"{stem}{suffix}.png"
                if path.is_file():
                    return str(path), bool(suffix)
        return None, False


def _stems(item_id: str) -> list[str]:
    """The file stems an id may stand for: itself, and without an image's extension (the
    SDK's lists write `street_001.jpg`)."""
    return [item_id, os.path.splitext(item_id)[0]] if is_image_name(item_id) else [item_id]


def _class_colors(src: Path) -> dict[tuple[int, int, int], str] | None:
    """Class colours from labelmap.txt or the SDK's colors.txt; None: the VOC palette."""
    if (src / "labelmap.txt").is_file():
        return class_map(src)[1]
    if (src / "colors.txt").is_file():
        colors = {}
        for number, line in enumerate(text.lines(src / "colors.txt", "colors.txt"), 1):
            try:
                *name, r, g, b = line.split()
                colors[(int(r), int(g), int(b))] = " ".join(name)
            except ValueError:
                raise InvalidInput("colors.txt", f"expected 'name r g b', got {line[:80]!r}",
                                   f"line {number}") from None
        return colors
    return None


def detect(src: Path) -> Detection:
    if src.is_dir() and (src / "JPEGImages").is_dir():
        parts = ("Annotations", "SegmentationClass", "SegmentationObject")
        beside = next((d for d in parts if (src / d).is_dir()), None)
        if beside:
            return fits(f"JPEGImages/ and {beside}/")
    if src.is_dir() and (src / "data").is_dir() and (src / "labels").is_dir() and \
            any(e.name.endswith(".xml") for e in files(str(src / "labels"))):
        return fits("data/ and labels/*.xml (FiftyOne)")
    return no("no JPEGImages/ with Annotations/ or Segmentation*/")


def count(src: Path) -> int:
    return sum(len(members) for members in _splits(Layout(src)).values())


def _splits(layout: Layout) -> dict[str, list[str]]:
    splits: dict[str, list[str]] = {}
    for sub in ("Main", "Segmentation"):
        folder = layout.src / "ImageSets" / sub
        if not folder.is_dir():
            continue
        for entry in files(str(folder)):
            if not entry.name.endswith(".txt"):
                continue
            label = f"ImageSets/{sub}/{entry.name}"
            rows = [_list_line(ln, layout) for ln in text.lines(Path(entry.path), label)]
            if rows and all(flag is not None for _member, flag in rows):
                continue  # a per-class list (aeroplane_train.txt: id and 1, -1 or 0)
            members = splits.setdefault(entry.name[:-4], [])
            known = set(members)
            for number, (member, _flag) in enumerate(rows, 1):
                if "/" in member or "\\" in member or "\x00" in member or member in (".", "..") or len(member) > 200:
                    raise InvalidInput(label, f"expected an image id, got {member[:80]!r}", f"line {number}")
                if member not in known:
                    known.add(member)
                    members.append(member)
    if {"train", "val"} <= splits.keys():
        splits.pop("trainval", None)  # the union of the two
    if splits:
        return splits
    ids = set(layout.xml_stems)
    for seg_folder in ("SegmentationObject", "SegmentationClass"):
        if (layout.src / seg_folder).is_dir():
            ids |= {e.name[:-4].removesuffix("_instance").removesuffix("_class")
                    for e in files(str(layout.src / seg_folder)) if e.name.endswith(".png")}
    return {"all": sorted(ids or layout.by_stem)}


def _list_line(line: str, layout: Layout) -> tuple[str, str | None]:
    """(id, flag) of an ImageSets line: `id`, or `id 1` (-1, 0) in a per-class list and in
    the Supervisely SDK's split lists. Ids may hold spaces (the SDK writes
    `train_street scene 02.jpg 1`): a whole line that names a known item is one id."""
    if layout.knows(line):
        return line, None
    head, _sep, flag = line.rpartition(" ")
    if flag in ("1", "-1", "0") and head.strip():
        return head.strip(), flag
    return line, None


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
    layout = Layout(src)
    splits = _splits(layout)
    counts: Counter[str] = Counter()
    parsed: dict[str, tuple[dict[str, Any] | None, tuple[str | None, str | None, bool]]] = {}
    shapes: dict[str, set[str]] = {}
    for item_id in sorted({s for members in splits.values() for s in members}):
        xml = layout.xml(item_id)
        info = None
        if xml is not None:
            try:
                info = parse_xml(xml, os.path.relpath(xml, src))
            except InvalidInput as e:
                session.reject(e)
                continue
        masks = layout.masks(item_id)
        parsed[item_id] = info, masks
        if masks[2]:
            counts[SDK_CLASS_MASKS] += 1
        for ob in (info or {}).get("objects", []):
            shapes.setdefault(ob["name"], set()).update(("rectangle", "bitmap") if any(masks[:2]) else ("rectangle",))
    mask_names = set(layout.colors.values()) if layout.colors is not None else set()
    for name in sorted(mask_names - shapes.keys() - {"background", "neutral"}):
        shapes[name] = {"bitmap"}
    classes = [geo.meta_class(name, kinds.pop() if len(kinds) == 1 else "any", i)
               for i, (name, kinds) in enumerate(sorted(shapes.items()))]
    names = frozenset(shapes)
    tags = [{"name": k, "value_type": "none"} for k in FLAG_TAGS] + [{"name": "pose", "value_type": "any_string"}]
    session.set_meta({"classes": classes, "tags": tags, "projectType": "images"}, os.path.basename(layout.ann_dir))
    session.expect_items(sum(item_id in parsed for members in splits.values() for item_id in members))
    targets = dataset_names(dataset, splits, src.name)
    for split, members in splits.items():
        target = targets[split]
        session.add_dataset(target)
        for item_id in members:
            if item_id not in parsed:
                continue  # its XML was refused above
            info, (obj_png, cls_png, _sdk) = parsed[item_id]
            label = f"{layout.ann_dir.name}/{item_id}.xml"
            try:
                image = layout.image(item_id, info["filename"] if info else None, label)
            except InvalidInput as e:
                session.reject(e)
                continue
            if image is None:
                session.reject(InvalidInput(f"ImageSets/{split}.txt", f"{item_id}: no image in "
                                                                      f"{layout.img_dir.name}/ and no XML naming one"))
                continue
            builder = functools.partial(build_annotation, label, info or {"objects": []}, obj_png, cls_png,
                                        layout.colors, names)
            session.add_item(target, image.name, str(image), ann=builder,
                             label=f"{layout.img_dir.name}/{image.name}")
    return dict(counts)


def build_annotation(label: str, info: dict[str, Any], obj_png: str | None, cls_png: str | None,
                     colors: dict[tuple[int, int, int], str] | None, names: frozenset[str],
                     width: int, height: int) -> tuple[dict[str, Any], dict[str, int]]:
    if info.get("size") and info["size"] != (width, height) and info["size"] != (0, 0):
        w, h = info["size"]
        raise InvalidInput(label, f"says {w}x{h} but the image is {width}x{height}", "annotation/size")
    notes: Counter[str] = Counter()
    clip = geo.Clipper(notes)
    instances = _instance_indices(obj_png, width, height) if obj_png is not None else None
    class_of = _class_names(cls_png, colors, width, height) if cls_png is not None else None
    objects = []
    for i, ob in enumerate(info["objects"], 1):
        tags = [{"name": k, "value": None} for k in ob["flags"]]
        if ob["pose"]:
            tags.append({"name": "pose", "value": ob["pose"]})
        if instances is not None:
            bm = geo.bitmap(ob["name"], instances == i, tags)
            if bm is not None:
                objects.append(bm)
                continue
        if ob["box"] is not None:
            x0, y0, x1, y1 = ob["box"]
            (left, top), (right, bottom) = clip.points([[x0 - 1, y0 - 1], [x1 - 1, y1 - 1]], width, height)
            objects.append(geo.rectangle(ob["name"], left, top, right, bottom, tags))
    if instances is not None:
        present = np.flatnonzero(np.bincount(instances.ravel(), minlength=256))  # np.unique, without a sort
        extra = [int(v) for v in present if 0 < v < 255 and v > len(info["objects"])]
        for value in extra:
            mask = instances == value
            name = _majority(class_of, mask) if class_of is not None else None
            if name is None or name not in names:
                notes["mask instances without an XML object or class skipped"] += 1
                continue
            bm = geo.bitmap(name, mask)
            if bm is not None:
                objects.append(bm)
    elif class_of is not None:
        values, classes = class_of
        for value, name in enumerate(classes):
            if name is None or name in ("background", "neutral"):
                continue
            if name not in names:
                notes["segmentation classes without an object skipped"] += 1
                continue
            bm = geo.bitmap(name, values == value)
            if bm is not None:
                objects.append(bm)
    return {"description": "", "size": {"height": height, "width": width}, "tags": [], "objects": objects}, dict(notes)


@functools.cache
def _voc_index() -> dict[int, int]:
    """VOC palette colour (packed) -> index; the boundary colour is 255."""
    pal = voc_palette()
    return {pack((pal[3 * i], pal[3 * i + 1], pal[3 * i + 2])): i for i in range(255, -1, -1)}


def _instance_indices(path: str, width: int, height: int) -> np.ndarray:
    """Object indices of a SegmentationObject PNG: palette or gray values, or VOC colours (RGB)."""
    img = load_mask(path, width, height, os.path.basename(path))
    if img.mode in ("P", "L"):
        return np.asarray(img)
    packed = packed_colors(img)
    table = _voc_index()
    values = np.unique(packed)
    unknown = [v for v in values.tolist() if v not in table]
    if unknown:
        v = unknown[0]
        raise InvalidInput(os.path.basename(path), f"colour {unpack(v)} is not an object "
                                                   "colour of the VOC palette")
    lookup = np.array([table[v] for v in values.tolist()], np.uint8)
    return lookup[np.searchsorted(values, packed)]


def _class_names(path: str, colors: dict[tuple[int, int, int], str] | None, width: int, height: int
                 ) -> tuple[np.ndarray, list[str | None]]:
    """A SegmentationClass PNG as (per-pixel index into names, names): by the class map's
    colours, else palette index / VOC colour -> VOC class."""
    img = load_mask(path, width, height, os.path.basename(path))
    if colors is None and img.mode in ("P", "L"):
        values = np.asarray(img).astype(np.int32)
        return values, [VOC_CLASSES[v] if v < len(VOC_CLASSES) else None for v in range(int(values.max()) + 1)]
    if colors is not None and img.mode == "L":  # gray: the class map's line order
        ordered = list(colors.values())
        values = np.asarray(img).astype(np.int32)
        return values, [ordered[v] if v < len(ordered) else None for v in range(int(values.max()) + 1)]
    by_color = {pack(k): v for k, v in colors.items()} if colors is not None else \
        {c: VOC_CLASSES[i] for c, i in _voc_index().items() if i < len(VOC_CLASSES)}
    uniques, inverse = distinct_colors(img)
    names: list[str | None] = []
    for v in uniques.tolist():
        if v not in by_color and v not in (0, pack(BOUNDARY)):
            raise InvalidInput(os.path.basename(path), f"colour {unpack(v)} is not in the "
                                                       "class map (labelmap.txt, colors.txt or the VOC palette)")
        names.append(by_color.get(v))
    return inverse, names


def _majority(class_of: tuple[np.ndarray, list[str | None]], mask: np.ndarray) -> str | None:
    values, names = class_of
    counts = np.bincount(values[mask], minlength=len(names))
    return names[int(counts.argmax())] if counts.any() else None


# -- export --------------------------------------------------------------------------------------
@writes_folder
def write(store: Store, project: str, dest: Path, progress: Progress = no_progress) -> dict[str, int]:
    """VOC2012 layout, as torchvision's VOCDetection / VOCSegmentation and Datumaro read it:
    `JPEGImages/<id>.jpg` (other formats re-encoded, counted), an XML per image with one
    object per cas object (shapes other than rectangles, bitmaps and polygons as their
    box, counted; graphs skipped), `ImageSets/Main/<dataset>.txt` (`/` and `_` in the
    name as `-`: Datumaro and others take `<class>_<split>.txt` for a per-class list), and
    for images with bitmaps or polygons SegmentationObject (palette index = the object's
    position in the XML) and SegmentationClass PNGs, listed in
    `ImageSets/Segmentation/<dataset>.txt`, with `labelmap.txt` giving each class's
    colour. Ids are unique across datasets: a clash is renamed `<dataset>-<id>` and counted."""
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    meta = store.ns.project(project).meta
    titles = [c["title"] for c in meta.get("classes", []) if c["shape"] != "graph"]
    class_index = {t: i + 1 for i, t in enumerate(titles)}
    palette = voc_palette()
    (dest / "labelmap.txt").write_text("# label:color_rgb:parts:actions\n" + "".join(
        f"{name}:{palette[3 * i]},{palette[3 * i + 1]},{palette[3 * i + 2]}::\n"
        for i, name in enumerate(["background", *titles])))
    counts: Counter[str] = Counter()
    ids, lists = UniqueNames(by_stem=True), UniqueNames()
    kept = Renames()
    for dataset in store.ns.datasets(project):
        # ids and list names in ASCII without spaces (readers split list lines on whitespace);
        # '_' marks per-class lists to readers, so a list name has none
        flat = lists(safe_name(dataset.replace("/", "-")).replace("_", "-"))
        kept.dataset(dataset)
        members, segmented = [], []
        for name, item in store.ns.items(project, dataset):
            stem = Path(ids(safe_name(name), f"{flat}-{safe_name(name)}")).stem
            kept.item(f"JPEGImages/{stem}.jpg", dataset, name)
            note = geo.export_image(store, item, dest / "JPEGImages" / f"{stem}.jpg", as_jpeg=True)
            if note:
                counts[note] += 1
            ann = store.read_json(item.ann, f"{dataset}/ann/{name}.json")
            objects = [ob for ob in ann.get("objects", []) if ob["classTitle"] in class_index]
            if len(objects) < len(ann.get("objects", [])):
                counts["graphs skipped (VOC has no keypoints)"] += len(ann.get("objects", [])) - len(objects)
            masks = _object_masks(objects, item.width, item.height, f"{dataset}/{name}")
            _write_xml(dest / "Annotations" / f"{stem}.xml", f"{stem}.jpg", item.width, item.height, objects, masks,
                       counts)
            if masks:
                obj_img = np.zeros((item.height, item.width), np.uint8)
                cls_img = np.zeros((item.height, item.width), np.uint8)
                for i, ob in enumerate(objects, 1):
                    if i in masks:
                        obj_img[masks[i]] = i
                        cls_img[masks[i]] = class_index[ob["classTitle"]]
                for folder, arr in (("SegmentationObject", obj_img), ("SegmentationClass", cls_img)):
                    (dest / folder).mkdir(exist_ok=True)
                    png = Image.fromarray(arr, mode="L").convert("P")
                    png.putpalette(palette)
                    png.save(dest / folder / f"{stem}.png")
                segmented.append(stem)
                counts["segmentation masks"] += 1
            members.append(stem)
            counts["images"] += 1
            counts["objects"] += len(objects)
            progress(1)
        (dest / "ImageSets" / "Main" / f"{flat}.txt").write_text("".join(f"{m}\n" for m in members))
        if segmented:
            (dest / "ImageSets" / "Segmentation").mkdir(exist_ok=True)
            (dest / "ImageSets" / "Segmentation" / f"{flat}.txt").write_text("".join(f"{m}\n" for m in segmented))
    kept.save(dest)
    renamed = sum(1 for path, (_dataset, name) in kept.items.items() if Path(path).stem != Path(name).stem)
    if renamed:
        counts[f"items given other ids (not ASCII, a space, or an id taken; {FILE} keeps the names)"] += renamed
    return dict(counts)


def _object_masks(objects: list[dict[str, Any]], width: int, height: int, label: str) -> dict[int, np.ndarray]:
    """Masks of the bitmaps and polygons among `objects`, by 1-based position."""
    masks = {}
    for i, ob in enumerate(objects, 1):
        if ob.get("geometryType") in ("bitmap", "polygon"):
            check_pixels(width, height, label)
            masks[i] = geo.full_mask(ob, width, height, label) if ob["geometryType"] == "bitmap" \
                else geo.polygon_mask(ob, width, height, label)
    if len(objects) > 254 and masks:
        raise InvalidInput(label, f"{len(objects)} objects: a VOC object mask holds at most 254")
    return masks


def _write_xml(path: Path, filename: str, width: int, height: int, objects: list[dict[str, Any]],
               masks: dict[int, np.ndarray], counts: Counter[str]) -> None:
    root = ElementTree.Element("annotation")
    ElementTree.SubElement(root, "folder").text = "JPEGImages"
    ElementTree.SubElement(root, "filename").text = filename
    size = ElementTree.SubElement(root, "size")
    for key, dim in (("width", width), ("height", height), ("depth", 3)):
        ElementTree.SubElement(size, key).text = str(dim)
    ElementTree.SubElement(root, "segmented").text = str(int(bool(masks)))
    for i, ob in enumerate(objects, 1):
        gtype = ob.get("geometryType")
        box = geo.mask_bbox(masks[i]) if i in masks else geo.bbox(ob)
        if gtype not in ("rectangle", "bitmap", "polygon"):
            counts[f"{gtype}s written as boxes"] += 1
        if gtype == "polygon":
            counts["polygons written as segmentation masks"] += 1
        node = ElementTree.SubElement(root, "object")
        ElementTree.SubElement(node, "name").text = ob["classTitle"]
        tags = {t.get("name"): t.get("value") for t in ob.get("tags", [])}
        ElementTree.SubElement(node, "pose").text = str(tags.get("pose") or "Unspecified")
        for flag in FLAG_TAGS:
            ElementTree.SubElement(node, flag).text = "1" if flag in tags else "0"
        bnd = ElementTree.SubElement(node, "bndbox")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), box or (0.0, 0.0, 0.0, 0.0)):
            ElementTree.SubElement(bnd, key).text = str(round(value + 1, 2))
    ElementTree.indent(root)
    ElementTree.ElementTree(root).write(path, encoding="utf-8", xml_declaration=False)
