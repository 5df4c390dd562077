"""The snapshot tree format and VersionTree: a version answers the read protocol
(cas.model.reading) as the live namespace answered it when the version was taken."""

from __future__ import annotations

from typing import Any

import pytest

from cas import CasError, NotFound, Store
from cas.model.reading import NamespaceReader
from cas.versions import snapshots
from cas.versions.snapshots import snapshot
from cas.versions.trees import VersionTree, read_buckets, read_entries, read_project
from tests.cas.versions.test_snapshots import add
from tests.conftest import jpeg_bytes

DATASETS = ("a", "a/sub", "a/sub/deep", "b")


def answers(reader: NamespaceReader, project: str) -> dict[str, Any]:
    """Everything the read protocol tells of a project."""
    datasets = reader.datasets(project)
    return {
        "projects": [p for p in reader.projects() if p == project],
        "meta": reader.project(project).meta,
        "datasets": datasets,
        "children": {parent: reader.children(project, parent) for parent in (None, *datasets)},
        "items": {d: list(reader.items(project, d)) for d in datasets},
        "item": {(d, name): reader.item(project, d, name) for d in datasets for name, _ in reader.items(project, d)},
        "has": [reader.has_dataset(project, d) for d in (*datasets, "nope", "a/nope")],
    }


@pytest.fixture
def small_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshots, "BUCKET_ITEMS", 4)  # many buckets: lookups cross their edges


def test_a_version_reads_as_the_namespace_did_when_it_was_taken(store: Store, small_buckets: None) -> None:
    add(store, {f"{d}/{i:02d}.jpg": jpeg_bytes(8 + i, 8, (i, len(d), 0)) for d in DATASETS for i in range(11)})
    before = answers(store.ns, "p")
    version, _new = snapshot(store, "p", "one")
    add(store, {"a/00.jpg": jpeg_bytes(40, 40), "b/new.jpg": jpeg_bytes(9, 9)}, overwrite=True)
    store.ns.remove_dataset("p", "a/sub/deep")
    tree = VersionTree(store, "p", version)
    assert answers(tree, "p") == before
    assert answers(store.ns, "p") != before, "the live project moved on"
    assert tree.project("p").created == tree.project("p").mtime == version.time


@pytest.mark.parametrize("dataset, name", [("a", "0.jpg"), ("a", "05.jpg~"), ("a", "99.jpg"), ("a", ""),
                                           ("b", "zz"), ("nope", "00.jpg")])
def test_what_a_version_does_not_hold_is_not_found(store: Store, small_buckets: None, dataset: str,
                                                    name: str) -> None:
    add(store, {f"{d}/{i:02d}.jpg": jpeg_bytes(8 + i, 8) for d in ("a", "b") for i in range(11)})
    tree = VersionTree(store, "p", snapshot(store, "p")[0])
    with pytest.raises(NotFound):
        tree.item("p", dataset, name)


def test_a_version_answers_for_its_own_project_only(store: Store) -> None:
    add(store, {"a/x.jpg": jpeg_bytes(8, 8)})
    tree = VersionTree(store, "p", snapshot(store, "p")[0])
    for ask in (lambda: tree.project("q"), lambda: tree.datasets("q"), lambda: list(tree.items("q", "a"))):
        with pytest.raises(NotFound, match="of project p, not q"):
            ask()
    with pytest.raises(NotFound, match="no dataset nope"):
        list(tree.items("p", "nope"))


def test_a_tree_read_as_another_kind_is_refused(store: Store) -> None:
    add(store, {"a/x.jpg": jpeg_bytes(8, 8)})
    version = snapshot(store, "p")[0]
    dataset = read_project(store, version.tree).datasets[0]
    bucket = read_buckets(store, dataset.tree)[0]
    assert [name for name, _record, _link in read_entries(store, bucket.tree)] == ["x.jpg"]
    for read, blob in ((read_buckets, version.tree), (read_project, dataset.tree), (read_entries, version.id),
                       (read_project, store.ns.item("p", "a", "x.jpg").ann)):
        with pytest.raises(CasError, match=f"blob {blob} is not a"):
            read(store, blob)
