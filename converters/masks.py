"""Segmentation masks beside images, matched by file stem:

- one binary mask per class folder: `images/<name>.jpg`, `masks/<class>/<name>.png`
  (any nonzero pixel belongs to the class);
- "machine" masks: `images/<name>.jpg`, `masks/<name>.png` whose pixel values are class
  indices (gray or palette PNG) or class colors (RGB), with a class map: `labelmap.txt`
  (CVAT: `name:r,g,b::` per line; Datumaro leaves the colour out: the VOC palette's, by
  line) or `classes.txt` (one name per line; the line number is the index). A class named
  `background` (or index 0 without a name) is not an object.

Every class present in an image becomes one bitmap object.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cas.errors import InvalidInput
from cas.ingest.session import ImportSession
from cas.model.media import decode, is_image_name, open_for_decoding

from . import geometry as geo
from . import text
from .contract import Detection, fits, no
from .walk import subdirs, tree_files

BACKGROUND = "background"


READS = ("masks",)
LAYOUTS = ("images/ beside masks/: a mask per image (palette, grey levels or colours), "
           "one folder per class, or a class map")


def detect(src: Path) -> Detection:
    if src.is_dir() and (src / "images").is_dir() and (src / "masks").is_dir():
        return fits("images/ beside masks/")
    return no("no images/ beside masks/")


def _images(src: Path) -> list[Path]:
    return [p for p in tree_files(src / "images") if is_image_name(p.name)]


def count(src: Path) -> int:
    return len(_images(src))


def class_map(src: Path) -> tuple[dict[int, str], dict[tuple[int, int, int], str]]:
    """(index -> name, color -> name) from labelmap.txt or classes.txt (either may be empty)."""
    by_index: dict[int, str] = {}
    by_color: dict[tuple[int, int, int], str] = {}
    labelmap = src / "labelmap.txt"
    if labelmap.is_file():
        for number, line in enumerate(text.read_text(labelmap, "labelmap.txt").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            name, _, rest = line.partition(":")
            if not rest.split(":")[0].strip():  # no colour (Datumaro): the VOC palette's, by line
                pal, k = geo.voc_palette(), len(by_index)
                by_color[(pal[3 * k], pal[3 * k + 1], pal[3 * k + 2])] = name.strip()
                by_index[k] = name.strip()
                continue
            try:
                rgb = tuple(int(v) for v in rest.split(":")[0].split(","))
            except ValueError:
                raise InvalidInput("labelmap.txt", f"expected name:r,g,b::, got {line[:80]!r}",
                                   f"line {number}") from None
            if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
                raise InvalidInput("labelmap.txt", "expected three color values 0-255", f"line {number}")
            by_color[rgb] = name.strip()
            by_index[len(by_index)] = name.strip()
    elif (src / "classes.txt").is_file():
        names = text.lines(src / "classes.txt", "classes.txt")
        by_index = dict(enumerate(names))
    return by_index, by_color


def read(src: Path, session: ImportSession, dataset: str | None = None) -> dict[str, int]:
    masks = src / "masks"
    folders = [e.name for e in subdirs(str(masks))]
    by_index, by_color = class_map(src)
    if folders:
        names = [f for f in folders if f != BACKGROUND]
    elif by_index or by_color:
        names = sorted({n for n in [*by_index.values(), *by_color.values()] if n != BACKGROUND})
    else:
        raise InvalidInput(str(masks), "no class folders, and no labelmap.txt or classes.txt for machine masks")
    session.set_meta({"classes": [geo.meta_class(n, "bitmap", i) for i, n in enumerate(names)], "tags": [],
                      "projectType": "images"}, "masks")
    target = dataset or src.name
    for image in _images(src):
        rel = image.relative_to(src / "images")
        stem = str(rel.with_suffix(""))
        if folders:
            parts = [(name, str(masks / name / f"{stem}.png")) for name in names
                     if (masks / name / f"{stem}.png").is_file()]
            builder = functools.partial(build_from_folders, parts)
        else:
            mask = masks / f"{stem}.png"
            if not mask.is_file():
                session.reject(InvalidInput(f"masks/{stem}.png", f"missing (the mask of images/{rel})"))
                continue
            builder = functools.partial(build_from_machine_mask, str(mask), by_index, by_color)
        name = str(rel).replace(os.sep, "_")
        session.add_item(target, name, str(image), ann=builder, label=f"images/{rel}")
    return {}


def load_mask(path: str, width: int, height: int, label: str | None = None) -> Image.Image:
    """A mask PNG decoded, refused unless it is the image's size; errors name `label` (the path)."""
    label = label or path
    img = open_for_decoding(path, label)
    if img.size != (width, height):
        raise InvalidInput(label, f"mask is {img.size[0]}x{img.size[1]}, the image {width}x{height}")
    return decode(img, label)


def packed_colors(img: Image.Image) -> np.ndarray:
    """Each pixel's colour as one integer r << 16 | g << 8 | b (palette images through their palette)."""
    return pack_rgb(np.asarray(img.convert("RGB"), dtype=np.int32))


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """An array of r, g, b triples (the last axis) as integers r << 16 | g << 8 | b."""
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def distinct_colors(img: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """The distinct colours of a mask, packed and sorted, and each pixel's index into them:
    np.unique(packed_colors(img), return_inverse=True), for a palette image from its
    indices (a count over 256 values rather than a sort of every pixel)."""
    if img.mode != "P":
        packed = packed_colors(img)
        colors, inverse = np.unique(packed, return_inverse=True)
        return colors, inverse.reshape(packed.shape)
    indices = np.asarray(img)
    flat = indices.ravel()
    somewhere = np.zeros(256, np.intp)
    somewhere[flat] = np.arange(len(flat))  # a pixel of each index present: all show its colour
    present = np.flatnonzero(np.bincount(flat, minlength=256))
    rgb = np.asarray(img.convert("RGB"), dtype=np.int32).reshape(-1, 3)[somewhere[present]]
    colors, of_present = np.unique(pack_rgb(rgb), return_inverse=True)
    table = np.zeros(256, np.intp)
    table[present] = of_present
    return colors, table[indices]


def pack(rgb: tuple[int, int, int]) -> int:
    return rgb[0] << 16 | rgb[1] << 8 | rgb[2]


def unpack(value: int) -> tuple[int, int, int]:
    return value >> 16, (value >> 8) & 255, value & 255


def _annotation(objects: list[dict[str, Any]], width: int, height: int) -> dict[str, Any]:
    return {"description": "", "size": {"height": height, "width": width}, "tags": [], "objects": objects}


def build_from_folders(parts: list[tuple[str, str]], width: int, height: int) -> dict[str, Any]:
    objects = []
    for name, path in parts:
        ob = geo.bitmap(name, np.array(load_mask(path, width, height).convert("L")) > 0)
        if ob is not None:
            objects.append(ob)
    return _annotation(objects, width, height)


def build_from_machine_mask(path: str, by_index: dict[int, str], by_color: dict[tuple[int, int, int], str],
                            width: int, height: int) -> dict[str, Any]:
    img = load_mask(path, width, height)
    if img.mode in ("P", "L", "I", "I;16") or not by_color:
        values = np.array(img if img.mode in ("P", "L", "I", "I;16") else img.convert("L"))
        objects = _class_bitmaps(values, by_index.get, lambda v: f"pixel value {v} is not in the class map", path)
    else:
        objects = _class_bitmaps(packed_colors(img), lambda v: by_color.get(unpack(v)),
                                 lambda v: f"color {unpack(v)} is not in labelmap.txt", path)
    return _annotation(objects, width, height)


def _class_bitmaps(values: np.ndarray, name_of: Any, unknown: Any, path: str) -> list[dict[str, Any]]:
    """One bitmap per class value present; 0 (black) without a name is the background."""
    objects = []
    for value in (int(v) for v in np.unique(values)):
        name = name_of(value)
        if name is None:
            if value == 0:
                continue
            raise InvalidInput(path, unknown(value))
        if name != BACKGROUND:
            ob = geo.bitmap(name, values == value)
            if ob is not None:
                objects.append(ob)
    return objects
