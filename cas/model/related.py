"""Related files of an item: what goes with its media in the layout's related section (a
point cloud's camera images, each with `<image>.json`, its camera's intrinsics and
extrinsics, and optionally `<image>.figures.json`, the figures drawn on it; a volume's
Mask3D figures, each `<figure key>.nrrd` of the volume's shape), as the Supervisely SDK
reads them. Each is a blob of its own, deduplicated like any other."""

from __future__ import annotations

from typing import Any

from cas.errors import InvalidInput
from cas.model.media import VolumeInfo, is_image_name, is_volume_name
from cas.units import shape_text

FIGURES = ".figures.json"


def image_of(name: str) -> str | None:
    """The image a related JSON file is about ('c.png.json' -> 'c.png'), None for an image."""
    for suffix in (FIGURES, ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def check_names(names: list[str], label: str, project_type: str) -> None:
    """A point cloud's related files are images and JSON files about images among them; a
    volume's are its masks (.nrrd)."""
    if project_type == "volumes":
        for name in names:
            if not is_volume_name(name):
                raise InvalidInput(f"{label}/{name}", "a volume's mask is a <figure key>.nrrd file")
        return
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


def check_mask(mask: VolumeInfo, volume: VolumeInfo, label: str) -> None:
    """A volume's Mask3D file has the volume's dimensions."""
    if tuple(mask.dimensions) != tuple(volume.dimensions):
        raise InvalidInput(label, f"mask is {shape_text(mask.dimensions)} voxels but its volume is "
                                  f"{shape_text(volume.dimensions)}")
