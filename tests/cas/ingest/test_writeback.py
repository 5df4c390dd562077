"""The mount's write-back engine without a kernel mount: read-your-writes, group commit,
barriers, bytes written once, a full disk, and replay of the journal after SIGKILL."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cas import InvalidInput, NotFound, Store
from cas.blobs.hashing import hash_bytes
from cas.ingest import StagedFile, WriteBack
from cas.maintenance.fsck import check as fsck
from cas.model.annotation import empty_annotation
from tests.conftest import ROOT, jpeg_bytes, png_bytes

META = {"classes": [{"title": "car", "shape": "rectangle", "color": "#FF0000"}], "tags": [], "projectType": "images"}


def car(x0, y0, x1, y1):
    return {"classTitle": "car", "geometryType": "rectangle", "tags": [],
            "points": {"exterior": [[x0, y0], [x1, y1]], "interior": []}}


@pytest.fixture
def wb(store: Store):
    store.ns.create_project("p", META)
    store.ns.create_dataset("p", "d")
    w = WriteBack(store)
    yield w
    w.close()


def staged(wb: WriteBack, data: bytes) -> StagedFile:
    return StagedFile.create(str(wb.directory), data)


def close_image(wb: WriteBack, name: str, data: bytes) -> None:
    wb.close_media("p", "d", name, staged(wb, data), f"p/d/img/{name}")


def close_ann(wb: WriteBack, item: str, ann: dict) -> None:
    wb.close_json("p", "d", "ann", item, staged(wb, json.dumps(ann).encode()), f"p/d/ann/{item}.json")


def test_a_closed_file_reads_back_at_once_and_is_in_the_index_after_the_barrier(store, wb):
    data = jpeg_bytes(40, 30)
    close_image(wb, "a.jpg", data)
    rec = wb.item("p", "d", "a.jpg")
    assert (rec.width, rec.height, rec.mime, rec.size) == (40, 30, "image/jpeg", len(data))
    assert wb.read_blob(rec.media) == data
    assert json.loads(wb.read_blob(rec.ann)) == empty_annotation(40, 30)
    assert [name for name, _ in wb.items("p", "d", None)] == ["a.jpg"]
    wb.barrier()
    assert store.ns.item("p", "d", "a.jpg") == rec
    assert store.read_bytes(rec.media) == data
    assert fsck(store).clean


def test_a_batch_is_one_sync_new_bytes_are_written_once_and_duplicates_never(store, wb, monkeypatch):
    syncs = []
    real_sync = store.write_backend.sync
    monkeypatch.setattr(store.write_backend, "sync", lambda: (syncs.append(1), real_sync())[1])
    images = [png_bytes(16, 16, (i, 0, 0)) for i in range(50)]
    inodes = {}
    with wb._lock:  # the committer waits for this lock: every close below lands in one batch
        for i, data in enumerate(images):
            file = staged(wb, data)
            wb.close_media("p", "d", f"{i:02d}.png", file, f"p/d/img/{i:02d}.png")
            inodes[hash_bytes(data)] = os.stat(file.path).st_ino  # written once, at close
        dup = staged(wb, images[0])
        wb.close_media("p", "d", "dup.png", dup, "p/d/img/dup.png")
        assert dup.path is None, "a duplicate's bytes were written"
    wb.barrier()
    assert len(syncs) == 1
    assert store.ns.count_items("p", "d") == 51
    for blob, inode in inodes.items():  # the spool file became the blob: same inode, not a copy
        assert os.stat(store.local.path(blob)).st_ino == inode
    assert len([p for p in (store.root / "blobs").rglob("*") if p.is_file()]) == 50 + 1  # + the one empty annotation


def test_bad_content_is_refused_at_close_and_changes_nothing(store, wb):
    close_image(wb, "a.jpg", jpeg_bytes(40, 30))
    close_ann(wb, "a.jpg", {**empty_annotation(40, 30), "objects": [car(1, 1, 5, 5)]})
    wb.barrier()
    before = store.ns.item("p", "d", "a.jpg")
    with pytest.raises(InvalidInput, match="truncated|not a"):
        close_image(wb, "b.jpg", jpeg_bytes()[:100])
    with pytest.raises(InvalidInput, match="bus"):
        close_ann(wb, "a.jpg", {**empty_annotation(40, 30), "objects": [{**car(1, 1, 5, 5), "classTitle": "bus"}]})
    with pytest.raises(InvalidInput, match="size"):
        close_ann(wb, "a.jpg", empty_annotation(41, 30))
    with pytest.raises(InvalidInput, match="annotation does not fit"):
        close_image(wb, "a.jpg", jpeg_bytes(20, 20))  # its boxed annotation would fall outside
    wb.barrier()
    assert store.ns.item("p", "d", "a.jpg") == before
    with pytest.raises(NotFound):
        wb.item("p", "d", "b.jpg")


def test_an_annotation_before_its_image_waits_and_is_attached(store, wb):
    ann = {**empty_annotation(40, 30), "objects": [car(2, 2, 9, 9)]}
    close_ann(wb, "a.jpg", ann)
    assert wb.waiting("p", "d", "ann")[0][0] == "a.jpg"
    with pytest.raises(NotFound):
        wb.item("p", "d", "a.jpg")
    close_image(wb, "a.jpg", jpeg_bytes(40, 30))
    wb.barrier()
    assert wb.waiting("p", "d", "ann") == []
    assert store.read_json(store.ns.item("p", "d", "a.jpg").ann, "a") == ann


def test_remove_and_clear(store, wb):
    close_image(wb, "a.jpg", jpeg_bytes(40, 30))
    close_image(wb, "b.jpg", jpeg_bytes(40, 30, (1, 2, 3)))
    close_ann(wb, "a.jpg", {**empty_annotation(40, 30), "objects": [car(1, 1, 5, 5)]})
    wb.remove_item("p", "d", "b.jpg")
    wb.clear_json("p", "d", "ann", "a.jpg")
    assert [name for name, _ in wb.items("p", "d", None)] == ["a.jpg"]
    wb.barrier()
    assert [name for name, _ in store.ns.items("p", "d")] == ["a.jpg"]
    assert store.read_json(store.ns.item("p", "d", "a.jpg").ann, "a") == empty_annotation(40, 30)


def test_a_full_disk_is_enospc_at_the_barrier_and_the_batch_is_retried(store, wb, monkeypatch):
    real_sync = store.write_backend.sync
    failing = [True]

    def sync():
        if failing[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_sync()
    monkeypatch.setattr(store.write_backend, "sync", sync)
    monkeypatch.setattr("cas.ingest.committer.RETRY_DELAY", 0.01)
    close_image(wb, "a.jpg", jpeg_bytes(40, 30))
    with pytest.raises(OSError) as err:
        wb.barrier()
    assert err.value.errno == errno.ENOSPC
    assert wb.item("p", "d", "a.jpg").width == 40  # still pending, still readable
    with pytest.raises(NotFound):
        store.ns.item("p", "d", "a.jpg")
    assert fsck(store).clean  # nothing half-committed: the blob file was taken back
    failing[0] = False
    wb.barrier()
    assert store.ns.item("p", "d", "a.jpg").width == 40


CHILD = textwrap.dedent("""
    import json, sys, time
    import cas.ingest.committer as committer
    from cas import Store
    from cas.ingest import StagedFile, WriteBack
    from tests.conftest import jpeg_bytes
    committer.BATCH_DELAY = 3600  # nothing is committed before the kill
    store = Store(sys.argv[1])
    wb = WriteBack(store)
    new = lambda data: StagedFile.create(str(wb.directory), data)
    for i in range(20):
        wb.close_media("p", "d", f"{i:02d}.jpg", new(jpeg_bytes(40, 30, (i, 9, 9))), f"{i:02d}.jpg")
    ann = json.dumps({"description": "waits", "tags": [], "size": {"width": 40, "height": 30},
                      "objects": []}).encode()
    wb.close_json("p", "d", "ann", "late.jpg", new(ann), "p/d/ann/late.jpg.json")
    print("closed", flush=True)
    time.sleep(3600)
""")


def test_sigkill_before_the_commit_loses_nothing_that_was_closed(tmp_path):
    root = tmp_path / "store"
    with Store.init(root) as store:
        store.ns.create_project("p", META)
        store.ns.create_dataset("p", "d")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(root)], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"closed\n"  # type: ignore[union-attr]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()  # type: ignore[union-attr]
    with Store(root) as store:
        assert store.ns.count_items("p", "d") == 0
        report = fsck(store)
        assert [p.kind for p in report.problems] == ["pending-journal"]
        wb = WriteBack(store)  # the next mount: replays the journal
        try:
            close_image(wb, "late.jpg", jpeg_bytes(40, 30))  # the waiting annotation survived too
            wb.barrier()
        finally:
            wb.close()
        assert store.ns.count_items("p", "d") == 21
        assert store.read_json(store.ns.item("p", "d", "late.jpg").ann, "late")["description"] == "waits"
        assert store.read_bytes(store.ns.item("p", "d", "07.jpg").media) == jpeg_bytes(40, 30, (7, 9, 9))
        assert fsck(store).clean
        assert not list(Path(store.tmp_dir).glob("ingest-*")), "the staging directory outlived its mount"


KILLED_MID_COMMIT = textwrap.dedent("""
    import json, os, signal, sys
    from cas import Store
    from cas.ingest import StagedFile, WriteBack
    from tests.conftest import jpeg_bytes
    store = Store(sys.argv[1])
    wb = WriteBack(store)
    new = lambda data: StagedFile.create(str(wb.directory), data)
    ann = json.dumps({"description": "late", "tags": [], "size": {"width": 40, "height": 30},
                      "objects": []}).encode()

    def sync():  # the batch's blob files are in place (the image's and its empty annotation's)
        wb.close_json("p", "d", "ann", "a.jpg", new(ann), "p/d/ann/a.jpg.json")  # replaces that annotation
        os.kill(os.getpid(), signal.SIGKILL)  # before the transaction
    store.write_backend.sync = sync
    wb.close_media("p", "d", "a.jpg", new(jpeg_bytes(40, 30)), "p/d/img/a.jpg")
    wb.barrier()
""")


def test_blob_files_of_a_commit_killed_before_its_transaction_are_removed_at_replay(tmp_path):
    root = tmp_path / "store"
    with Store.init(root) as store:
        store.ns.create_project("p", META)
        store.ns.create_dataset("p", "d")
    child = subprocess.run([sys.executable, "-c", KILLED_MID_COMMIT, str(root)], cwd=ROOT, capture_output=True)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    with Store(root) as store:
        kinds = sorted(p.kind for p in fsck(store).problems)
        assert kinds == ["orphan-file", "orphan-file", "pending-journal"], kinds  # the image, its empty annotation
        WriteBack(store).close()  # the next mount: replays, commits, removes what nothing references
        assert fsck(store).clean, [str(p) for p in fsck(store).problems]
        rec = store.ns.item("p", "d", "a.jpg")
        assert store.read_json(rec.ann, "a")["description"] == "late"
