"""Draw an item's annotation over its image (class colors, outlines, translucent masks,
keypoint graphs, tag text), and contact sheets of a dataset, with Pillow: to see at a
glance that a conversion is right."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cas.errors import InvalidInput
from cas.model.media import check_pixels, decode, open_for_decoding
from cas.store import Store

from . import geometry as geo

FILL_ALPHA = 70
MASK_ALPHA = 110


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _tag_text(tags: list[dict[str, Any]]) -> str:
    return ", ".join(t["name"] if t.get("value") is None else f"{t['name']}={t['value']}" for t in tags)


def render_item(store: Store, project: str, dataset: str, name: str) -> Image.Image:
    item = store.ns.item(project, dataset, name)
    record = store.ns.project(project)
    if record.project_type != "images":
        raise InvalidInput(f"{project}/{dataset}/{name}", "cas render draws image items; this is a video project")
    classes = {c["title"]: c for c in record.meta.get("classes", [])}
    label = f"{project}/{dataset}/{name}"
    check_pixels(item.width, item.height, label)  # before a byte is read: the header may lie
    image = decode(open_for_decoding(store.read_bytes(item.media), label), label, oriented=True)
    base = image.convert("RGBA")
    ann = store.read_json(item.ann, f"{dataset}/ann/{name}.json")
    return draw_annotation(base, ann, classes, label).convert("RGB")


def draw_annotation(base: Image.Image, ann: dict[str, Any], classes: dict[str, dict[str, Any]],
                    label: str = "annotation") -> Image.Image:
    width, height = base.size
    line_w = max(2, round(max(width, height) / 300))
    font = _font(max(11, round(max(width, height) / 45)))
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    labels = []
    for ob in ann.get("objects", []):
        cls = classes.get(ob.get("classTitle"), {})
        r, g, b = _rgb(cls.get("color", "#FF0000"))
        gtype = ob.get("geometryType")
        if gtype == "bitmap":
            mask = geo.full_mask(ob, width, height, label)
            layer = Image.new("RGBA", base.size, (r, g, b, MASK_ALPHA))
            overlay.paste(layer, (0, 0), Image.fromarray((mask * 255).astype(np.uint8), mode="L"))
        elif gtype == "graph":
            nodes = {k: tuple(v["loc"]) for k, v in ob.get("nodes", {}).items()}
            for edge in cls.get("geometry_config", {}).get("edges", []):
                if edge.get("src") in nodes and edge.get("dst") in nodes:
                    draw.line([nodes[edge["src"]], nodes[edge["dst"]]], fill=(r, g, b, 255), width=line_w)
            rad = line_w * 2
            for x, y in nodes.values():
                draw.ellipse([x - rad, y - rad, x + rad, y + rad], fill=(r, g, b, 255), outline=(0, 0, 0, 255))
        else:
            pts = [tuple(p) for p in ob.get("points", {}).get("exterior", [])]
            if gtype == "rectangle" and len(pts) == 2:
                draw.rectangle([pts[0], pts[1]], outline=(r, g, b, 255), width=line_w)
            elif gtype == "polygon" and len(pts) >= 3:
                draw.polygon(pts, fill=(r, g, b, FILL_ALPHA), outline=(r, g, b, 255), width=line_w)
                for hole in ob["points"].get("interior", []):
                    draw.polygon([tuple(p) for p in hole], fill=(0, 0, 0, 0), outline=(r, g, b, 255))
            elif gtype == "line" and len(pts) >= 2:
                draw.line(pts, fill=(r, g, b, 255), width=line_w, joint="curve")
            elif gtype == "point" and pts:
                x, y = pts[0]
                rad = line_w * 3
                draw.ellipse([x - rad, y - rad, x + rad, y + rad], outline=(r, g, b, 255), width=line_w)
        box = geo.bbox(ob)
        if box is not None:
            text = ob.get("classTitle", "?") + (f" [{_tag_text(ob['tags'])}]" if ob.get("tags") else "")
            labels.append((box[0], box[1], text, (r, g, b)))
    for x, y, text, rgb in labels:  # text last, above every shape
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        y = max(0, y - (bottom - top) - 4)
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        draw.rectangle([left - 2, top - 2, right + 2, bottom + 2], fill=(*rgb, 200))
        draw.text((x, y), text, font=font, fill=(0, 0, 0, 255) if sum(rgb) > 380 else (255, 255, 255, 255))
    if ann.get("tags"):
        text = _tag_text(ann["tags"])
        left, top, right, bottom = draw.textbbox((4, 4), text, font=font)
        draw.rectangle([0, 0, right + 6, bottom + 6], fill=(0, 0, 0, 170))
        draw.text((4, 4), text, font=font, fill=(255, 255, 255, 255))
    return Image.alpha_composite(base, overlay)


def contact_sheet(store: Store, project: str, dataset: str, count: int, thumb: int = 320) -> tuple[Image.Image, int]:
    """The first `count` items of a dataset, rendered, in a grid; returns (sheet, items drawn)."""
    names = []
    for name, _item in store.ns.items(project, dataset):
        names.append(name)
        if len(names) >= count:
            break
    columns = max(1, math.ceil(math.sqrt(len(names) or 1)))
    rows = max(1, math.ceil(len(names) / columns))
    caption = 18
    sheet = Image.new("RGB", (columns * thumb, rows * (thumb + caption)), (32, 32, 32))
    font = _font(12)
    draw = ImageDraw.Draw(sheet)
    for i, name in enumerate(names):
        tile = render_item(store, project, dataset, name)
        tile.thumbnail((thumb, thumb))
        x, y = (i % columns) * thumb, (i // columns) * (thumb + caption)
        sheet.paste(tile, (x + (thumb - tile.width) // 2, y + (thumb - tile.height) // 2))
        draw.text((x + 4, y + thumb + 2), name[:40], font=font, fill=(230, 230, 230))
    return sheet, len(names)
