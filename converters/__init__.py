"""Format converters: one module per format, each keeping the contract in
`converters.contract` (detect with a score and a reason, read, an optional write, what it
reads and writes), registered in FORMATS below."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from types import ModuleType


class _Formats(Mapping[str, ModuleType]):
    """Format name -> converter module, each imported on first use: an import of one format
    does not pay for loading the others (numpy, YAML and XML parsers)."""

    def __init__(self, modules: dict[str, str]) -> None:
        self._modules = modules

    def __getitem__(self, name: str) -> ModuleType:
        return importlib.import_module(f"{__name__}.{self._modules[name]}")

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)


FORMATS: Mapping[str, ModuleType] = _Formats({
    "sly": "supervisely",
    "coco": "coco",
    "yolo": "yolo",
    "voc": "voc",
    "cityscapes": "cityscapes",
    "labelme": "labelme",
    "kitti": "kitti",
    "cvat": "cvat",
    "labelstudio": "labelstudio",
    "imagenet": "imagenet",
    "masks": "masks",
    "images": "images",
    "videos": "videos",
    "pointclouds": "pointclouds",
    "volumes": "volumes",
    "links": "url_lists",  # lists of URLs, imported as link entries
})
# the formats whose module has write(); a test keeps it true
WRITABLE = ("sly", "coco", "yolo", "voc", "kitti", "cvat", "labelstudio", "imagenet")
GENERIC = "images"  # fits any folder of images: chosen by `auto` only when nothing else fits
