"""Bounded decoding: an image or mask whose header declares more pixels than the limit is
refused with one line before any pixel is decoded (render, mask imports, mask exports,
Supervisely bitmaps), and the limit is configurable."""

from __future__ import annotations

import base64
import json
import os
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from cas import Store
from cas.errors import InvalidInput
from converters.ingest import import_source
from tests.conftest import ROOT, assert_user_error, jpeg_bytes, png_bytes, run_cas
from tests.converters import samples

GB = 1 << 30


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int, mode: int = 2) -> bytes:
    """A small, well-formed-looking PNG whose header says width x height (its data holds a
    few rows only: a decoder would allocate the whole image first)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, mode, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width * 3 + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real JPEG with its frame header (SOF0) rewritten to width x height."""
    data = bytearray(jpeg_bytes(16, 16))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def limited(gigabytes: float):
    """preexec_fn: cap the child's address space, so a decode that ignored the limit fails."""
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (int(gigabytes * GB), int(gigabytes * GB)))


@pytest.mark.parametrize("name,data", [("huge.png", png_declaring(30000, 30000)),
                                       ("huge.jpg", jpeg_declaring(65500, 65500))])
def test_render_of_a_decompression_bomb_is_one_line(tmp_path: Path, name: str, data: bytes) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / name).write_bytes(data)
    store = tmp_path / "store"
    run_cas(store, "import", str(src), "-p", "p")  # the header alone is fine to store
    proc = subprocess.run([sys.executable, "-m", "cas", "--store", str(store), "-q", "render", f"p/src/{name}",
                           "-o", str(tmp_path / "out.png")], capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=limited(1.0))
    assert_user_error(proc, f"p/src/{name}", "pixels, over the decoding limit of 89,478,485", "--max-pixels")
    assert not (tmp_path / "out.png").exists()


def test_the_limit_is_configurable(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(png_bytes(40, 30))
    store = tmp_path / "store"
    run_cas(store, "import", str(src), "-p", "p")
    assert_user_error(run_cas(store, "--max-pixels", "1000", "render", "p/src/a.png", "-o", str(tmp_path / "o.png"),
                              check=False), "40x30 is 1,200 pixels, over the decoding limit of 1,000")
    run_cas(store, "render", "p/src/a.png", "-o", str(tmp_path / "o.png"))
    assert Image.open(tmp_path / "o.png").size == (40, 30)


def test_mask_import_refuses_a_bomb(store: Store, tmp_path: Path) -> None:
    src = samples.masks_sample(tmp_path / "m", machine=True)
    (src / "masks" / "m1.png").write_bytes(png_declaring(30000, 30000, mode=0))
    with pytest.raises(InvalidInput, match=r"m1.png: 30000x30000 is 900,000,000 pixels, over the decoding limit"):
        import_source(store, src, "p", "masks")
    assert "p" not in store.ns.projects()


def test_voc_segmentation_bomb_is_refused(store: Store, tmp_path: Path) -> None:
    src = samples.voc_sample(tmp_path / "voc")
    (src / "SegmentationObject" / "2007_000000.png").write_bytes(png_declaring(30000, 30000, mode=0))
    with pytest.raises(InvalidInput, match="over the decoding limit"):
        import_source(store, src, "p", "voc")


def test_supervisely_bitmap_declaring_a_huge_png_is_refused(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "sly"
    (src / "ds" / "img").mkdir(parents=True)
    (src / "ds" / "ann").mkdir()
    (src / "ds" / "img" / "a.png").write_bytes(png_bytes(40, 30))
    (src / "meta.json").write_text(json.dumps({"classes": [{"title": "m", "shape": "bitmap", "color": "#FF0000"}],
                                               "tags": [], "projectType": "images"}))
    bomb = base64.b64encode(zlib.compress(png_declaring(40000, 40000, mode=0))).decode()
    ann = {"size": {"width": 40, "height": 30}, "tags": [], "description": "",
           "objects": [{"classTitle": "m", "geometryType": "bitmap", "tags": [],
                        "bitmap": {"origin": [0, 0], "data": bomb}}]}
    (src / "ds" / "ann" / "a.png.json").write_text(json.dumps(ann))
    with pytest.raises(InvalidInput, match=r"objects\[0\].bitmap.data: 40000x40000 is .* over the decoding limit"):
        import_source(store, src, "p", "sly")


def test_bitmap_zlib_bomb_is_refused() -> None:
    from cas.model.annotation import MAX_BITMAP_BYTES, inflate_bitmap
    bomb = base64.b64encode(zlib.compress(b"\x89PNG\r\n\x1a\n" + b"\0" * (MAX_BITMAP_BYTES + 1), 9)).decode()
    with pytest.raises(InvalidInput, match="inflates past 256 MB"):
        inflate_bitmap(bomb, "x.json")


def test_coco_rle_declaring_a_huge_mask_is_refused(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "coco"
    (src / "images").mkdir(parents=True)
    (src / "images" / "a.jpg").write_bytes(jpeg_declaring(30000, 30000))
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 30000, "height": 30000}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": 1,
                            "segmentation": {"size": [30000, 30000], "counts": [0, 900_000_000]}}],
           "categories": [{"id": 1, "name": "x"}]}
    (src / "annotations").mkdir()
    (src / "annotations" / "instances_val.json").write_text(json.dumps(doc))
    with pytest.raises(InvalidInput, match=r"annotations\[0\].segmentation: 30000x30000 .* over the decoding limit"):
        import_source(store, src, "p", "coco")
