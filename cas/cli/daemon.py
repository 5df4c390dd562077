"""`python -m cas.cli.daemon --store S MOUNTPOINT`: the mount daemon (started by `cas mount`).

It lives in the composition root because it hands the mount (fusefs) the importer of
drops: the converters' detection and import, the code path `cas import` runs.
"""

from __future__ import annotations

import argparse
import faulthandler
from pathlib import Path

from cas.ingest.drops import SETTLE
from cas.store import Store


def import_drop(store: Store, folder: Path, project: str) -> str:
    """A folder copied into the mount, imported as `cas import FOLDER --project P` would
    (format detected); its staged files become blobs by a hard link, never copied."""
    from converters.ingest import detect_format, import_source

    fmt = detect_format(folder)
    report, _extra = import_source(store, folder, project, fmt, stat_cache=False, take_files=True)
    return f"{report.line()} (format {fmt})"


def main() -> None:
    from fusefs.mount import run_foreground

    parser = argparse.ArgumentParser(prog="python -m cas.cli.daemon")
    parser.add_argument("--store", required=True)
    parser.add_argument("--read-only", action="store_true")
    parser.add_argument("--project")
    parser.add_argument("--settle", type=float, default=SETTLE)
    parser.add_argument("mountpoint")
    args = parser.parse_args()
    faulthandler.enable()  # a crash in native code leaves every thread's stack in mount.log (our stderr)
    run_foreground(args.store, args.mountpoint, read_only=args.read_only, project=args.project,
                   importer=import_drop, settle=args.settle)


if __name__ == "__main__":
    main()
