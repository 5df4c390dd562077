"""The one driver that feeds converters' items into an import session."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from cas.errors import InvalidInput
from cas.ingest.session import ImportReport, ImportSession
from cas.store import Store

from . import FORMATS, GENERIC, images, renames
from .contract import ANY_MEDIA, Detection
from .walk import SKIPPED_LINKS, containment, subdirs

# An export's root, or the folder above it: how deep `auto` and a named format look for a
# dataset when the folder given is not one (VOCdevkit/VOC2012/, one COCO folder per dataset).
SEARCH_DEPTH = 2
# plain folders of media, looked for deeper when nothing else fits
MEDIA_FOLDERS = (GENERIC, "videos", "pointclouds", "volumes")


def detect_format(src: Path) -> str:
    """The format that fits `src` best, or when none does, the folders up to SEARCH_DEPTH
    below it; an error gives each format's reason, or the formats that fit equally."""
    if not src.exists():
        raise InvalidInput(str(src), "no such file or directory")
    with containment(source_root(src)):
        found = detections(src)
        if src.is_dir() and not any(d.score for d in found.values()):
            for name, module in FORMATS.items():  # a folder of images with a dataset deep inside stays images
                below = _fitting_below(src, module) if name != GENERIC else []
                if below:
                    score, reason = module.detect(below[0])
                    found[name] = Detection(score, f"{below[0].relative_to(src)}/: {reason}")
        # photos/2024/beach/*.jpg: media deeper down, where no format fits as well as media would
        if src.is_dir() and max(d.score for d in found.values()) < ANY_MEDIA:
            for name in MEDIA_FOLDERS:
                found[name] = FORMATS[name].detect(src, depth=images.DEEP)
    best = max(d.score for d in found.values())
    if not best:
        reasons = "; ".join(f"{name}: {d.reason}" for name, d in found.items())
        raise InvalidInput(str(src), f"no known format fits here or {SEARCH_DEPTH} folders below ({reasons}); "
                                     "pass --format")
    fits = [name for name, d in found.items() if d.score == best]
    if len(fits) > 1:
        raise InvalidInput(str(src), "several formats fit (" + "; ".join(f"{n}: {found[n].reason}" for n in fits)
                           + "); pass --format")
    return fits[0]


def detections(src: Path) -> dict[str, Detection]:
    """Every format's detection of `src`, in the registry's order."""
    return {name: module.detect(src) for name, module in FORMATS.items()}


def _fitting_below(folder: Path, module: ModuleType, depth: int = SEARCH_DEPTH) -> list[Path]:
    found: list[Path] = []
    for entry in sorted(subdirs(str(folder)), key=lambda e: e.name):
        child = Path(entry.path)
        if module.detect(child).score:
            found.append(child)
        elif depth > 1:
            found += _fitting_below(child, module, depth - 1)
    return found


def dataset_roots(src: Path, fmt: str) -> list[tuple[str | None, Path]]:
    """(dataset prefix, folder) pairs to read: `src` itself when the format fits it, else
    every folder below that it fits, each prefixed with its path under `src` (none when
    there is only one, as for VOCdevkit/VOC2012)."""
    module = FORMATS[fmt]
    if not src.is_dir() or module.detect(src).score:
        return [(None, src)]
    found = _fitting_below(src, module)
    if len(found) <= 1:
        return [(None, found[0] if found else src)]
    return [(p.relative_to(src).as_posix(), p) for p in found]


def source_root(src: Path, fmt: str | None = None) -> Path:
    """The folder an import of `src` may read: `src` itself, a file's folder, or what the
    format says (a COCO file in `annotations/`: the folder above)."""
    rooted = getattr(FORMATS.get(fmt or ""), "source_root", None)
    if rooted is not None:
        return rooted(src)
    return src if src.is_dir() else src.parent


def count_items(src: Path, fmt: str) -> int | None:
    counter = getattr(FORMATS.get(fmt), "count", None)  # unknown: import_source reports it
    if counter is None:
        return None
    with containment(source_root(src, fmt)):
        try:
            return sum(counter(root) for _prefix, root in dataset_roots(src, fmt))
        except InvalidInput:
            return None  # the import says what is wrong, with the session's rules


def import_source(store: Store, src: Path, project: str, fmt: str, dataset: str | None = None,
                  progress: Callable[[int], object] | None = None, reader_options: dict[str, Any] | None = None,
                  follow_symlinks: bool = False, **options: Any) -> tuple[ImportReport, dict[str, int]]:
    """Import `src` in format `fmt` into `project` atomically; returns the session report and
    the converter's own counts. `reader_options` go to the converter (e.g. `head` for links).
    Only files under `src` or the store's allowed roots are read (see `converters.walk`).
    An import that finds no item is an error saying what was looked for, and where."""
    if fmt not in FORMATS:
        raise InvalidInput(str(src), f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if not src.exists():
        raise InvalidInput(str(src), "no such file or directory")
    module = FORMATS[fmt]
    with containment(source_root(src, fmt), store.config.allow_roots, follow_symlinks) as rule, \
            ImportSession(store, project, progress=progress, **options) as session:
        roots = dataset_roots(src, fmt)
        extra: Counter[str] = Counter()
        kept = renames.load(src) if src.is_dir() else None  # an export of ours: its original names
        reader: Any = session if kept is None else renames.Renamed(session, kept, src, dataset)
        for prefix, root in roots:  # several roots: each one's meta widens the import's
            target = f"{dataset}/{prefix}" if dataset and prefix else prefix or dataset
            extra.update(module.read(root, reader, target, **(reader_options or {})))
        if not session.items_queued and not session.report.rejected:
            looked_for = getattr(module, "LOOKS_FOR", f"{fmt} items")
            raise InvalidInput(str(src), f"nothing to import: found no {looked_for} here or "
                                         f"{SEARCH_DEPTH} folders below")
        if rule.skipped_links:
            extra[SKIPPED_LINKS] = rule.skipped_links
        return session.commit(), dict(extra)
