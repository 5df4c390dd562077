"""What every format module provides (the registry is `converters.FORMATS`):

- `detect(path) -> Detection`: how surely the format fits `path`, and why (or why not);
- `read(root, session, dataset, **options) -> counts`: feeds the items of one dataset root
  into an import session (`cas.ingest.session.ImportSession`), naming datasets by
  `dataset_names`;
- optionally `write(store, project, dest, progress=...) -> counts`: an export;
- `READS` (and with `write`, `WRITES`): what the format holds, in the words of `SHAPES`;
- `LAYOUTS`: the layouts the reader takes, in one line; `LOOKS_FOR`, what an import that
  finds nothing says it looked for;
- optionally `count(root)` (items, for a progress bar) and `source_root(path)`.

`converters.ingest` is the one driver: it picks the best score, finds the dataset roots and
runs `read` on each in one import session.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import NamedTuple

# What a format can hold, in the order `cas formats` lists them.
SHAPES = ("boxes", "polygons", "polylines", "points", "masks", "keypoints", "tags", "captions", "media")

CERTAIN = 1.0  # a file that names the format (meta.json, data.yaml, a CVAT annotations.xml)
LAYOUT = 0.8   # the format's folder layout, or a document shaped as the format's
ANY_MEDIA = 0.1  # any folder of media (images, videos): chosen only when nothing else fits


class Detection(NamedTuple):
    """How surely a format fits a path (0: it does not), and the reason, in a few words."""
    score: float
    reason: str


def fits(reason: str, score: float = LAYOUT) -> Detection:
    return Detection(score, reason)


def no(reason: str) -> Detection:
    return Detection(0.0, reason)


def dataset_names(dataset: str | None, parts: Iterable[str], top: str) -> dict[str, str]:
    """The dataset each part of a source goes to (a split, a sub-folder, a source dataset;
    `/`-separated, "" for the source's top). Without `dataset`: its own path, the top named
    `top`. With `dataset` (`--dataset`), the one a user named: it replaces the name of the
    deepest folder holding every part, so the only part of a source is `dataset` itself and
    several are its children (never `2024/2024` for a folder 2024)."""
    parts = sorted(set(parts))
    if not dataset:
        return {p: p or top for p in parts}
    common = posixpath.commonpath(parts) if parts and "" not in parts else ""
    return {p: dataset if p == common else f"{dataset}/{posixpath.relpath(p, common or '.')}" for p in parts}
