"""The one driver that feeds converters' items into an import session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cas.errors import InvalidInput
from cas.session import ImportReport
from cas.store import Store

from . import FORMATS, GENERIC


def detect_format(src: Path) -> str:
    """The one format that fits `src`; an error lists none or several."""
    if not src.exists():
        raise InvalidInput(str(src), "no such file or directory")
    fits = [name for name, module in FORMATS.items() if module.detect(src)]
    if len(fits) > 1 and GENERIC in fits:
        fits.remove(GENERIC)
    if not fits:
        raise InvalidInput(str(src), f"no known format fits (known: {', '.join(FORMATS)}); pass --format")
    if len(fits) > 1:
        raise InvalidInput(str(src), f"several formats fit ({', '.join(fits)}); pass --format")
    return fits[0]


def count_items(src: Path, fmt: str) -> int | None:
    counter = getattr(FORMATS.get(fmt), "count", None)  # unknown: import_source reports it
    return counter(src) if counter else None


def import_source(store: Store, src: Path, project: str, fmt: str, dataset: str | None = None,
                  progress: Callable[[int], None] | None = None, reader_options: dict[str, Any] | None = None,
                  **options: Any) -> tuple[ImportReport, dict[str, int]]:
    """Import `src` in format `fmt` into `project` atomically; returns the session report and
    the converter's own counts. `reader_options` go to the converter (e.g. `head` for links)."""
    if fmt not in FORMATS:
        raise InvalidInput(str(src), f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if not src.exists():
        raise InvalidInput(str(src), "no such file or directory")
    with store.begin_import(project, progress=progress, **options) as session:
        extra = FORMATS[fmt].read(src, session, dataset, **(reader_options or {}))
        return session.commit(), extra
