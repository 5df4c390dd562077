"""Folders of point clouds (.pcd) as a point cloud project without labels: one dataset per
folder, like `images`. The point count comes from each file's PCD header
(`cas.model.media.probe_pointcloud`); each cloud gets an empty Supervisely point cloud
annotation."""

from __future__ import annotations

from pathlib import Path

from cas.ingest.session import ImportSession
from cas.model.media import is_pointcloud_name

from . import images
from .contract import Detection

READS = ("media",)
LAYOUTS = "a folder of point clouds (.pcd), one dataset per folder"
LOOKS_FOR = "point cloud files (.pcd)"


def detect(path: Path, depth: int = 1) -> Detection:
    return images.detect(path, is_pointcloud_name, "pointcloud", depth)


def count(path: Path) -> int:
    return images.count(path, is_pointcloud_name)


def read(src: Path, session: ImportSession, dataset: str | None = None) -> dict[str, int]:
    session.set_meta({"classes": [], "tags": [], "projectType": "point_clouds"}, str(src))
    return images.read(src, session, dataset, is_pointcloud_name)
