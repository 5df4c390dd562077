"""`/<project>/.versions/<version id>/...`: the routing to each version of a project, and
the read-only rule. `.versions` lists the project's history; below it, a version is the same
View as the live project (fusefs.view), rendered over the version's tree
(`cas.versions.trees.VersionTree`) and read-only. `.versions` is not listed in the project
directory (tools that walk a project see only its datasets); it is there to be opened by name.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from cas.blobs.backends.fetch import RemoteError
from cas.errors import CasError, NotFound
from cas.ids import BlobId
from cas.store import Store
from cas.versions.snapshots import history
from cas.versions.trees import VersionTree, read_version

from .paths import Kind, Target
from .view import Attrs, View, dir_attrs

VIEWS_KEPT = 64  # versions never change: a view, once made, stays right


def is_read_only(t: Target) -> bool:
    """Whether a path is inside `.versions`, where nothing can be changed."""
    return bool(t.version) or t.kind is Kind.VERSIONS


class Versions:
    """`.versions` and, below it, one read-only View per version."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # this router's own cache (not a class-wide one, which would keep every router alive)
        self.view = functools.lru_cache(maxsize=VIEWS_KEPT)(self._view)

    def _view(self, project: str, version_id: str) -> View:
        try:
            version = read_version(self.store, BlobId.from_hex(version_id))
        except RemoteError:
            raise  # the shared remote could not be asked: EIO, not "no such version"
        except CasError:  # not a version id, nor a version here or in the shared remote
            raise NotFound(f"no version {version_id!r} of {project}") from None
        return View(self.store, VersionTree(self.store, project, version), read_only=True)

    def getattr(self, t: Target) -> Attrs:
        if t.kind is Kind.VERSIONS:
            return dir_attrs(self.store.ns.project(t.project).created, read_only=True)
        return self.view(t.project, t.version).getattr(t)

    def readdir(self, t: Target) -> Iterator[tuple[str, Attrs | None]]:
        if t.kind is not Kind.VERSIONS:
            yield from self.view(t.project, t.version).readdir(t)
            return
        yield ".", None
        yield "..", None
        for v in history(self.store, t.project):
            yield v.id.hex(), dir_attrs(v.time, read_only=True)
