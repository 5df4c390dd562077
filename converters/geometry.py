"""Supervisely geometries built and read by the converters: rectangles, polygons, points,
graphs and bitmaps (base64 of zlib of a PNG, as the Supervisely SDK writes them), plus
clipping to the image with a count of what was clipped."""

from __future__ import annotations

import base64
import functools
import io
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
from PIL import Image

from cas.model.annotation import inflate_bitmap
from cas.model.media import check_pixels, decode, open_for_decoding, orientation

# Distinct, readable class colors (a fixed cycle, so the same classes get the same colors).
PALETTE = ("#E6194B", "#3CB44B", "#FFE119", "#4363D8", "#F58231", "#911EB4", "#46F0F0", "#F032E6",
           "#BCF60C", "#FABEBE", "#008080", "#E6BEFF", "#9A6324", "#FFFAC8", "#800000", "#AAFFC3",
           "#808000", "#FFD8B1", "#000075", "#808080")


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_points(pts: Any) -> TypeGuard[list[list[float]]]:
    """A JSON list of [x, y] number pairs."""
    return isinstance(pts, list) and all(isinstance(p, list) and len(p) == 2 and all(map(is_number, p)) for p in pts)


class Clipper:
    """Clips coordinates into [0, width] x [0, height]; counts the objects it changed."""

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts

    def points(self, pts: list[list[float]], width: int, height: int) -> list[list[float]]:
        w, h = float(width), float(height)
        out, clipped = [], False
        for x, y in pts:
            cx, cy = min(max(x, 0.0), w), min(max(y, 0.0), h)
            clipped = clipped or (cx, cy) != (x, y)
            out.append([round(cx, 2), round(cy, 2)])
        if clipped:
            self.counts["objects clipped to the image"] += 1
        return out


def obj(title: str, shape: str, tags: list[dict[str, Any]] | None = None, **geometry: Any) -> dict[str, Any]:
    return {"classTitle": title, "geometryType": shape, "tags": tags or [], **geometry}


def rectangle(title: str, left: float, top: float, right: float, bottom: float,
              tags: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return obj(title, "rectangle", tags, points={"exterior": [[left, top], [right, bottom]], "interior": []})


def polygon(title: str, exterior: list[list[float]], interior: list[list[list[float]]] | None = None,
            tags: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return obj(title, "polygon", tags, points={"exterior": exterior, "interior": interior or []})


def point(title: str, x: float, y: float, tags: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return obj(title, "point", tags, points={"exterior": [[x, y]], "interior": []})


def line(title: str, pts: list[list[float]], tags: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return obj(title, "line", tags, points={"exterior": pts, "interior": []})


def graph(title: str, nodes: dict[str, list[float]], tags: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return obj(title, "graph", tags, nodes={k: {"loc": v} for k, v in nodes.items()})


def bitmap(title: str, mask: np.ndarray, tags: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """A bitmap object cropped to the mask's bounding box; None for an empty mask."""
    box = mask_extent(mask)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    return obj(title, "bitmap", tags, bitmap={"data": encode_mask(mask[y0:y1 + 1, x0:x1 + 1]), "origin": [x0, y0]})


def mask_extent(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of a mask's pixels, inclusive; None for an empty mask.
    From its rows' and columns' projections, not from np.nonzero's index arrays."""
    cols = np.flatnonzero(mask.any(axis=0))
    if len(cols) == 0:
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def encode_mask(mask: np.ndarray) -> str:
    """base64(zlib(PNG)) of a boolean mask, a palette PNG whose index 0 is transparent (what
    the Supervisely SDK writes and reads)."""
    img = Image.fromarray(mask.astype(np.uint8), mode="L")
    img.putpalette([0, 0, 0, 255, 255, 255])  # an "L" image becomes "P" (no pixel conversion)
    buf = io.BytesIO()
    img.save(buf, format="PNG", transparency=0)
    return base64.b64encode(zlib.compress(buf.getvalue())).decode()


def decode_mask(data: str, label: str = "bitmap") -> np.ndarray:
    """The boolean mask of a Supervisely bitmap's `data` (palette, gray or alpha PNGs),
    refused over the pixel limit."""
    img = decode(open_for_decoding(inflate_bitmap(data, label), label), label)
    transparency = img.info.get("transparency")
    if img.mode == "P" and isinstance(transparency, int):  # what the SDK (and we) write: one clear index
        return np.array(img) != transparency
    if img.mode == "P" and transparency is None:
        return np.array(img) > 0
    if img.mode in ("1", "L"):
        return np.array(img.convert("L")) > 0
    return np.array(img.convert("RGBA"))[:, :, 3] > 0


def full_mask(bitmap_obj: dict[str, Any], width: int, height: int, label: str = "bitmap") -> np.ndarray:
    """An object's bitmap placed on a width x height canvas (cut at the edges)."""
    check_pixels(width, height, label)
    mask = decode_mask(bitmap_obj["bitmap"]["data"], label)
    x0, y0 = bitmap_obj["bitmap"]["origin"]
    canvas = np.zeros((height, width), dtype=bool)
    h, w = mask.shape
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
    if xb > xa and yb > ya:
        canvas[ya:yb, xa:xb] = mask[ya - y0:yb - y0, xa - x0:xb - x0]
    return canvas


def mask_bbox(mask: np.ndarray, x0: int = 0, y0: int = 0) -> tuple[float, float, float, float] | None:
    """(left, top, right, bottom) of a mask's pixels, shifted by its origin."""
    box = mask_extent(mask)
    if box is None:
        return None
    left, top, right, bottom = box
    return x0 + float(left), y0 + float(top), x0 + float(right) + 1, y0 + float(bottom) + 1


def polygon_mask(ob: dict[str, Any], width: int, height: int, label: str = "polygon") -> np.ndarray:
    """A polygon object rasterized (holes cut out) on a width x height canvas."""
    from PIL import ImageDraw
    check_pixels(width, height, label)
    img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(img)
    draw.polygon([tuple(p) for p in ob["points"]["exterior"]], fill=1)
    for hole in ob["points"].get("interior", []):
        draw.polygon([tuple(p) for p in hole], fill=0)
    return np.array(img, dtype=bool)


def bbox(ob: dict[str, Any]) -> tuple[float, float, float, float] | None:
    """(left, top, right, bottom) of any geometry."""
    gtype = ob.get("geometryType")
    if gtype == "bitmap":
        return mask_bbox(decode_mask(ob["bitmap"]["data"]), *ob["bitmap"]["origin"])
    if gtype == "graph":
        pts = [n["loc"] for n in ob["nodes"].values()]
    else:
        pts = ob["points"]["exterior"]
    if not pts:
        return None
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return min(xs), min(ys), max(xs), max(ys)


def counted_box(ob: dict[str, Any], counts: Counter[str], written_as: str = "boxes"
                ) -> tuple[float, float, float, float] | None:
    """An object's box for a format that holds boxes only; the conversion, or an empty
    object skipped, counted."""
    box = bbox(ob)
    if box is None:
        counts["empty objects skipped"] += 1
    elif ob.get("geometryType") != "rectangle":
        counts[f"{ob.get('geometryType')}s written as {written_as}"] += 1
    return box


def polygon_area(pts: list[list[float]]) -> float:
    """Shoelace area of a ring."""
    a = 0.0
    for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1]):
        a += x1 * y2 - x2 * y1
    return abs(a) / 2


def export_media(store: Any, blob: Any, path: Path) -> None:
    """Write a blob into a fresh export folder: created exclusively (an export never
    overwrites), in one go; no temp file and rename, which cost more than the copy itself
    for small images."""
    with open(path, "xb") as out:
        store.copy_to(blob, out)


ROTATED = "JPEGs turned upright by their EXIF orientation (pixels as annotated)"
AS_JPEG = "images re-encoded as JPEG (quality 95)"
JPEG_QUALITY = 95


def export_image(store: Any, item: Any, path: Path, as_jpeg: bool = False) -> str | None:
    """Write an item's image for a training format, byte-identical where readers agree on
    its pixels. A JPEG with an EXIF orientation is written turned upright (annotations are
    in shown coordinates, and PIL-based readers such as torchvision's ignore the tag);
    with `as_jpeg` (VOC's JPEGImages) other formats are re-encoded. Returns the note to
    count, if any."""
    if item.mime != "image/jpeg" and not as_jpeg:
        export_media(store, item.media, path)
        return None
    data = store.read_bytes(item.media)
    label = path.name
    img = open_for_decoding(data, label)
    turned = orientation(img) != 1
    if img.format == "JPEG" and not turned:
        with open(path, "xb") as out:
            out.write(data)
        return None
    pixels = decode(img, label, oriented=True)
    fmt = "JPEG" if as_jpeg or img.format == "JPEG" else img.format
    if fmt == "JPEG" and pixels.mode not in ("RGB", "L"):
        pixels = pixels.convert("RGB")
    with open(path, "xb") as out:
        pixels.save(out, fmt, **({"quality": JPEG_QUALITY} if fmt == "JPEG" else {}))
    return ROTATED if turned else AS_JPEG


def meta_class(title: str, shape: str, index: int, geometry_config: dict[str, Any] | None = None) -> dict[str, Any]:
    cls: dict[str, Any] = {"title": title, "shape": shape, "color": color(index)}
    if geometry_config:
        cls["geometry_config"] = geometry_config
    return cls


@functools.cache
def voc_palette() -> tuple[int, ...]:
    """The VOC color map (bit-interleaved, 256 r, g, b triples), index 255 the boundary colour."""
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
    return tuple(pal)
