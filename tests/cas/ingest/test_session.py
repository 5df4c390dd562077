"""Atomic import sessions: all or nothing, dedup, conflicts, references."""

import os
import threading

import pytest

from cas import Conflict, InvalidInput, NotFound
from cas.ingest.session import ImportSession
from cas.maintenance.fsck import check as fsck
from cas.maintenance.gc import collect as collect_garbage
from cas.maintenance.stats import compute as compute_stats
from cas.model.annotation import empty_annotation
from tests.conftest import jpeg_bytes, png_bytes, write_images

META = {"classes": [{"title": "car", "shape": "rectangle", "color": "#FF0000"}], "tags": [], "projectType": "images"}


def box(x0, y0, x1, y1):
    return {"classTitle": "car", "geometryType": "rectangle", "tags": [],
            "points": {"exterior": [[x0, y0], [x1, y1]], "interior": []}}


def test_commit_makes_items_visible_at_once(store, tmp_path):
    paths = write_images(tmp_path / "src", 30)
    with ImportSession(store, "p") as session:
        for p in paths:
            session.add_item("train", p.name, p)
        assert not store.ns.has_project("p")
        report = session.commit()
    assert report.items_added == 30
    assert store.ns.count_items("p", "train") == 30
    rec = store.ns.item("p", "train", paths[3].name)
    assert (rec.width, rec.height, rec.mime) == (19, 16, "image/jpeg")
    assert store.read_json(rec.ann, "x") == empty_annotation(19, 16)
    assert fsck(store).clean


def test_error_midway_leaves_nothing_visible_and_gc_reclaims(store, tmp_path):
    paths = write_images(tmp_path / "src", 1500)  # more than one batch is committed
    (tmp_path / "src" / "zz_bad.jpg").write_bytes(jpeg_bytes()[:200])
    with pytest.raises(InvalidInput, match="zz_bad.jpg: truncated"):
        with ImportSession(store, "p") as session:
            for p in [*paths, tmp_path / "src" / "zz_bad.jpg"]:
                session.add_item("train", p.name, p)
            session.commit()
    assert store.ns.projects() == []
    assert compute_stats(store)["items"] == 0
    assert collect_garbage(store).blobs_removed > 0
    assert compute_stats(store)["blobs"] == 0 and fsck(store).clean
    assert os.listdir(store.tmp_dir) == []


def test_reimport_writes_no_new_blob(store, tmp_path):
    paths = write_images(tmp_path / "src", 20)
    for project in ("a", "b"):
        with ImportSession(store, project) as session:
            for p in paths:
                session.add_item("d", p.name, p)
            report = session.commit()
    assert report.blobs_new == 0 and report.items_added == 20
    rec = store.ns.item("a", "d", paths[0].name)
    assert store.stat(rec.media).refcount == 2


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="worker processes need two cores")
def test_expected_items_start_the_worker_processes_with_the_first_chunk(store, tmp_path):
    from cas.ingest.session import CHUNK_ITEMS, PROCESS_THRESHOLD
    paths = write_images(tmp_path / "src", CHUNK_ITEMS + 1)
    with ImportSession(store, "p") as session:
        session.expect_items(PROCESS_THRESHOLD)
        for p in paths:
            session.add_item("train", p.name, p)
        assert session._processes is not None  # not threads first, as for an import of unknown size
        report = session.commit()
    assert report.items_added == len(paths)


def _pcd(points: int) -> bytes:
    header = (f"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH {points}\nHEIGHT 1\n"
              f"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {points}\nDATA ascii\n")
    return (header + "".join(f"{i} {i} {i}\n" for i in range(points))).encode()


def test_a_conflict_names_the_media_as_the_project_type_does(store):
    """A point cloud project's conflict speaks of a point cloud, not of an image."""
    with ImportSession(store, "c", project_type="point_clouds") as s:
        s.add_item("d", "x.pcd", _pcd(3))
        s.commit()
    with pytest.raises(Conflict, match="c/d/x.pcd exists with a different point cloud \\(use --overwrite"):
        with ImportSession(store, "c", project_type="point_clouds") as s:
            s.add_item("d", "x.pcd", _pcd(4))
            s.commit()


def test_same_item_again_is_skipped_different_bytes_conflict_unless_overwrite(store):
    with ImportSession(store, "p") as s:
        s.add_item("d", "x.jpg", jpeg_bytes())
        s.commit()
    with ImportSession(store, "p") as s:
        s.add_item("d", "x.jpg", jpeg_bytes())
        assert s.commit().items_skipped == 1
    with pytest.raises(Conflict, match="p/d/x.jpg exists with a different image"):
        with ImportSession(store, "p") as s:
            s.add_item("d", "x.jpg", png_bytes())
            s.commit()
    old = store.ns.item("p", "d", "x.jpg")
    with ImportSession(store, "p", overwrite=True) as s:
        s.add_item("d", "x.jpg", png_bytes())
        assert s.commit().items_replaced == 1
    assert store.ns.item("p", "d", "x.jpg").mime == "image/png"
    assert store.stat(old.media).refcount == 0
    assert fsck(store).clean


def test_annotation_is_validated_against_meta_and_image_size(store):
    img = jpeg_bytes(40, 30)
    good = {**empty_annotation(40, 30), "objects": [box(1, 2, 10, 20)]}
    with ImportSession(store, "p", meta=None) as s:
        s.set_meta(META)
        s.add_item("d", "ok.jpg", img, ann=good)
        s.commit()
    bad_class = {**good, "objects": [{**box(1, 2, 3, 4), "classTitle": "bus"}]}
    bad_size = {**good, "size": {"height": 31, "width": 40}}
    bad_geom = {**good, "objects": [{**box(1, 2, 3, 4), "points": {"exterior": [[1, 2]], "interior": []}}]}
    cases = [(bad_class, r"d/ann/x.jpg.json: objects\[0\].classTitle: unknown class 'bus'"),
             (bad_size, "size: annotation says 40x31 but the image is 40x30"),
             (bad_geom, r"objects\[0\].points.exterior: rectangle needs exactly 2 points, got 1"),
             (b"{not json", "invalid JSON")]
    for ann, message in cases:
        with pytest.raises(InvalidInput, match=message):
            with ImportSession(store, "p") as s:
                s.add_item("d", "x.jpg", img, ann=ann)
                s.commit()
    assert [n for n, _ in store.ns.items("p", "d")] == ["ok.jpg"]


def test_skip_invalid_counts_and_continues(store):
    with ImportSession(store, "p", skip_invalid=True) as s:
        s.add_item("d", "good.jpg", jpeg_bytes())
        s.add_item("d", "bad.jpg", b"not an image at all")
        report = s.commit()
    assert (report.items_added, report.items_invalid) == (1, 1)
    assert "bad.jpg: not a readable image" in report.invalid[0]


def test_skip_invalid_leaves_out_an_item_with_a_bad_name_and_names_it(store):
    with ImportSession(store, "p", skip_invalid=True) as s:
        s.add_item("d", "good.jpg", jpeg_bytes())
        s.add_item("d", "ctl\x01.jpg", jpeg_bytes(), label="src/ctl.jpg")
        s.add_item("d", "rel.pcd", jpeg_bytes(), related=(("a/b.png", "x", "src/rel/a_b.png"),))
        s.add_link("d", "..", "http://127.0.0.1:9/x.jpg", label="urls.txt:3")
        s.add_links("d", [("n" * 256, "http://127.0.0.1:9/y.jpg", -1, None, 7),
                          ("ok.jpg", "http://127.0.0.1:9/z.jpg", -1, None, 8)], "urls.txt")
        report = s.commit()
    assert (report.items_added, report.items_invalid) == (2, 4)
    assert [line.split(": ")[0] for line in report.invalid] == ["src/ctl.jpg", "d/img/rel.pcd", "urls.txt:3",
                                                                "urls.txt:7"]
    assert "control characters" in report.invalid[0] and "slash" in report.invalid[1]
    assert sorted(n for n, _ in store.ns.items("p", "d")) == ["good.jpg", "ok.jpg"]


@pytest.mark.parametrize("name", ["../x", "a/b", "nul\x00byte", "n" * 256])
def test_bad_item_names_are_refused_before_anything_is_read(store, name):
    from cas import InvalidName
    with pytest.raises(InvalidName):
        with ImportSession(store, "p") as s:
            s.add_item("d", name, jpeg_bytes())
    assert store.ns.projects() == [] and compute_stats(store)["blobs"] == 0


def test_meta_with_duplicate_class_names_is_refused(store):
    meta = {"classes": [{"title": "car", "shape": "rectangle"}, {"title": "car", "shape": "polygon"}], "tags": []}
    with pytest.raises(InvalidInput, match=r"meta.json: classes\[1\].title: duplicate class name 'car'"):
        with ImportSession(store, "p") as s:
            s.set_meta(meta)
    assert store.ns.projects() == []


def test_keyboard_interrupt_leaves_nothing_visible(store, tmp_path):
    paths = write_images(tmp_path / "src", 2400)  # two batches are settled before the interrupt
    with pytest.raises(KeyboardInterrupt):
        with ImportSession(store, "p") as s:
            for i, p in enumerate(paths):
                if i == 2300:
                    raise KeyboardInterrupt
                s.add_item("d", p.name, p)
    assert store.ns.projects() == []
    assert compute_stats(store)["unreferenced_blobs"] > 0
    collect_garbage(store)
    assert compute_stats(store)["blobs"] == 0


def test_gc_refuses_to_run_while_an_import_is_open(store):
    from cas import StoreBusy
    with ImportSession(store, "p") as s:
        s.add_item("d", "x.jpg", jpeg_bytes())
        outcome: list[BaseException | None] = []

        def gc_elsewhere() -> None:
            try:
                collect_garbage(store)
                outcome.append(None)
            except BaseException as e:  # noqa: BLE001 - handed to the test's thread
                outcome.append(e)

        t = threading.Thread(target=gc_elsewhere)
        t.start()
        t.join()
        assert len(outcome) == 1 and isinstance(outcome[0], StoreBusy), outcome
        s.commit()
    assert store.ns.count_items("p", "d") == 1


def test_removing_items_datasets_projects_moves_references(store):
    with ImportSession(store, "p") as s:
        s.add_item("a", "1.jpg", jpeg_bytes(color=(1, 2, 3)))
        s.add_item("a/nested", "2.jpg", jpeg_bytes(color=(4, 5, 6)))
        s.add_item("b", "3.jpg", jpeg_bytes(color=(1, 2, 3)))
        s.commit()
    assert store.ns.datasets("p") == ["a", "a/nested", "b"]
    assert store.ns.children("p", "a") == ["nested"]
    assert store.ns.remove_dataset("p", "a") == 2
    assert store.ns.datasets("p") == ["b"]
    assert fsck(store).clean
    store.ns.remove_item("p", "b", "3.jpg")
    with pytest.raises(NotFound):
        store.ns.item("p", "b", "3.jpg")
    collect_garbage(store)
    assert compute_stats(store)["blobs"] == 0


def test_a_later_meta_widens_the_import_and_reaches_worker_processes(store, tmp_path):
    """An import of several source folders sets one meta per folder, the later ones after
    items: a class of another shape becomes `any`, a new class is known to the worker
    processes that started before it (expect_items starts them with the first chunk)."""
    paths = write_images(tmp_path / "imgs", 128)
    road = {"classTitle": "road", "geometryType": "polygon", "tags": [],
            "points": {"exterior": [[1, 1], [10, 1], [5, 9]], "interior": []}}
    car_polygon = {**road, "classTitle": "car"}
    with ImportSession(store, "p") as session:
        session.set_meta(META)
        session.expect_items(5000)
        for path in paths[:64]:
            session.add_item("a", path.name, str(path), ann={"size": {"width": 16 + int(path.stem[3:]) % 50,
                                                                         "height": 16}, "tags": [],
                                                                "objects": [box(1, 1, 5, 5)]})
        session.set_meta({"classes": [{"title": "road", "shape": "polygon", "color": "#00FF00"},
                                      {"title": "car", "shape": "polygon", "color": "#FF0000"}],
                          "tags": [], "projectType": "images"})
        for path in paths[64:]:
            session.add_item("b", path.name, str(path), ann={"size": {"width": 16 + int(path.stem[3:]) % 50,
                                                                         "height": 16}, "tags": [],
                                                                "objects": [road, car_polygon]})
        report = session.commit()
    assert report.items_added == 128
    shapes = {c["title"]: c["shape"] for c in store.ns.project("p").meta["classes"]}
    assert shapes == {"car": "any", "road": "polygon"}


@pytest.mark.parametrize("from_stat_cache", [False, True])
def test_an_unchanged_reimport_publishes_no_item(store, tmp_path, monkeypatch, from_stat_cache):
    """Whether its files are read again (young files: racily clean) or known from the stat
    cache, an item found as it is stored is neither staged nor published."""
    from cas.ingest import prepare, statcache
    from cas.model.namespace import Namespace
    if from_stat_cache:
        monkeypatch.setattr(statcache, "RACY_NS", 0)
    paths = write_images(tmp_path / "src", 40)
    for overwrite in (False, True):
        with ImportSession(store, "p", overwrite=overwrite) as session:
            for p in paths:
                session.add_item("d", p.name, p)
            session.commit()
    prepared = []
    prepare_item = prepare.Preparer.prepare
    monkeypatch.setattr(prepare.Preparer, "prepare", lambda self, *a: prepared.append(a) or prepare_item(self, *a))
    published = []
    put_item = Namespace.put_item
    monkeypatch.setattr(Namespace, "put_item", lambda self, *a, **k: published.append(a) or put_item(self, *a, **k))
    paths[5].write_bytes(png_bytes())  # one changed file among unchanged ones
    with ImportSession(store, "p", overwrite=True) as session:
        for p in paths:
            session.add_item("d", p.name, p)
        report = session.commit()
    assert (report.items_added, report.items_skipped, report.items_replaced) == (0, 39, 1)
    assert report.files_unread == (39 if from_stat_cache else 0)
    assert [a[3] for a in published] == [paths[5].name]  # only the changed item is written
    if from_stat_cache:  # nothing but the stat cache and the stored item are looked at
        assert [a[3] for a in prepared] == [paths[5]]
    assert store.ns.item("p", "d", paths[5].name).mime == "image/png"
    assert fsck(store).clean


def test_the_last_two_batches_are_made_durable_with_one_sync(store, tmp_path, monkeypatch):
    from cas.ingest.session import BATCH_ITEMS
    paths = write_images(tmp_path / "src", BATCH_ITEMS + 100)  # one full batch, and some
    syncs = []
    sync = store.write_backend.sync
    monkeypatch.setattr(store.write_backend, "sync", lambda: syncs.append(1) or sync())
    with ImportSession(store, "p", processes=False) as session:
        for p in paths:
            session.add_item("d", p.name, p)
        report = session.commit()
    assert report.items_added == len(paths) and len(syncs) == 1
    assert fsck(store).clean


def test_link_lists_publish_references_as_one_item_each_would(store):
    """add_links' publishing path (no record decoded) against the index's own recount: a link
    new to the index, one another project holds, one listed twice under two names, and a
    re-import that changes nothing."""
    urls = [f"http://127.0.0.1:9/{i}.jpg" for i in range(3)]
    with ImportSession(store, "p") as s:
        s.add_links("d", [(f"{i}.jpg", url, -1, None, i + 1) for i, url in enumerate(urls)], "p.txt")
        s.commit()
    with ImportSession(store, "q") as s:
        s.add_links("d", [("a.jpg", urls[0], -1, None, 1), ("b.jpg", urls[0], -1, None, 2),
                          ("new.jpg", "http://127.0.0.1:9/new.jpg", -1, None, 3)], "q.txt")
        report = s.commit()
    assert report.items_added == 3
    with ImportSession(store, "q") as s:
        s.add_links("d", [("a.jpg", urls[0], -1, None, 1)], "q.txt")
        assert s.commit().items_skipped == 1
    media = store.ns.item("q", "d", "a.jpg").media
    assert store.stat(media).refcount == 3  # p/d/0.jpg, q/d/a.jpg, q/d/b.jpg
    assert store.stat(store.ns.item("q", "d", "a.jpg").ann).refcount == 6
    assert fsck(store, verify=False).clean, "the stored reference counts are the recounted ones"


def test_a_refused_link_names_the_list_and_line(store):
    with ImportSession(store, "p", skip_invalid=True) as s:
        s.add_links("d", [("a.jpg", "http://127.0.0.1:9/a.jpg", -1, None, 1),
                          ("b.jpg", "gopher://127.0.0.1/b.jpg", -1, None, 7)], "list.txt")
        report = s.commit()
    assert report.items_added == 1 and report.invalid == [
        "list.txt:7: URL scheme 'gopher' is not allowed (allowed: http, https, s3, file): gopher://127.0.0.1/b.jpg"]
