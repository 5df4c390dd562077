"""What close() checks of a file written at a Supervisely position, from its bytes alone:
an image's (video's, point cloud's, volume's) header, an annotation or item meta's JSON (the
annotation is checked against the project meta by `Meta.check_item_annotation`). A bad file
raises InvalidInput naming it."""

from __future__ import annotations

from typing import Any

from cas.blobs.spool import HEAD
from cas.errors import InvalidInput
from cas.ingest.staged import StagedFile
from cas.model.annotation import CLOUD_TYPES, Meta, loads
from cas.model.media import MediaInfo, probe_image, probe_pointcloud, probe_video, probe_volume

MAX_JSON = 64 << 20  # an annotation or meta file larger than this is refused


def probe(staged: StagedFile, meta: Meta, label: str) -> MediaInfo:
    """The size and type of an image (a video, in a video project) from its header."""
    if meta.project_type == "videos":
        return probe_video(staged.spill(), label)
    size = staged.size
    if meta.project_type in CLOUD_TYPES:
        return probe_pointcloud(staged.read(HEAD, 0), size, label)
    if meta.project_type == "volumes":
        return probe_volume(staged.read(HEAD, 0), size, label)
    head = staged.read(HEAD, 0)
    tail = staged.read(64, max(size - 64, 0))
    fallback = staged.read(16 << 20, 0) if size > len(head) else None
    return probe_image(head, tail, label, fallback)


def parse_json(staged: StagedFile, item_meta: bool, label: str) -> Any:
    """An annotation or item meta file, parsed (an item meta must be an object)."""
    if staged.size > MAX_JSON:
        raise InvalidInput(label, f"larger than {MAX_JSON >> 20} MiB")
    parsed = loads(staged.getvalue(), label)
    if item_meta and not isinstance(parsed, dict):
        raise InvalidInput(label, "expected a JSON object", "$")
    return parsed
