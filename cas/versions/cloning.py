"""`cas clone URL PATH`: a new store at PATH, as `git clone` makes one, whose remote is URL and
which holds the projects shared there (all, or those asked for). Trees are fetched and the
index built; media bytes stay in S3 and are read on demand. A clone that fails leaves nothing."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from cas.config import NetOptions, S3Remote, settings
from cas.errors import AlreadyExists, NotFound
from cas.store import Store
from cas.versions.sharing import clone
from cas.versions.trees import Version


def clone_store(path: Path, remote: S3Remote, projects: Sequence[str] = (), net: NetOptions | None = None,
                progress: Callable[[int], object] | None = None) -> dict[str, Version]:
    """Create the store at `path` (missing or an empty directory) with `remote` as its S3
    remote and clone `projects` into it (default: every project the remote shares); returns
    each project's version. `progress` is told of the items whose trees arrived. On any
    failure `path` is left as it was found."""
    from cas.blobs.backends.s3 import S3Backend

    if path.exists() and not (path.is_dir() and not any(path.iterdir())):
        raise AlreadyExists(f"{path} exists and is not an empty directory (a clone makes a new store)")
    backend = S3Backend(remote, net or settings().net)
    backend.check()
    shared = backend.refs.list()
    missing = [p for p in projects if p not in shared]
    if missing:
        raise NotFound(f"{remote} shares no project {', '.join(missing)} "
                       f"(it shares: {', '.join(sorted(shared)) or 'none'})")
    existed = path.exists()
    try:
        with Store.init(path, net) as store:
            store.config.s3 = remote
            store.save_config()
            return {p: clone(store, p, progress) for p in (list(dict.fromkeys(projects)) or sorted(shared))}
    except BaseException:  # Ctrl-C too: a half-made store is not left behind
        _remove_made(path, existed)
        raise


def _remove_made(path: Path, existed: bool) -> None:
    """Remove what the clone made at `path`: all of it, or the contents of the empty directory it found."""
    if not existed:
        shutil.rmtree(path, ignore_errors=True)
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
