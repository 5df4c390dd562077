"""A plain folder of images: one dataset per folder, nested folders nest datasets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cas.errors import InvalidInput
from cas.ingest.session import ImportSession
from cas.model.media import is_image_name
from cas.units import counted

from .contract import ANY_MEDIA, Detection, dataset_names, fits, no
from .walk import files, subdirs, tree

READS = ("media",)
LAYOUTS = "a folder of images, one dataset per folder (nested folders nest datasets)"


DEEP = 3  # how far below the top a deep detection looks (photos/2024/beach/), when nothing else fits
FOLDERS_LOOKED_AT = 256  # and at most this many folders, breadth first: detection stays cheap


def detect(path: Path, is_media: Callable[[str], bool] = is_image_name, kind: str = "image",
           depth: int = 1) -> Detection:
    """A media file at the top or up to `depth` folders below, and no Supervisely meta.json
    (auto looks DEEP folders down only when no format fits the folder or one below it)."""
    if not path.is_dir() or (path / "meta.json").exists():
        return no(f"no {kind} files")
    level, looked = [("", str(path))], 0
    for _level in range(depth + 1):
        below = []
        for rel, folder in level:
            looked += 1
            for entry in files(folder):
                if is_media(entry.name):
                    return fits(f"{kind} files ({rel}{entry.name})", ANY_MEDIA)
            below += [(f"{rel}{d.name}/", d.path) for d in subdirs(folder)]
            if looked >= FOLDERS_LOOKED_AT:
                return no(f"no {kind} files in the first {FOLDERS_LOOKED_AT} folders")
        level = below
    return no(f"no {kind} files here or {counted(depth, 'folder')} below")


def count(path: Path, is_media: Callable[[str], bool] = is_image_name) -> int:
    return sum(1 for _rel, entry in tree(path) if is_media(entry.name))


def read(src: Path, session: ImportSession, dataset: str | None = None,
         is_media: Callable[[str], bool] = is_image_name) -> dict[str, int]:
    """Queue every image under `src`. Files directly in `src` go to a dataset named after the
    folder; each sub-folder becomes a dataset. `dataset`: as `contract.dataset_names` says."""
    if not src.is_dir():
        raise InvalidInput(str(src), "not a directory")
    top = src.resolve().name
    # --dataset needs every folder's name first: a second walk (a million entries held would not fit)
    named = dataset_names(dataset, {rel for rel, e in tree(src) if is_media(e.name)}, top) if dataset else {}
    skipped = 0
    for rel, entry in tree(src):
        if not is_media(entry.name):
            skipped += 1
            continue
        ds = named.get(rel) or rel or top  # without --dataset, as dataset_names names them
        label = f"{src.name}/{rel}/{entry.name}" if rel else f"{src.name}/{entry.name}"
        session.add_item(ds, entry.name, entry.path, label=label)
    return {"other files skipped": skipped}
