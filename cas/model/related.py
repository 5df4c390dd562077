"""Related files of an item: what goes with its media in the layout's related section (a
point cloud's camera images, each with `<image>.json`, its camera's intrinsics and
extrinsics, and optionally `<image>.figures.json`, the figures drawn on it), as the
Supervisely SDK reads them. Each is a blob of its own, deduplicated like any other."""

from __future__ import annotations

from typing import Any

from cas.errors import InvalidInput
from cas.model.media import is_image_name

FIGURES = ".figures.json"


def image_of(name: str) -> str | None:
    """The image a related JSON file is about ('c.png.json' -> 'c.png'), None for an image."""
    for suffix in (FIGURES, ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def check_names(names: list[str], label: str) -> None:
    """Related files are images and JSON files about images among them."""
    for name in names:
        image = image_of(name)
        if image is None and not is_image_name(name):
            raise InvalidInput(f"{label}/{name}", "a related file is an image, <image>.json or <image>.figures.json")
        if image is not None and image not in names:
            raise InvalidInput(f"{label}/{name}", f"names image {image!r}, which is not among the related files")


def check_json(name: str, doc: Any, label: str) -> None:
    """`<image>.json` is an object naming its image (the SDK refuses any other); figures are a list."""
    if name.endswith(FIGURES):
        if not isinstance(doc, list):
            raise InvalidInput(label, "expected a list of figures", "$")
        return
    if not isinstance(doc, dict):
        raise InvalidInput(label, "expected a JSON object", "$")
    if doc.get("name") != image_of(name):
        raise InvalidInput(label, f"expected the image's name {image_of(name)!r}", "name")
