"""A plain folder of images: one dataset per folder, nested folders nest datasets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cas.errors import InvalidInput
from cas.ingest.session import ImportSession
from cas.model.media import is_image_name

from .contract import ANY_MEDIA, Detection, dataset_names, fits, no
from .walk import files, subdirs, tree

READS = ("media",)
LAYOUTS = "a folder of images, one dataset per folder (nested folders nest datasets)"


def detect(path: Path, is_media: Callable[[str], bool] = is_image_name, kind: str = "image") -> Detection:
    """Any media file at the top or one level below, and no Supervisely meta.json."""
    if not path.is_dir() or (path / "meta.json").exists():
        return no(f"no {kind} files")
    for entry in files(str(path)):
        if is_media(entry.name):
            return fits(f"{kind} files ({entry.name})", ANY_MEDIA)
    for d in subdirs(str(path)):
        for e in files(d.path):
            if is_media(e.name):
                return fits(f"{kind} files ({d.name}/{e.name})", ANY_MEDIA)
    return no(f"no {kind} files here or one folder below")


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
