"""Point-cloud episodes (`sly.PointcloudEpisodeProject`): a dataset whose frames are ordered.
Each frame is an item (its cloud in pointcloud/, its related files as a point cloud's); the
episode's one annotation.json (objects tracked over frames) and its frame_pointcloud_map.json
(frame index -> cloud name) are the `ann` and `meta` blobs of every frame of the episode,
kept as they were written so that they are written back byte for byte. Where a source has
none, they are made as the SDK makes them (json.dump with indent=4)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cas.errors import InvalidInput, shown
from cas.model.annotation import Meta, loads


@dataclass(frozen=True, slots=True)
class EpisodeFiles:
    """An episode's two files, checked (`check_episode`), given with each of its frames to an
    import: each is a path or the bytes made for a source that has none. Stored as they are."""

    annotation: str | bytes
    frame_map: str | bytes
    ann_label: str
    map_label: str


def _sdk_json(doc: Any) -> bytes:
    return json.dumps(doc, indent=4).encode()


def default_frame_map(clouds: Sequence[str]) -> bytes:
    """The map the SDK assumes when an episode has none: frames in the clouds' name order."""
    return _sdk_json({str(i): name for i, name in enumerate(sorted(clouds))})


def empty_episode_annotation(frames: int, key: str) -> bytes:
    """An episode annotation with nothing in it, as `PointcloudEpisodeAnnotation(frames).to_json()`."""
    return _sdk_json({"description": "", "key": key, "tags": [], "objects": [], "framesCount": frames,
                      "frames": []})


def check_frame_map(doc: Any, clouds: Sequence[str], label: str) -> None:
    """A frame map names each of the episode's clouds once, under a frame index ("0", "1"...)
    of the episode, and names no other (the SDK refuses an episode with a cloud it lacks)."""
    if not isinstance(doc, dict):
        raise InvalidInput(label, "expected an object of frame index -> point cloud name", "$")
    known, seen = set(clouds), set()
    for frame, name in doc.items():
        if not (frame.isdigit() and int(frame) < len(clouds)):
            raise InvalidInput(label, f"frame {shown(frame)} is not a frame of the episode (0 to {len(clouds) - 1})",
                               frame)
        if name not in known:
            raise InvalidInput(label, f"names {shown(name)}, which is not in pointcloud/", frame)
        if name in seen:
            raise InvalidInput(label, f"names {name!r} for two frames", frame)
        seen.add(name)
    missing = sorted(known - seen)
    if missing:
        raise InvalidInput(label, f"point cloud {missing[0]!r} has no frame here")


def check_episode(meta: Meta, annotation: bytes, frame_map: bytes, clouds: Sequence[str],
                  ann_label: str, map_label: str) -> None:
    """An episode's annotation.json and frame_pointcloud_map.json against the project meta and
    the episode's point clouds."""
    check_frame_map(loads(frame_map, map_label), clouds, map_label)
    meta.check_episode_annotation(loads(annotation, ann_label), ann_label, len(clouds))
