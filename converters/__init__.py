"""Format converters: each module has `detect(path) -> bool`, `read(src, session, dataset)`,
and, where the format can be written, `write(store, project, dest)`."""

from __future__ import annotations

from types import ModuleType

from . import images, links, supervisely

# Detection order matters: the most specific layout first.
FORMATS: dict[str, ModuleType] = {
    "sly": supervisely,
    "images": images,
    "links": links,
}
