"""The one driver that feeds converters' items into an import session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cas.errors import InvalidInput
from cas.session import ImportReport
from cas.store import Store

from . import FORMATS, GENERIC
from .walk import SKIPPED_LINKS, containment


def detect_format(src: Path) -> str:
    """The one format that fits `src`; an error lists none or several."""
    if not src.exists():
        raise InvalidInput(str(src), "no such file or directory")
    with containment(source_root(src)):
        fits = [name for name, module in FORMATS.items() if module.detect(src)]
    if len(fits) > 1 and GENERIC in fits:
        fits.remove(GENERIC)
    if not fits:
        raise InvalidInput(str(src), f"no known format fits (known: {', '.join(FORMATS)}); pass --format")
    if len(fits) > 1:
        raise InvalidInput(str(src), f"several formats fit ({', '.join(fits)}); pass --format")
    return fits[0]


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
        return counter(src)


def import_source(store: Store, src: Path, project: str, fmt: str, dataset: str | None = None,
                  progress: Callable[[int], None] | None = None, reader_options: dict[str, Any] | None = None,
                  follow_symlinks: bool = False, **options: Any) -> tuple[ImportReport, dict[str, int]]:
    """Import `src` in format `fmt` into `project` atomically; returns the session report and
    the converter's own counts. `reader_options` go to the converter (e.g. `head` for links).
    Only files under `src` or the store's allowed roots are read (see `converters.walk`)."""
    if fmt not in FORMATS:
        raise InvalidInput(str(src), f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if not src.exists():
        raise InvalidInput(str(src), "no such file or directory")
    with containment(source_root(src, fmt), store.config.allow_roots, follow_symlinks) as rule, \
            store.begin_import(project, progress=progress, **options) as session:
        extra = FORMATS[fmt].read(src, session, dataset, **(reader_options or {}))
        if rule.skipped_links:
            extra[SKIPPED_LINKS] = rule.skipped_links
        return session.commit(), extra
