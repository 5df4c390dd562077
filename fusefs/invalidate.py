"""Keep the kernel's caches honest while letting them live long.

Names and attributes are cached for a minute (so `ls -l` of a large dataset and a
second pass over its files cost no lookups). Every change to the namespace, by
this mount or by any other process (`cas import --overwrite`, `cas rm`), is
logged in the index (`Index.log_change`); this thread reads the log a few times a
second and tells the kernel to drop what it cached for each changed path. It also
adds the daemon's cache hit counts to the store's totals every few seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from cas.model.layout import JSON_SECTIONS, META_NAME
from cas.store import Store

from .paths import dataset_path

log = logging.getLogger("cas.mount")
POLL_SECONDS = 0.1
COUNTERS_EVERY = 50  # polls between flushes of the cache counters (5 s)


class Invalidator:
    def __init__(self, store: Store, invalidate: Callable[[str], object], project: str | None,
                 media_dirs: tuple[str, ...]) -> None:
        self.store = store
        self.invalidate = invalidate  # drops what the kernel caches for a mount path
        self.project = project
        self.media_dirs = media_dirs
        self.seq = store.index.last_change()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cas-invalidate", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for the thread: it must not touch the store or the session after this
        (a read of a closed LMDB environment, or a notification to a freed session, crashes)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        polls = 0
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.seq, changes = self.store.index.changes_since(self.seq)
                for change in changes:
                    for path in self.paths(*change):
                        self.invalidate(path)
                polls += 1
                if polls % COUNTERS_EVERY == 0:
                    self.store.flush_cache_counters()
            except Exception:  # noqa: BLE001 - never let the thread die; log and go on
                log.exception("cache invalidation failed")

    def paths(self, project: str, dataset: str | None, item: str | None) -> list[str]:
        """Mount paths whose cached entries a change makes stale."""
        if self.project is not None and project != self.project:
            return []
        if dataset is None:
            paths = [f"/{project}/{META_NAME}", f"/{project}"]
        elif item is None:
            paths = [dataset_path(project, dataset)]
        else:
            base = dataset_path(project, dataset)
            paths = [f"{base}/{d}/{item}" for d in self.media_dirs]
            paths += [f"{base}/{section}/{item}.json" for section in JSON_SECTIONS]
        if self.project is not None:
            cut = len(self.project) + 1
            paths = [p[cut:] or "/" for p in paths]
        return paths
