"""Format converters: each module has `detect(path) -> bool`, `read(src, session, dataset)`,
and, where the format can be written, `write(store, project, dest)`."""

from __future__ import annotations

from types import ModuleType

from . import cityscapes, coco, images, labelme, links, masks, supervisely, videos, voc, yolo

FORMATS: dict[str, ModuleType] = {
    "sly": supervisely,
    "coco": coco,
    "yolo": yolo,
    "voc": voc,
    "cityscapes": cityscapes,
    "labelme": labelme,
    "masks": masks,
    "images": images,
    "videos": videos,
    "links": links,
}
GENERIC = "images"  # fits any folder of images: chosen by `auto` only when nothing else fits
