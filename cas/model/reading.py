"""The read side of a project's namespace, as a protocol. Two things answer it: the live
namespace (`cas.model.namespace.Namespace`, and the mount's write-back laid over it) and one
version of a project (`cas.versions.trees.VersionTree`), so one renderer shows either."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from cas.records import ItemRecord, ProjectRecord


class NamespaceReader(Protocol):
    """Projects, datasets ('a/b' when nested) and items, read; NotFound for a missing name."""

    def projects(self) -> list[str]: ...

    def project(self, name: str) -> ProjectRecord: ...

    def datasets(self, project: str) -> list[str]:
        """Every dataset path, parents before children."""
        ...

    def children(self, project: str, parent: str | None) -> list[str]:
        """Dataset names directly under `parent` (None: the top level)."""
        ...

    def has_dataset(self, project: str, dataset: str) -> bool: ...

    def items(self, project: str, dataset: str, txn: Any = None) -> Iterator[tuple[str, ItemRecord]]:
        """A dataset's items in name order, read in `txn` when given (an index read transaction,
        so that a caller reading more in it sees one snapshot)."""
        ...

    def item(self, project: str, dataset: str, name: str) -> ItemRecord: ...


def children_of(datasets: Iterable[str], parent: str | None) -> list[str]:
    """The names directly under `parent` (None: the top level) among dataset paths."""
    depth = 0 if parent is None else parent.count("/") + 1
    prefix = parent + "/" if parent else ""
    return [d.rsplit("/", 1)[-1] for d in datasets if d.startswith(prefix) and d.count("/") == depth]
