"""The Supervisely project layout, the one place it is spelled out (the mount shows it, the
converter reads and writes it):

    meta.json
    <dataset>/img/<item>             (a video project: video/<item>)
    <dataset>/ann/<item>.json
    <dataset>/meta/<item>.json       (item meta, when an item has one)
    <dataset>/img_info/<item>.json   (the mount only: width, height, size...)
    <dataset>/datasets/<child>/...   (nested datasets)
"""

from __future__ import annotations

META_NAME = "meta.json"
NESTED = "datasets"
MEDIA_SECTIONS = ("img", "video")
JSON_SECTIONS = ("ann", "meta", "img_info")
SECTIONS = (*MEDIA_SECTIONS, *JSON_SECTIONS, NESTED)


def media_section(project_type: str) -> str:
    """Where a project's media files are: video/ in a video project, else img/."""
    return "video" if project_type == "videos" else "img"


def dataset_folder(dataset: str) -> str:
    """A dataset's folder in the project ('a/b' -> 'a/datasets/b')."""
    return f"/{NESTED}/".join(dataset.split("/"))


def json_name(item: str) -> str:
    """The name of an item's file in ann/, meta/ and img_info/."""
    return f"{item}.json"
