"""Pure parsing of mount paths into what they name. No store, no FUSE.

    /                                   ROOT
    /.cas, /.cas/stats.json             CAS_DIR, STATS
    /.cas/status, /.cas/status.json     STATUS: drops and refusals (`name` is which)
    /<p>                                PROJECT
    /<p>/meta.json                      PROJECT_META
    /<p>/<d>[/datasets/<child>...]      DATASET
    /<p>/<d>/img|video|ann|meta|img_info|video_info|datasets
                                        SECTION (which a project has: `cas.model.layout`)
    /<p>/<d>/<section>/<file>           FILE
    /<p>/<d>/related_images/<folder>    RELATED: an item's related files (`cas.model.related`)
    /<p>/<d>/related_images/<folder>/<file>
                                        FILE, `name` is '<folder>/<file>'
    /<p>/<d>/annotation.json, frame_pointcloud_map.json
                                        FILE of the dataset itself (an episode's), `section` ''
    /<p>/.versions                      VERSIONS
    /<p>/.versions/<version id>/...     the same kinds, read-only, with `version` set
    .../<temporary name>[/...]          STAGED: a scratch file or directory (rsync's
                                        `.x.jpg.AbC123`, `x.json~`, `*.swp`, ...) inside any
                                        writable directory, or a file in ann/ or meta/ not
                                        named <item>.json (`sed -i`'s `sedXyZ123`, perl -pi's,
                                        `x.json.new`); `name` is the whole path
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto

from cas.errors import InvalidName
from cas.ingest import is_temporary
from cas.model.layout import DATASET_FILES, JSON_SECTIONS, META_NAME, NESTED, RELATED_SECTIONS, SECTIONS, dataset_folder

CAS_DIR_NAME = ".cas"
VERSIONS_NAME = ".versions"
STATS_NAME = "stats.json"
STATUS_NAMES = ("status", "status.json")


class Kind(Enum):
    ROOT = auto()
    CAS_DIR = auto()
    STATS = auto()
    STATUS = auto()
    PROJECT = auto()
    PROJECT_META = auto()
    DATASET = auto()
    SECTION = auto()
    RELATED = auto()
    FILE = auto()
    VERSIONS = auto()
    STAGED = auto()


@dataclass(frozen=True, slots=True)
class Target:
    """What a path names: project, dataset path ('a/b' when nested), section and file name."""

    kind: Kind
    project: str = ""
    dataset: str = ""
    section: str = ""
    name: str = ""
    version: str = ""  # a version id: the path is inside /<p>/.versions/<id>/ (read-only)

    @property
    def item(self) -> str:
        """The item a FILE stands for: 'x.jpg' for img/x.jpg and ann/x.jpg.json."""
        if self.section in JSON_SECTIONS:
            if not self.name.endswith(".json"):
                raise InvalidName(f"{self.section}/ files are named <item>.json: {self.name!r}")
            return self.name[:-5]
        return self.name

    @property
    def is_dir(self) -> bool:
        return self.kind not in (Kind.STATS, Kind.STATUS, Kind.PROJECT_META, Kind.FILE, Kind.STAGED)

    @property
    def path(self) -> str:
        """The absolute mount path this target was parsed from (normalized)."""
        if self.kind is Kind.STAGED:
            return self.name
        if self.kind is Kind.ROOT:
            return "/"
        if self.kind in (Kind.CAS_DIR, Kind.STATS, Kind.STATUS):
            return f"/{CAS_DIR_NAME}" + (f"/{STATS_NAME}" if self.kind is Kind.STATS else
                                         f"/{self.name}" if self.kind is Kind.STATUS else "")
        base = f"/{self.project}" + (f"/{VERSIONS_NAME}/{self.version}" if self.version else "")
        if self.kind is Kind.VERSIONS:
            return f"/{self.project}/{VERSIONS_NAME}"
        if self.kind is Kind.PROJECT:
            return base
        if self.kind is Kind.PROJECT_META:
            return f"{base}/{META_NAME}"
        base += "/" + f"/{NESTED}/".join(self.dataset.split("/"))
        if self.kind is Kind.DATASET:
            return base
        if not self.section:
            return f"{base}/{self.name}"
        return f"{base}/{self.section}" + (f"/{self.name}" if self.kind in (Kind.FILE, Kind.RELATED) else "")


def parse(path: str) -> Target:
    """Parse an absolute mount path; anything that cannot name a node raises InvalidName."""
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        if is_temporary(part) and not (i == 0 and part == CAS_DIR_NAME) and not (i == 1 and part == VERSIONS_NAME):
            if len(parts) > 1 and parts[1] == VERSIONS_NAME:
                break  # versions are read-only: nothing can be staged there
            parent = _parse("/".join(parts[:i]))
            if not parent.is_dir or parent.kind is Kind.CAS_DIR:
                raise InvalidName(f"nothing at {path}")
            return Target(Kind.STAGED, parent.project, parent.dataset, parent.section, "/" + "/".join(parts))
    return _parse("/".join(parts))


def _parse(path: str) -> Target:
    parts = [p for p in path.split("/") if p]
    if not parts:
        return Target(Kind.ROOT)
    if parts[0] == CAS_DIR_NAME:
        if len(parts) == 1:
            return Target(Kind.CAS_DIR)
        if parts[1:] == [STATS_NAME]:
            return Target(Kind.STATS)
        if len(parts) == 2 and parts[1] in STATUS_NAMES:
            return Target(Kind.STATUS, name=parts[1])
        raise InvalidName(f"nothing at {path}")
    project, rest = parts[0], parts[1:]
    version = ""
    if rest and rest[0] == VERSIONS_NAME:
        if len(rest) == 1:
            return Target(Kind.VERSIONS, project)
        version, rest = rest[1], rest[2:]
    if not rest:
        return Target(Kind.PROJECT, project, version=version)
    if rest == [META_NAME]:
        return Target(Kind.PROJECT_META, project, version=version)
    dataset = [rest[0]]
    i = 1
    while True:
        if i == len(rest):
            return Target(Kind.DATASET, project, "/".join(dataset), version=version)
        section = rest[i]
        if section in DATASET_FILES and i + 1 == len(rest):
            return Target(Kind.FILE, project, "/".join(dataset), "", section, version)
        if section not in SECTIONS:
            raise InvalidName(f"nothing at {path} ({section!r} is not one of {', '.join(SECTIONS)})")
        if section == NESTED:
            if i + 1 == len(rest):
                return Target(Kind.SECTION, project, "/".join(dataset), NESTED, version=version)
            dataset.append(rest[i + 1])
            i += 2
            continue
        if i + 1 == len(rest):
            return Target(Kind.SECTION, project, "/".join(dataset), section, version=version)
        if section in RELATED_SECTIONS and i + 2 <= len(rest) <= i + 3:
            kind = Kind.RELATED if i + 2 == len(rest) else Kind.FILE
            return Target(kind, project, "/".join(dataset), section, "/".join(rest[i + 1:]), version)
        if i + 2 == len(rest):
            if section in ("ann", "meta") and not rest[i + 1].endswith(".json"):  # an editor's temporary file
                return Target(Kind.STAGED, project, "/".join(dataset), section, "/" + "/".join(parts), version)
            return Target(Kind.FILE, project, "/".join(dataset), section, rest[i + 1], version)
        raise InvalidName(f"nothing at {path}")


def dataset_path(project: str, dataset: str) -> str:
    """The mount path of a dataset ('a/b' -> '/p/a/datasets/b')."""
    return f"/{project}/{dataset_folder(dataset)}"
