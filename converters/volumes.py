"""Folders of volumes (.nrrd) as a volume project without labels: one dataset per folder,
like `images`. The dimensions come from each file's NRRD header
(`cas.model.media.probe_volume`); each volume gets an empty Supervisely volume annotation.
DICOM series are not read: a series is many files, and turning it into one volume decodes
every slice."""

from __future__ import annotations

from pathlib import Path

from cas.ingest.session import ImportSession
from cas.model.media import is_volume_name

from . import images
from .contract import Detection

READS = ("media",)
LAYOUTS = "a folder of volumes (.nrrd), one dataset per folder"
LOOKS_FOR = "volume files (.nrrd)"


def detect(path: Path, depth: int = 1) -> Detection:
    return images.detect(path, is_volume_name, "volume", depth)


def count(path: Path) -> int:
    return images.count(path, is_volume_name)


def read(src: Path, session: ImportSession, dataset: str | None = None) -> dict[str, int]:
    session.set_meta({"classes": [], "tags": [], "projectType": "volumes"}, str(src))
    return images.read(src, session, dataset, is_volume_name)
