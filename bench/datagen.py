"""Deterministic data generators for benchmarks and tests (no dependency on `cas`).

- noise_jpeg: incompressible JPEG of about a given size.
- make_dedup_set: two dataset folders of noise JPEGs with cross-folder byte-identical copies.
- make_tiny_set: many distinct 8x8 PNGs (memory-flatness checks).
- make_sample_project: a small Supervisely-format project with every geometry type.
"""
from __future__ import annotations

import base64
import io
import json
import math
import os
import random
import zlib
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw

JPEG_QUALITY = 85


def _encode_noise(rng: random.Random, w: int, h: int) -> bytes:
    """Baseline (non-progressive) 4:2:0 JPEG of w x h random RGB pixels."""
    im = Image.frombytes("RGB", (w, h), rng.randbytes(w * h * 3))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


@lru_cache(maxsize=1)
def _noise_bytes_per_pixel() -> float:
    """Encoded bytes per pixel for noise at JPEG_QUALITY (calibrated once, deterministic)."""
    return len(_encode_noise(random.Random(1234), 256, 256)) / (256 * 256)


def noise_jpeg(rng: random.Random, target_bytes: int = 100_000) -> bytes:
    """A valid baseline JPEG of random noise, 4:3 aspect, whose size is about target_bytes."""
    pixels = max(64.0, target_bytes / _noise_bytes_per_pixel())
    w = max(8, round(math.sqrt(pixels * 4 / 3) / 8) * 8)
    h = max(8, round(pixels / w))
    return _encode_noise(rng, w, h)


def write_huge_jpeg(path: Path, mib: int) -> int:
    """A valid JPEG header, `mib` MiB of random bulk, then end-of-image; returns its size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(buf, "JPEG")
    with open(path, "wb") as f:
        f.write(buf.getvalue()[:-2])
        chunk = os.urandom(1 << 20)
        for _ in range(mib):
            f.write(chunk)
        f.write(b"\xff\xd9")
    return path.stat().st_size


def make_dedup_set(root: Path, distinct: int = 5000, copies: int = 2500,
                   size: int = 100_000, seed: int = 0) -> dict:
    """Write `distinct` noise JPEGs alternately into root/set_a and root/set_b, plus `copies`
    byte-identical copies (90% of them in the *other* folder). Returns file/byte counts."""
    rng = random.Random(seed)
    root = Path(root)
    sets = [root / "set_a", root / "set_b"]
    for d in sets:
        d.mkdir(parents=True, exist_ok=True)
    originals: list[tuple[int, Path]] = []
    total = 0
    for i in range(distinct):
        side = i % 2
        data = noise_jpeg(rng, size)
        path = sets[side] / f"img_{i:06d}.jpg"
        path.write_bytes(data)
        originals.append((side, path))
        total += len(data)
    unique = total
    if not distinct:
        picks: list[int] = []
    elif copies <= distinct:
        picks = rng.sample(range(distinct), copies)
    else:
        picks = [rng.randrange(distinct) for _ in range(copies)]
    for j, k in enumerate(picks):
        side, src = originals[k]
        dest_side = 1 - side if rng.random() < 0.9 else side
        data = src.read_bytes()  # plain write, never a reflink/clone
        (sets[dest_side] / f"copy_{j:06d}_of_{k:06d}.jpg").write_bytes(data)
        total += len(data)
    return {"files": distinct + len(picks), "bytes": total, "unique_bytes": unique}


def make_tiny_set(root: Path, n: int, seed: int = 0) -> dict:
    """Write n distinct 8x8 random-pixel PNGs into root/tiny/. Returns file/byte counts."""
    rng = random.Random(seed)
    d = Path(root) / "tiny"
    d.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(n):
        px = i.to_bytes(4, "big") + rng.randbytes(8 * 8 * 3 - 4)  # index prefix => distinct
        buf = io.BytesIO()
        Image.frombytes("RGB", (8, 8), px).save(buf, "PNG")
        (d / f"t_{i:07d}.png").write_bytes(buf.getvalue())
        total += buf.tell()
    return {"files": n, "bytes": total, "unique_bytes": total}


# ---------------------------------------------------------------- Supervisely sample project
# Graph template: node id -> (label, [row, col]) in a 100 x 60 box; edges by node id.
_SKELETON = {"n7f3a": ("head", [0, 30]), "n2c91": ("neck", [20, 30]), "n5be0": ("pelvis", [60, 30]),
             "n0d4e": ("left_hand", [45, 5]), "n9a17": ("right_hand", [45, 55]),
             "n3f68": ("left_foot", [100, 15]), "n6c22": ("right_foot", [100, 45])}
_EDGES = [("n7f3a", "n2c91"), ("n2c91", "n0d4e"), ("n2c91", "n9a17"), ("n2c91", "n5be0"),
          ("n5be0", "n3f68"), ("n5be0", "n6c22")]
_CLASSES = [
    {"title": "car", "shape": "rectangle", "color": "#E53935"},
    {"title": "road", "shape": "polygon", "color": "#757575"},
    {"title": "building", "shape": "polygon", "color": "#8D6E63"},
    {"title": "tree", "shape": "bitmap", "color": "#43A047"},
    {"title": "lane", "shape": "line", "color": "#FDD835"},
    {"title": "traffic_light", "shape": "point", "color": "#00ACC1"},
    {"title": "person", "shape": "graph", "color": "#8E24AA", "geometry_config": {
        "nodes": {k: {"label": lab, "loc": loc, "color": "#8E24AA"} for k, (lab, loc) in _SKELETON.items()},
        "edges": [{"src": s, "dst": t, "color": "#CE93D8"} for s, t in _EDGES]}},
]
_TAGS = [
    {"name": "weather", "value_type": "oneof_string", "color": "#1E88E5",
     "values": ["clear", "rain", "fog", "night"]},
    {"name": "occluded", "value_type": "none", "color": "#F4511E"},
    {"name": "confidence", "value_type": "any_number", "color": "#7CB342"},
    {"name": "note", "value_type": "any_string", "color": "#6D4C41"},
]
# (dataset dir, image name, (w, h), night); val/val_002.png gets no ann file.
_LAYOUT = [("train", "street_001.jpg", (640, 480), False), ("train", "street_002.jpg", (800, 600), False),
           ("train", "street_003.png", (640, 480), False),
           ("train/datasets/night", "night_001.jpg", (640, 480), True),
           ("train/datasets/night", "night_002.png", (800, 600), True),
           ("val", "val_001.jpg", (800, 600), False), ("val", "val_002.png", (640, 480), False)]
_NO_ANN = ("val", "val_002.png")
_DUPLICATE = (("train", "street_001.jpg"), ("val", "val_003.jpg"))  # same bytes, other dataset
_ITEM_META = ("val", "val_001.jpg", {"camera": "cam2", "weather": "rain", "frame": 1532})


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def _obj(title: str, shape: str, tags: list[dict], **geometry) -> dict:
    return {"classTitle": title, "geometryType": shape, "description": "", "tags": tags, **geometry}


def _pts(exterior: list[list[int]], interior: list | None = None) -> dict:
    return {"points": {"exterior": exterior, "interior": interior or []}}


def _conf(rng: random.Random) -> dict:
    return {"name": "confidence", "value": round(rng.uniform(0.6, 0.99), 2)}


def _scene(rng: random.Random, w: int, h: int, night: bool) -> tuple[Image.Image, list[dict]]:
    """Draw a street scene and return it with Supervisely objects that trace what was drawn."""
    cx = lambda v: max(0, min(w - 1, int(v)))  # noqa: E731  clamp into [0, W)
    cy = lambda v: max(0, min(h - 1, int(v)))  # noqa: E731
    top, bot = ((10, 12, 40), (45, 45, 70)) if night else \
        ((rng.randint(90, 140), rng.randint(150, 190), 235), (rng.randint(150, 200), 200, 150))
    column = Image.new("RGB", (1, h))
    column.putdata([tuple(round(a + (b - a) * y / (h - 1)) for a, b in zip(top, bot)) for y in range(h)])
    im = column.resize((w, h))
    d = ImageDraw.Draw(im)
    objs: list[dict] = []
    hor = int(h * rng.uniform(0.45, 0.55))
    # building: polygon with a window hole (mask paste keeps the background visible in the hole)
    bx0 = rng.randint(w // 20, w // 4)
    bx1, by0 = bx0 + rng.randint(w // 6, w // 4), rng.randint(h // 10, h // 5)
    ext = [[bx0, hor], [bx0, by0 + 20], [(bx0 + bx1) // 2, by0], [bx1, by0 + 20], [bx1, hor]]
    qx, qy = (bx1 - bx0) // 4, by0 + 40
    hole = [[bx0 + qx, qy], [bx1 - qx, qy], [bx1 - qx, qy + 30], [bx0 + qx, qy + 30]]
    mask = Image.new("L", (w, h), 0)
    md = ImageDraw.Draw(mask)
    md.polygon([tuple(p) for p in ext], fill=255)
    md.polygon([tuple(p) for p in hole], fill=0)
    im.paste(_rgb("#8D6E63"), (0, 0, w, h), mask)
    objs.append(_obj("building", "polygon", [], **_pts(ext, [hole])))
    # road: trapezoid from the bottom edge to the horizon
    mid, half = w // 2 + rng.randint(-w // 20, w // 20), rng.randint(w // 40, w // 20)
    road = [[cx(w * rng.uniform(0.05, 0.2)), h - 1], [mid - half, hor], [mid + half, hor],
            [cx(w * rng.uniform(0.8, 0.95)), h - 1]]
    d.polygon([tuple(p) for p in road], fill=(90, 90, 95) if night else _rgb("#757575"))
    objs.append(_obj("road", "polygon", [], **_pts(road)))
    # lane: centre line of the road
    bot_x = (road[0][0] + road[3][0]) // 2
    lane = [[mid, hor + 4], [cx((mid + bot_x) / 2 + rng.randint(-8, 8)), (hor + h) // 2], [bot_x, h - 2]]
    d.line([tuple(p) for p in lane], fill=_rgb("#FDD835"), width=4, joint="curve")
    objs.append(_obj("lane", "line", [], **_pts(lane)))
    # tree: ellipse canopy as a bitmap (mask PNG -> zlib -> base64, origin = top-left [x, y])
    tw = rng.randint(w // 10, w // 7)
    th = int(tw * 1.3)
    tx, ty = rng.randint(int(w * 0.78), w - tw - 2), max(0, hor - th + rng.randint(0, th // 3))
    tmask = Image.new("1", (tw, th), 0)
    ImageDraw.Draw(tmask).ellipse([0, 0, tw - 1, th - 1], fill=1)
    im.paste(_rgb("#43A047"), (tx, ty, tx + tw, ty + th), tmask)
    png = io.BytesIO()
    tmask.save(png, "PNG")
    data = base64.b64encode(zlib.compress(png.getvalue())).decode("ascii")
    objs.append(_obj("tree", "bitmap", [], bitmap={"data": data, "origin": [tx, ty]}))
    # traffic light: pole + lamp; the point is the lamp centre
    lx, ly = rng.randint(int(w * 0.6), int(w * 0.72)), rng.randint(int(h * 0.12), hor - 40)
    d.line([(lx, ly), (lx, hor + 10)], fill=(40, 40, 40), width=3)
    d.ellipse([lx - 7, ly - 7, lx + 7, ly + 7], fill=(255, 40, 40) if rng.random() < 0.5 else (40, 220, 60))
    objs.append(_obj("traffic_light", "point", [], **_pts([[lx, ly]])))
    # cars: filled rectangles on the road (top-left, bottom-right), inclusive corners
    for _ in range(rng.randint(1, 3)):
        cw = rng.randint(w // 12, w // 7)
        ch = int(cw * 0.6)
        x1, y1 = rng.randint(w // 4, 3 * w // 4 - cw), rng.randint(hor + 20, h - ch - 2)
        d.rectangle([x1, y1, x1 + cw, y1 + ch], fill=_rgb("#E53935"), outline=(20, 20, 20), width=2)
        d.rectangle([x1 + cw // 5, y1 + 4, x1 + 4 * cw // 5, y1 + ch // 3], fill=(170, 210, 230))
        tags = [_conf(rng)] + ([{"name": "occluded", "value": None}] if rng.random() < 0.4 else [])
        objs.append(_obj("car", "rectangle", tags, **_pts([[x1, y1], [x1 + cw, y1 + ch]])))
    # person: skeleton graph on the left pavement
    s = rng.uniform(0.8, 1.3) * h / 480
    x0, y0 = rng.randint(2, max(3, int(w * 0.15))), rng.randint(hor - int(40 * s), h - int(100 * s) - 3)
    loc = {k: [cx(x0 + c * s), cy(y0 + r * s)] for k, (_, (r, c)) in _SKELETON.items()}
    for a, b in _EDGES:
        d.line([tuple(loc[a]), tuple(loc[b])], fill=_rgb("#CE93D8"), width=3)
    for k, (x, y) in loc.items():
        r = 8 if _SKELETON[k][0] == "head" else 4
        d.ellipse([x - r, y - r, x + r, y + r], fill=_rgb("#8E24AA"))
    objs.append(_obj("person", "graph", [_conf(rng)], nodes={k: {"loc": v} for k, v in loc.items()}))
    return im, objs


# Names that readers trip on: spaces, non-ASCII, the same item name in a dataset and its child.
NAMES_LAYOUT = [("train", "street scene 02.jpg", (320, 240), False), ("train", "café ü.jpg", (320, 240), False),
                ("train", "img_0001.jpg", (320, 240), False),
                ("train/datasets/hard", "img_0001.jpg", (320, 240), True),
                ("val 2024", "img_0001.jpg", (320, 240), False), ("val 2024", "nuit été.png", (320, 240), True)]


def make_sample_project(root: Path, seed: int = 0, layout: list | None = None) -> Path:
    """Write a small Supervisely project (meta.json, train, train/datasets/night, val) at root;
    with `layout` ((dataset folder, name, size, night) rows), those items only."""
    rng = random.Random(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    meta = {"classes": _CLASSES, "tags": _TAGS, "projectType": "images"}
    (root / "meta.json").write_text(json.dumps(meta, indent=4))
    anns: dict[tuple[str, str], dict] = {}
    for ds, name, (w, h), night in layout or _LAYOUT:
        (root / ds / "img").mkdir(parents=True, exist_ok=True)
        (root / ds / "ann").mkdir(parents=True, exist_ok=True)
        im, objs = _scene(rng, w, h, night)
        if name.endswith(".png"):
            im.save(root / ds / "img" / name, "PNG", optimize=True)
        else:
            im.save(root / ds / "img" / name, "JPEG", quality=90)
        weather = "night" if night else rng.choice(["clear", "rain", "fog"])
        tags = [{"name": "weather", "value": weather}]
        if rng.random() < 0.5:
            tags.append({"name": "note", "value": f"checked by qa-{rng.randint(1, 9)}"})
        anns[(ds, name)] = {"description": "", "size": {"height": h, "width": w}, "tags": tags, "objects": objs}
    if layout is not None:
        for (ds, name), ann in anns.items():
            (root / ds / "ann" / f"{name}.json").write_text(json.dumps(ann, indent=4))
        return root
    (src_ds, src_name), (dup_ds, dup_name) = _DUPLICATE
    (root / dup_ds / "img" / dup_name).write_bytes((root / src_ds / "img" / src_name).read_bytes())
    anns[(dup_ds, dup_name)] = anns[(src_ds, src_name)]
    for (ds, name), ann in anns.items():
        if (ds, name) != _NO_ANN:
            (root / ds / "ann" / f"{name}.json").write_text(json.dumps(ann, indent=4))
    ds, name, item_meta = _ITEM_META
    (root / ds / "meta").mkdir(parents=True, exist_ok=True)
    (root / ds / "meta" / f"{name}.json").write_text(json.dumps(item_meta, indent=4))
    return root


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.datagen sample DIR` | `dedup DIR [DISTINCT COPIES]`."""
    import sys
    args = sys.argv[1:] if argv is None else argv
    if len(args) >= 2 and args[0] == "sample":
        print(f"sample Supervisely project written to {make_sample_project(Path(args[1]))}")
        return 0
    if len(args) >= 2 and args[0] == "dedup":
        counts = [int(a) for a in args[2:4]]
        print(make_dedup_set(Path(args[1]), *counts))
        return 0
    print("usage: python -m bench.datagen sample DIR | dedup DIR [DISTINCT COPIES]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
