"""The stat cache: unchanged files are not read again; every change is caught."""

import os
import time
from types import SimpleNamespace

import pytest

from cas.blobs.hashing import hash_bytes
from cas.ingest import statcache
from cas.ingest.session import ImportSession
from cas.maintenance.fsck import check as fsck
from cas.maintenance.gc import collect as collect_garbage
from tests.conftest import run_cas, write_images


@pytest.fixture
def no_racy_window(monkeypatch):
    """Files written by a test are younger than the racy window, so every entry would be
    racily clean: trust entries at once (the rule itself is tested on its own below)."""
    monkeypatch.setattr(statcache, "RACY_NS", 0)


def changed_same_size(path):
    """The file's bytes with one byte of the entropy-coded data flipped: the same size and a
    valid header and trailer, other content."""
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x01
    return bytes(data)


def import_folder(store, paths, project, **options):
    with ImportSession(store, project, **options) as session:
        for p in paths:
            session.add_item("ds", p.name, p)
        return session.commit()


def test_unchanged_files_are_not_read(store, tmp_path, no_racy_window):
    paths = write_images(tmp_path / "src", 40)
    first = import_folder(store, paths, "a")
    assert first.files_unread == 0 and first.bytes_read > 0
    again = import_folder(store, paths, "b")
    assert again.files_unread == 40 and again.bytes_read == 0 and again.items_added == 40
    for p in paths:  # same blobs and header facts as a real read
        a, b = store.ns.item("a", "ds", p.name), store.ns.item("b", "ds", p.name)
        assert (b.media, b.ann, b.width, b.height, b.mime, b.size) == (a.media, a.ann, a.width, a.height,
                                                                        a.mime, a.size)
    assert fsck(store).clean


def test_file_rewritten_in_place_with_same_size_and_mtime_is_caught_by_ctime(store, tmp_path, no_racy_window):
    paths = write_images(tmp_path / "src", 5)
    import_folder(store, paths, "a")
    target = paths[2]
    before = os.stat(target)
    new = changed_same_size(target)
    with open(target, "r+b") as f:  # same inode
        f.write(new)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime put back; ctime moves
    after = os.stat(target)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    report = import_folder(store, paths, "b")
    assert report.files_unread == 4
    assert store.ns.item("b", "ds", target.name).media == hash_bytes(new)


def test_file_replaced_by_rename_with_same_size_and_mtime_is_caught_by_inode(store, tmp_path, no_racy_window):
    paths = write_images(tmp_path / "src", 5)
    import_folder(store, paths, "a")
    target = paths[1]
    before = os.stat(target)
    new = changed_same_size(target)
    staged = tmp_path / "staged.jpg"
    staged.write_bytes(new)
    os.utime(staged, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(staged, target)  # what an atomic writer does
    report = import_folder(store, paths, "b")
    assert report.files_unread == 4
    assert store.ns.item("b", "ds", target.name).media == hash_bytes(new)


def test_entries_too_close_to_the_files_times_are_not_trusted():
    st = SimpleNamespace(st_size=100, st_mtime_ns=5_000_000_000, st_ctime_ns=5_000_000_000)
    facts = (100, 5_000_000_000, 5_000_000_000)
    assert not statcache.trusted(st, *facts, looked_at_ns=5_000_000_000)  # same tick: may change unseen
    assert not statcache.trusted(st, *facts, looked_at_ns=5_000_000_000 + statcache.RACY_NS)
    assert statcache.trusted(st, *facts, looked_at_ns=5_000_000_001 + statcache.RACY_NS)
    assert not statcache.trusted(st, 101, *facts[1:], looked_at_ns=10**12)  # size differs
    assert not statcache.trusted(st, 100, 5_000_000_000, 4_000_000_000, looked_at_ns=10**12)  # ctime differs


def test_a_racily_clean_file_is_hashed_again_and_its_change_caught(store, tmp_path):
    """With the real window: a file changed right after it was imported may keep its size
    and timestamps (one coarse clock tick), so it is read again."""
    paths = write_images(tmp_path / "src", 3)
    import_folder(store, paths, "a")
    new = changed_same_size(paths[0])
    with open(paths[0], "r+b") as f:
        f.write(new)
    report = import_folder(store, paths, "b")
    assert report.files_unread == 0
    assert store.ns.item("b", "ds", paths[0].name).media == hash_bytes(new)


def test_entry_is_refreshed_once_the_file_is_old_enough(store, tmp_path, monkeypatch):
    """An entry recorded while the file was young stays untrusted; the next read records a
    new moment, and then the file is a hit."""
    paths = write_images(tmp_path / "src", 3)
    monkeypatch.setattr(statcache, "RACY_NS", 10**18)  # every entry recorded now is racy ...
    import_folder(store, paths, "a")
    # A window that the first import's moment falls inside and the next one's outside:
    monkeypatch.setattr(statcache, "RACY_NS", time.time_ns() - os.stat(paths[-1]).st_ctime_ns - 1)
    assert import_folder(store, paths, "b").files_unread == 0  # ... so this import hashes them again
    assert import_folder(store, paths, "c").files_unread == 3


@pytest.mark.parametrize("option", [{"stat_cache": False}, {"verify_dedup": True}])
def test_no_stat_cache_and_verify_dedup_read_every_file(store, tmp_path, no_racy_window, option):
    paths = write_images(tmp_path / "src", 10)
    import_folder(store, paths, "a")
    report = import_folder(store, paths, "b", **option)
    assert report.files_unread == 0 and report.bytes_read == sum(p.stat().st_size for p in paths)


def test_entry_whose_blob_was_collected_is_not_used(store, tmp_path, no_racy_window):
    paths = write_images(tmp_path / "src", 6)
    import_folder(store, paths, "a")
    store.ns.remove_project("a")
    gc = collect_garbage(store)
    assert gc.blobs_removed >= 6 and gc.stat_entries_dropped == 6
    report = import_folder(store, paths, "b")
    assert report.files_unread == 0 and report.blobs_new >= 6
    assert fsck(store).clean
    for p in paths:
        assert store.read_bytes(store.ns.item("b", "ds", p.name).media) == p.read_bytes()


def test_annotation_builders_still_run_on_a_hit(store, tmp_path, no_racy_window):
    """A converter's annotation comes from its own files, which may have changed: only the
    image is taken from the cache, with its size."""
    paths = write_images(tmp_path / "src", 2)
    import_folder(store, paths, "a")
    sizes = []

    def builder(width, height):
        sizes.append((width, height))
        return None

    with ImportSession(store, "b") as session:
        for p in paths:
            session.add_item("ds", p.name, p, ann=builder)
        report = session.commit()
    assert report.files_unread == 2 and sorted(sizes) == [(16, 16), (17, 16)]


def test_cli_flag(tmp_path):
    paths = write_images(tmp_path / "src", 3)
    run_cas(tmp_path / "s", "init")
    run_cas(tmp_path / "s", "import", str(paths[0].parent), "-p", "a", "--format", "images")
    out = run_cas(tmp_path / "s", "import", str(paths[0].parent), "-p", "b", "--format", "images",
                  "--no-stat-cache").stdout.decode()
    assert "3 items" in out and "not read" not in out


def test_a_chunk_of_files_is_looked_up_in_one_read_transaction(store, tmp_path, no_racy_window, monkeypatch):
    from cas.ingest.session import CHUNK_ITEMS
    paths = write_images(tmp_path / "src", 4 * CHUNK_ITEMS)
    import_folder(store, paths, "a")
    reads = 0
    opened = store.index.read

    def counted_read(*args, **kwargs):
        nonlocal reads
        reads += 1
        return opened(*args, **kwargs)

    monkeypatch.setattr(store.index, "read", counted_read)
    assert import_folder(store, paths, "b").files_unread == len(paths)
    assert reads <= 4 + 2  # one per chunk, and a few for the session itself; not one per file


def test_a_store_without_entries_stats_no_file_before_reading_it(store, tmp_path, no_racy_window, monkeypatch):
    paths = write_images(tmp_path / "src", 20)
    looked_up = []
    lookup = statcache.lookup
    monkeypatch.setattr(statcache, "lookup", lambda *a: looked_up.append(a) or lookup(*a))
    assert import_folder(store, paths, "a").files_unread == 0
    assert looked_up == []  # nothing to find: each file is read once, and stat'ed only as it is
    assert import_folder(store, paths, "b").files_unread == 20 and len(looked_up) == 20


def test_a_changed_related_file_is_imported_though_the_media_is_known(store, tmp_path, no_racy_window):
    cloud = tmp_path / "a.pcd"
    cloud.write_bytes(b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1\nHEIGHT 1\n"
                      b"POINTS 1\nDATA ascii\n1 2 3\n")
    first, second = write_images(tmp_path / "cams", 2)

    def import_cloud(camera):
        with ImportSession(store, "p", project_type="point_clouds", overwrite=True) as session:
            session.add_item("ds", "a.pcd", cloud, related=(("front.jpg", str(camera), str(camera)),))
            return session.commit()

    import_cloud(first)
    report = import_cloud(second)  # the cloud from the stat cache, its annotation kept, one camera image new
    assert report.files_unread == 1 and report.items_skipped == 0
    _name, blob, _size = store.ns.item("p", "ds", "a.pcd").related_file("front.jpg")
    assert blob == hash_bytes(second.read_bytes())
