"""The per-item work of an import: only what an item needs is done for it."""

import pytest

from cas.ingest import prepare, statcache
from cas.ingest.session import ImportSession
from cas.maintenance.fsck import check as fsck
from cas.model.annotation import dumps, empty_annotation
from tests.conftest import jpeg_bytes, write_images


@pytest.fixture
def no_racy_window(monkeypatch):
    monkeypatch.setattr(statcache, "RACY_NS", 0)


def counting(monkeypatch, module, name):
    """Replace module.name by a wrapper that counts its calls; returns the list of calls."""
    calls = []
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def import_folder(store, paths, project, **options):
    with ImportSession(store, project, processes=False, **options) as session:
        for p in paths:
            session.add_item("ds", p.name, p)
        return session.commit()


def test_the_empty_annotation_is_made_and_settled_once_per_size(store, tmp_path, monkeypatch, no_racy_window):
    paths = write_images(tmp_path / "src", 100)  # 50 sizes, two images of each
    import_folder(store, paths, "a")
    settled = counting(monkeypatch, prepare, "known_intact")
    hashed = counting(monkeypatch, prepare, "spool_bytes")
    report = import_folder(store, paths, "b")  # every image known from the stat cache
    assert report.files_unread == len(paths) and report.items_added == len(paths)
    assert len(hashed) == len(settled) == 50  # one per size, not one per item
    for p in paths[:3]:
        rec = store.ns.item("b", "ds", p.name)
        assert store.read_bytes(rec.ann) == dumps(empty_annotation(rec.width, rec.height))
    assert fsck(store).clean


def test_verify_dedup_compares_the_empty_annotation_of_every_item(store, tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    paths = [tmp_path / "src" / f"{i}.jpg" for i in range(5)]
    for i, p in enumerate(paths):
        p.write_bytes(jpeg_bytes(20, 20, (40 * i, 0, 0)))  # one size: one empty annotation
    import_folder(store, paths, "a")
    compared = counting(monkeypatch, prepare.Preparer, "_verify_same")
    import_folder(store, paths, "b", verify_dedup=True)
    assert len(compared) == 2 * len(paths)  # each image and each annotation


def test_a_new_project_looks_up_no_stored_item(store, tmp_path, monkeypatch, no_racy_window):
    paths = write_images(tmp_path / "src", 40)
    looked_up = counting(monkeypatch, prepare, "raw_item")
    import_folder(store, paths, "a")
    import_folder(store, paths, "b")  # a new project again, this time from the stat cache
    assert looked_up == []
    assert import_folder(store, paths, "a").items_skipped == len(paths)
    assert len(looked_up) == len(paths)  # the project exists now: each item is compared
