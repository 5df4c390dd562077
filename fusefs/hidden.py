"""Entries the mount would show but that a copy expects to create itself.

`cp -r project /mnt/` makes directories with mkdir and files with O_EXCL, so what
it is about to create must not be there yet:
- a project made by mkdir in this mount hides its meta.json until one is written (its
  annotations meanwhile wait unchecked, see WriteBack.close_json);
- a dataset made by mkdir shows its sections (img/, ann/, ...) to the process that made it
  only once they are made, or once someone lists the dataset; every other process sees them
  at once (`mkdir new; mv x.jpg new/img/`);
- in such a dataset, the generated files of an image closed in it (its empty
  annotation, its img_info/ file) are hidden until written, or until their section is
  listed;
- a generated file that was removed (ann/<item>.json resets the annotation, img_info/,
  meta.json) stays hidden until written again, so that `rm -rf` can empty its directory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from cas.model.layout import INFO_SECTIONS

FileKey = tuple[str, str, str, str]  # project, dataset, section, item


def _nobody() -> int:
    return 0


class Hidden:
    def __init__(self, caller: Callable[[], int] = _nobody) -> None:
        self.caller = caller  # the pid of the process a request comes from (0: unknown)
        self._makers: dict[tuple[str, str], int] = {}  # new dataset -> the pid that made it
        self._lock = threading.Lock()
        self._fresh_projects: set[str] = set()
        self._new_datasets: dict[tuple[str, str], set[str]] = {}  # -> the sections made so far
        self._files: set[FileKey] = set()
        self._nested: set[tuple[str, str]] = set()  # empty datasets/ directories made by mkdir

    # -- projects and meta.json --------------------------------------------------------------
    def hide_meta(self, project: str) -> None:
        with self._lock:
            self._fresh_projects.add(project)

    def meta_hidden(self, project: str) -> bool:
        return project in self._fresh_projects

    def meta_written(self, project: str) -> None:
        with self._lock:
            self._fresh_projects.discard(project)

    # -- datasets and their sections ---------------------------------------------------------
    def dataset_made(self, project: str, dataset: str) -> None:
        with self._lock:
            self._new_datasets[(project, dataset)] = set()
            self._makers[(project, dataset)] = self.caller()

    def is_new(self, project: str, dataset: str) -> bool:
        return (project, dataset) in self._new_datasets

    def section_hidden(self, project: str, dataset: str, section: str) -> bool:
        made = self._new_datasets.get((project, dataset))
        return made is not None and section not in made and self._makers.get((project, dataset)) == self.caller()

    def section_made(self, project: str, dataset: str, section: str) -> bool:
        """Record a mkdir of a section; False if it exists already (not hidden)."""
        with self._lock:
            made = self._new_datasets.get((project, dataset))
            if made is None or section in made:
                return False
            made.add(section)
            return True

    def sections_made(self, project: str, dataset: str) -> set[str]:
        """The sections of a new dataset made by mkdir so far."""
        return set(self._new_datasets.get((project, dataset), ()))

    def nested_made(self, project: str, dataset: str) -> None:
        with self._lock:
            self._nested.add((project, dataset))

    def has_nested(self, project: str, dataset: str) -> bool:
        return (project, dataset) in self._nested

    def dataset_listed(self, project: str, dataset: str) -> None:
        """Someone looked: the dataset shows what it has from now on."""
        with self._lock:
            made = self._new_datasets.pop((project, dataset), None)
            self._makers.pop((project, dataset), None)
            if made is not None and "datasets" in made:
                self._nested.add((project, dataset))

    # -- generated files -----------------------------------------------------------------------
    def media_closed(self, project: str, dataset: str, item: str, ann_written: bool) -> None:
        if (project, dataset) in self._new_datasets:
            with self._lock:
                self._files.update((project, dataset, info, item) for info in INFO_SECTIONS)
                if not ann_written:
                    self._files.add((project, dataset, "ann", item))

    def hide_file(self, project: str, dataset: str, section: str, item: str) -> None:
        with self._lock:
            self._files.add((project, dataset, section, item))

    def file_hidden(self, project: str, dataset: str, section: str, item: str) -> bool:
        return bool(self._files) and (project, dataset, section, item) in self._files

    def file_written(self, project: str, dataset: str, section: str, item: str) -> None:
        if self._files:
            with self._lock:
                self._files.discard((project, dataset, section, item))

    def section_listed(self, project: str, dataset: str, section: str) -> None:
        if self._files:
            with self._lock:
                self._files = {k for k in self._files if k[:3] != (project, dataset, section)}

    def forget(self, project: str, dataset: str | None = None) -> None:
        """A project or dataset (with its nested ones) was removed."""
        def gone(p: str, d: str) -> bool:
            return p == project and (dataset is None or d == dataset or d.startswith(dataset + "/"))
        with self._lock:
            if dataset is None:
                self._fresh_projects.discard(project)
            self._files = {k for k in self._files if not gone(*k[:2])}
            self._new_datasets = {k: v for k, v in self._new_datasets.items() if not gone(*k)}
            self._makers = {k: v for k, v in self._makers.items() if not gone(*k)}
            self._nested = {k for k in self._nested if not gone(*k)}
