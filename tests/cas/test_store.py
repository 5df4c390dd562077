import io
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cas import CorruptBlob, NotFound, Store
from cas.blobs.hashing import hash_bytes
from cas.blobs.spool import SMALL
from cas.errors import InvalidInput
from cas.maintenance.fsck import check as fsck
from cas.maintenance.gc import collect as collect_garbage
from cas.maintenance.stats import compute as compute_stats


def test_put_path_bytes_and_stream_give_the_same_id(store, tmp_path):
    data = os.urandom(5000)
    (tmp_path / "f").write_bytes(data)
    ids = {store.put(data), store.put(tmp_path / "f"), store.put(io.BytesIO(data))}
    assert ids == {hash_bytes(data)}
    assert store.stat(hash_bytes(data)).refcount == 3


def test_known_content_writes_nothing(store):
    blob = store.put(b"x" * 1000)
    path = store.local.path(blob)
    before = os.stat(path).st_mtime_ns, os.stat(path).st_ino
    store.put(b"x" * 1000)
    assert (os.stat(path).st_mtime_ns, os.stat(path).st_ino) == before
    assert len(list(store.local.list_ids())) == 1


def test_large_stream_is_spooled_not_held_in_memory(store):
    data = os.urandom(SMALL + 12345)
    blob = store.put(io.BytesIO(data))
    with store.open(blob) as reader:
        assert reader.size == len(data)
        assert reader.pread(100, SMALL) == data[SMALL:SMALL + 100]
    assert store.read_bytes(blob) == data
    assert os.listdir(store.tmp_dir) == []


def test_blob_lives_under_two_level_fanout(store):
    blob = store.put(b"fanout")
    h = str(blob)
    assert store.local.path(blob).endswith(f"blobs/{h[:2]}/{h[2:4]}/{h}")


def test_release_then_gc_frees_bytes(store):
    blob = store.put(b"a" * 100)
    store.put(b"a" * 100)
    store.release(blob)
    assert collect_garbage(store).blobs_removed == 0
    store.release(blob)
    report = collect_garbage(store)
    assert (report.blobs_removed, report.bytes_freed) == (1, 100)
    with pytest.raises(NotFound):
        store.stat(blob)


def test_release_without_reference_is_an_error(store):
    blob = store.put(b"once")
    store.release(blob)
    with pytest.raises(NotFound):
        store.release(blob)


def test_corrupt_blob_is_an_error_never_silent_bytes(store):
    blob = store.put(b"good content here")
    path = store.local.path(blob)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.write(b"evil")
    with pytest.raises(CorruptBlob, match=str(blob)):
        store.read_bytes(blob)
    with pytest.raises(CorruptBlob):
        store.copy_to(blob, store.root / "out")
    assert not (store.root / "out").exists()


def test_truncated_blob_is_detected_on_open(store):
    blob = store.put(b"0123456789")
    os.truncate(store.local.path(blob), 4)
    with pytest.raises(CorruptBlob, match="4 bytes"):
        store.open(blob)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=12))
def test_put_get_round_trip_and_refcounts(tmp_path_factory, blobs):
    with Store.init(tmp_path_factory.mktemp("prop")) as s:
        ids = [s.put(b) for b in blobs]
        for blob_id, data in zip(ids, blobs):
            assert s.read_bytes(blob_id) == data
        expected: dict = {}
        for blob_id in ids:
            expected[blob_id] = expected.get(blob_id, 0) + 1
        for blob_id, count in expected.items():
            assert s.stat(blob_id).refcount == count
        assert compute_stats(s)["blobs"] == len(set(blobs))
        for blob_id in ids:
            s.release(blob_id)
        assert collect_garbage(s).blobs_removed == len(set(blobs))
        assert fsck(s).clean


@pytest.mark.parametrize("fixture", ["sdk_video_project", "sdk_pointcloud_project", "sdk_episode_project",
                                     "sdk_volume_project"])
def test_set_meta_checks_each_annotation_as_its_kinds(tmp_path, fixture, request):
    """A new meta (a class added, as a meta.json written in the mount) is checked against
    every annotation as the project's kind reads them, not as an image's."""
    from converters.ingest import detect_format, import_source

    src = request.getfixturevalue(fixture)
    with Store.init(tmp_path / "store") as store:
        import_source(store, src, "p", detect_format(src))
        meta = store.ns.project("p").meta
        store.set_meta("p", {**meta, "classes": [*meta["classes"], {"title": "new", "shape": "rectangle",
                                                                    "color": "#00FF00"}]})
        assert store.ns.project("p").meta["classes"][-1]["title"] == "new"
        with pytest.raises(InvalidInput, match="unknown class"):  # a class its annotations use, removed
            store.set_meta("p", {**meta, "classes": meta["classes"][1:]})
