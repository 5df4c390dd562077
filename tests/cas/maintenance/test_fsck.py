"""fsck marks a damaged blob; a re-import, a put or a mount's write of its bytes heals it."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
from pathlib import Path

import pytest
from PIL import Image

from cas import BlobId, Store
from cas.blobs.backends.packs import entries
from cas.maintenance.fsck import check as fsck
from tests.conftest import assert_user_error, damage_blob, jpeg_bytes, run_cas


def noise_png(seed: int) -> bytes:
    """An image too large for a pack (a loose blob file)."""
    buf = io.BytesIO()
    Image.frombytes("RGB", (640, 600), random.Random(seed).randbytes(640 * 600 * 3)).save(buf, "PNG")
    return buf.getvalue()


IMAGES = {"loose": noise_png, "packed": lambda seed: jpeg_bytes(20 + seed, 20)}


def imported(tmp_path: Path, kind: str) -> tuple[Path, Path, bytes]:
    """A store with project p: a/one.png and b/same.png share one image; a/two.png another."""
    src = tmp_path / "src"
    for rel, seed in (("a/one.png", 1), ("b/same.png", 1), ("a/two.png", 2)):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(IMAGES[kind](seed))
    store = tmp_path / "store"
    run_cas(store, "import", str(src), "--project", "p", "--format", "images")
    with Store(store) as s:
        media = s.ns.item("p", "a", "one.png").media
        assert (s.stat(media).location == "pack") == (kind == "packed")
    return store, src, bytes(media)


def damage(store: Path, media: bytes, how: str) -> None:
    """Damage the blob, and any other copy of it in the store's packs (an import may have
    packed it twice): else fsck re-points its record at that copy."""
    with Store(store) as s:
        if how == "corrupt":
            damage_blob(s, media)
            for _name, path, _size in s.local.list_packs():
                for blob_id, offset, _n in entries(path):
                    if blob_id == media and offset != s.stat(BlobId(media)).offset:
                        os.chmod(path, 0o644)
                        with open(path, "r+b") as f:
                            f.seek(offset)
                            f.write(bytes([f.read(1)[0] ^ 0xFF]))
        else:
            os.unlink(s.local.path(s.ns.item("p", "a", "one.png").media))


def fsck_lines(store: Path, *args: str) -> tuple[int, list[str]]:
    proc = run_cas(store, "fsck", *args, check=False)
    return proc.returncode, proc.stdout.decode().splitlines()


def assert_healed(store: Path, media: bytes, original: bytes) -> None:
    status, out = fsck_lines(store)
    assert status == 0 and f"healed-blob: {media.hex()}: good bytes again" in " ".join(out), out
    assert out[-1].endswith("clean")
    with Store(store) as s:
        assert s.read_bytes(s.ns.item("p", "b", "same.png").media) == original
    status, out = fsck_lines(store)  # the mark is gone: a later fsck says nothing of it
    assert status == 0 and not any("healed" in line for line in out)


@pytest.mark.parametrize("kind", ["loose", "packed"])
def test_reimport_of_the_original_heals_a_corrupt_blob(tmp_path: Path, kind: str) -> None:
    store, src, media = imported(tmp_path, kind)
    damage(store, media, "corrupt")
    got = run_cas(store, "get", media.hex(), check=False)
    last = got.stderr.decode().splitlines()[-1]  # after the reader's log line
    assert got.returncode == 1 and last.startswith(f"error: blob {media.hex()} is corrupt"), last
    assert last.endswith("`cas fsck` names the items that use it, and a re-import of the original file heals it")
    status, out = fsck_lines(store)
    assert status == 1
    needs = [line for line in out if line.startswith("needs-source:")]
    assert needs == [f"needs-source: {media.hex()}: used by image of p/a/one.png, image of p/b/same.png; "
                     "re-import the original file (`cas import`, `cas put` or a copy into the mount) to heal it, "
                     "or `cas rm` those items"]
    again = run_cas(store, "import", str(src), "--project", "p", "--format", "images").stdout.decode()
    assert "1 new blob," in again  # the damaged one, written again
    assert_healed(store, media, (src / "a/one.png").read_bytes())


def test_put_of_the_same_bytes_heals_a_missing_blob_file(tmp_path: Path) -> None:
    store, src, media = imported(tmp_path, "loose")
    damage(store, media, "missing")
    assert_user_error(run_cas(store, "get", media.hex(), check=False), "its file is missing; `cas fsck` names the "
                      "items that use it, and a re-import of the original file heals it")
    assert fsck_lines(store)[0] == 1
    run_cas(store, "put", str(src / "a/one.png"))
    assert_healed(store, media, (src / "a/one.png").read_bytes())


def test_repair_keeps_the_items_of_a_damaged_image_and_says_what_to_reimport(tmp_path: Path) -> None:
    store, src, media = imported(tmp_path, "loose")
    damage(store, media, "missing")
    status, out = fsck_lines(store, "--repair")
    assert status == 1, out
    assert any(line.startswith(f"needs-source: {media.hex()}: used by image of p/a/one.png") for line in out), out
    assert out[-1].endswith("repaired, 1 blob needs its source file")
    listing = json.loads(run_cas(store, "ls", "p/a", "--json").stdout)
    assert "one.png" in json.dumps(listing)  # the items stay, waiting for their bytes
    run_cas(store, "import", str(src / "a"), "--project", "p", "--dataset", "a", "--format", "images")
    assert_healed(store, media, (src / "a/one.png").read_bytes())


def test_repair_removes_a_damaged_blob_that_nothing_uses(tmp_path: Path) -> None:
    store, _src, _media = imported(tmp_path, "loose")
    (tmp_path / "loose.bin").write_bytes(noise_png(9))
    blob = run_cas(store, "put", str(tmp_path / "loose.bin")).stdout.decode().split()[0]
    run_cas(store, "release", blob)
    with Store(store) as s:
        os.unlink(s.local.path(BlobId.from_hex(blob)))
    status, out = fsck_lines(store, "--repair")
    assert status == 0 and not any(line.startswith("needs-source") for line in out), out
    assert fsck_lines(store)[1][-1].endswith("clean")


def test_the_repair_dry_run_reports_what_the_repair_does_to_a_damaged_annotation(tmp_path: Path) -> None:
    """A damaged annotation is reset by the repair, so its blob needs no source: the dry run
    says so too (it once listed the blob as waiting for its source, and kept)."""
    store, _src, _media = imported(tmp_path, "loose")
    with Store(store) as s:
        ann = s.ns.item("p", "a", "one.png").ann
    with Store(store) as s:
        damage_blob(s, bytes(ann))

    def report(*args: str) -> dict:
        return json.loads(run_cas(store, "fsck", "--repair", "--json", *args, check=False).stdout)

    planned = report("--dry-run")
    done = report()
    assert planned["sources_needed"] == done["sources_needed"] == []
    assert [(p["kind"], p["subject"], p["action"]) for p in planned["problems"]] == \
        [(p["kind"], p["subject"], p["action"]) for p in done["problems"]]


@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_a_read_of_a_damaged_blob_is_one_error_line(tmp_path: Path, kind: str) -> None:
    """The reader raises and the command says it once (no log line of the same before it)."""
    store, _src, media = imported(tmp_path, kind)
    damage(store, media, "corrupt")
    proc = run_cas(store, "get", "p/a/one.png", "-o", str(tmp_path / "out.png"), check=False)
    assert_user_error(proc, f"blob {media.hex()} is corrupt", "re-import")
    assert not (tmp_path / "out.png").exists()


def test_the_remote_check_hashes_s3_pack_entries_and_repair_repoints_at_a_good_copy(
        tmp_path: Path, s3_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three entries of S3 packs damaged in place: one has a good copy as an object of its own,
    one in another pack object, one none (its item needs its source)."""
    from cas.blobs.backends.s3packs import new_pack_name
    from tests.cas.maintenance.test_s3repack import packed_store
    store = packed_store(tmp_path, s3_endpoint, bucket, monkeypatch)
    s3 = store.s3
    try:
        (_n, own), (_m, other), (_l, lost) = list(store.ns.items("p", "kept"))[:3]
        good = {}
        for item in (own, other, lost):
            rec = store.stat(item.media)
            good[item.media] = store.read_bytes(item.media)
            key = s3.pack_key(rec.pack)
            body = bytearray(s3.client.get_object(Bucket=s3.remote.bucket, Key=key)["Body"].read())
            body[rec.offset] ^= 0xFF  # the pack's index is intact: only a download sees it
            s3.client.put_object(Bucket=s3.remote.bucket, Key=key, Body=bytes(body))
        assert fsck(store).clean
        report = fsck(store, remote=True)
        corrupt = [p for p in report.problems if p.kind == "corrupt-blob"]
        assert sorted(p.subject for p in corrupt) == sorted(str(item.media) for item in (own, other, lost))
        assert all("S3 pack object s3://" in p.detail and "at offset" in p.detail for p in corrupt), corrupt
        s3.client.put_object(Bucket=s3.remote.bucket, Key=s3.key(own.media), Body=good[own.media])
        s3.upload_pack(new_pack_name(), [(other.media, good[other.media])], store.tmp_dir)
        report = fsck(store, remote=True)
        blobs = {(p.kind, p.subject) for p in report.problems if p.kind.endswith("-blob")}
        assert blobs == {("misplaced-blob", str(own.media)), ("misplaced-blob", str(other.media)),
                         ("corrupt-blob", str(lost.media))}
        fsck(store, remote=True, repair=True)
        assert store.stat(own.media).location == "s3" and store.stat(other.media).location == "s3pack"
        report = fsck(store, remote=True)
        assert [(p.kind, p.subject) for p in report.problems if p.kind.endswith("-blob")] == \
            [("corrupt-blob", str(lost.media))]
        assert [str(n.blob) for n in report.sources_needed] == [str(lost.media)]
        shutil.rmtree(store.cache.dir, ignore_errors=True)
        store._cache = None
        assert store.read_bytes(own.media) == good[own.media] and store.read_bytes(other.media) == good[other.media]
    finally:
        store.close()


def test_remote_and_quick_together_are_a_usage_error(tmp_path: Path) -> None:
    proc = run_cas(tmp_path / "store", "fsck", "--remote", "--quick", check=False)
    assert proc.returncode == 2 and b"--remote" in proc.stderr


def test_the_remote_check_hashes_s3_objects_of_their_own_and_repair_repoints_at_a_good_copy(
        tmp_path: Path, s3_store: Store) -> None:
    """An S3-backed store's blobs are objects of their own: one damaged in place (same size, so
    the listing sees nothing) is found by a download, named with its URL, and re-pointed at a
    good copy in a pack object."""
    from cas.blobs.backends.s3packs import new_pack_name
    from cas.ingest.session import ImportSession
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"{i}.jpg").write_bytes(jpeg_bytes(color=(60 * i, 30, 30)))
    with ImportSession(s3_store, "p") as session:
        for i in range(3):
            session.add_item("d", f"{i}.jpg", src / f"{i}.jpg")
        session.commit()
    s3 = s3_store.s3
    assert s3 is not None
    media = s3_store.ns.item("p", "d", "1.jpg").media
    assert s3_store.stat(media).location == "s3"
    good = (src / "1.jpg").read_bytes()
    body = bytearray(good)
    body[len(body) // 2] ^= 0xFF
    s3.client.put_object(Bucket=s3.remote.bucket, Key=s3.key(media), Body=bytes(body))
    assert fsck(s3_store).clean
    report = fsck(s3_store, remote=True)
    assert [(p.kind, p.subject) for p in report.problems] == [("corrupt-blob", str(media)),
                                                              ("damaged-item", "p/d/1.jpg")]
    assert f"S3 object {s3.url(media)}" in report.problems[0].detail
    s3.upload_pack(new_pack_name(), [(media, good)], s3_store.tmp_dir)
    assert [p.kind for p in fsck(s3_store, remote=True).problems if p.kind.endswith("-blob")] == ["misplaced-blob"]
    fsck(s3_store, remote=True, repair=True)
    assert s3_store.stat(media).location == "s3pack"
    assert fsck(s3_store, remote=True).clean
    shutil.rmtree(s3_store.cache.dir, ignore_errors=True)
    s3_store._cache = None
    assert s3_store.read_bytes(media) == good
