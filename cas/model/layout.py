"""The Supervisely project layout, the one place it is spelled out (the mount shows it, the
converter reads and writes it):

    meta.json
    <dataset>/img/<item>             (a video project: video/<item>, point clouds: pointcloud/)
    <dataset>/ann/<item>.json
    <dataset>/meta/<item>.json       (item meta, when an item has one; image projects only)
    <dataset>/img_info/<item>.json   (the mount only: width, height, size...; video_info/,
                                      pointcloud_info/ in those projects, as the SDK names them)
    <dataset>/related_images/<item with . as _>/<file>
                                     (a point cloud's camera images, their <image>.json and
                                      <image>.figures.json)
    <dataset>/mask/<item>/<figure key>.nrrd
                                     (a volume's Mask3D figures; volumes are in volume/, their
                                      info in video_info/, as the SDK's VolumeDataset names it)
    <dataset>/datasets/<child>/...   (nested datasets)

A point-cloud episode (a dataset whose frames are ordered) has no ann/: one
<episode>/annotation.json and <episode>/frame_pointcloud_map.json beside pointcloud/
(`Sections.files`, `cas.model.episode`).

Each project type has its own sections (`Sections`): the SDK's Dataset class of that type
takes any other folder for a nested dataset, and warns when it is not one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

META_NAME = "meta.json"
NESTED = "datasets"


@dataclass(frozen=True, slots=True)
class Sections:
    """The folders of a dataset of one project type."""

    media: str
    info: str
    meta: str | None = None  # item meta
    related: str | None = None  # each item's related files, in <related>/<related_folder(item)>/
    ann: str | None = "ann"  # each item's annotation, as <ann>/<item>.json
    files: tuple[str, ...] = ()  # files of the dataset itself, beside its folders (an episode's)
    related_as_item: bool = False  # an item's related folder has the item's name ('a.nrrd'), not 'a_nrrd'
    noun: str = "image"  # what messages call an item's media
    listed: tuple[str, ...] = field(init=False)  # what a dataset folder lists (nested datasets aside)

    def __post_init__(self) -> None:  # kept: asked on every file lookup of the mount
        object.__setattr__(self, "listed", tuple(s for s in (self.media, self.ann, self.meta, self.info, self.related)
                                                 if s is not None))

    def related_folder(self, item: str) -> str:
        """The folder of an item's related files, as the SDK names it ('a.pcd' -> 'a_pcd';
        a volume's masks: 'a.nrrd' -> 'a.nrrd')."""
        return item if self.related_as_item else item.replace(".", "_")


RELATED = "related_images"
EPISODE_ANNOTATION, FRAME_MAP = "annotation.json", "frame_pointcloud_map.json"
LAYOUTS = {
    "images": Sections("img", "img_info", "meta"),
    "videos": Sections("video", "video_info", noun="video"),
    "point_clouds": Sections("pointcloud", "pointcloud_info", related=RELATED, noun="point cloud"),
    "point_cloud_episodes": Sections("pointcloud", "pointcloud_info", related=RELATED, ann=None,
                                     files=(EPISODE_ANNOTATION, FRAME_MAP), noun="point cloud"),
    "volumes": Sections("volume", "video_info", related="mask", related_as_item=True, noun="volume"),
}
MEDIA_SECTIONS = tuple(dict.fromkeys(s.media for s in LAYOUTS.values()))
INFO_SECTIONS = tuple(dict.fromkeys(s.info for s in LAYOUTS.values()))
JSON_SECTIONS = ("ann", "meta", *INFO_SECTIONS)
RELATED_SECTIONS = tuple(dict.fromkeys(s.related for s in LAYOUTS.values() if s.related))
DATASET_FILES = tuple(dict.fromkeys(f for s in LAYOUTS.values() for f in s.files))
SECTIONS = (*MEDIA_SECTIONS, *JSON_SECTIONS, *RELATED_SECTIONS, NESTED)


def sections(project_type: str) -> Sections:
    """The folders of a dataset in a project of `project_type`."""
    return LAYOUTS.get(project_type, LAYOUTS["images"])


def project_type_of(media: str) -> str:
    """The project type whose media section is `media` ('video' -> 'videos'; the first of
    those that share it: 'pointcloud' -> 'point_clouds', its episodes are told by their files)."""
    return next(kind for kind, s in LAYOUTS.items() if s.media == media)


def dataset_folder(dataset: str) -> str:
    """A dataset's folder in the project ('a/b' -> 'a/datasets/b')."""
    return f"/{NESTED}/".join(dataset.split("/"))


def json_name(item: str) -> str:
    """The name of an item's file in ann/, meta/ and img_info/."""
    return f"{item}.json"
