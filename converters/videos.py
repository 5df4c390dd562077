"""Folders of videos (mp4, webm, mov, mkv, avi, m4v) as a video project: one dataset per
folder, like `images`. Width, height and frame count come from the container (PyAV, in
`cas.model.media.probe_video`); each video gets an empty Supervisely video annotation."""

from __future__ import annotations

from pathlib import Path

from cas.ingest.session import ImportSession
from cas.model.media import is_video_name

from . import images
from .contract import Detection

READS = ("media",)
LAYOUTS = "a folder of videos (mp4, webm, mov, mkv, avi, m4v), one dataset per folder"
LOOKS_FOR = "video files"


def detect(path: Path, depth: int = 1) -> Detection:
    return images.detect(path, is_video_name, "video", depth)


def count(path: Path) -> int:
    return images.count(path, is_video_name)


def read(src: Path, session: ImportSession, dataset: str | None = None) -> dict[str, int]:
    session.set_meta({"classes": [], "tags": [], "projectType": "videos"}, str(src))
    return images.read(src, session, dataset, is_video_name)
