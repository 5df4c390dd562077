"""Small blobs in pack files: written by imports, read verified, checked by fsck, compacted by gc."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from cas import Store
from cas.blobs.backends.packs import HEADER, PACK_MAX, PackWriter, entries
from cas.blobs.hashing import hash_bytes
from cas.errors import CorruptBlob, NotFound
from cas.ingest.session import ImportSession
from cas.maintenance.fsck import check as fsck
from cas.maintenance.gc import collect as collect_garbage
from cas.records import LOCAL, PACK
from tests.conftest import jpeg_bytes


def add(store: Store, items: dict[str, bytes]) -> None:
    with ImportSession(store, "p") as session:
        for name, data in items.items():
            session.add_item("d", name, data)
        session.commit()


def small(n: int) -> dict[str, bytes]:
    return {f"{i:03d}.jpg": jpeg_bytes(8 + i % 7, 8 + i // 7, (i % 256, 9, 9)) for i in range(n)}


def noise_png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(buf, "PNG")
    return buf.getvalue()


def packed_size(store: Store) -> int:
    return sum(size for _name, _path, size in store.local.list_packs())


def test_small_blobs_are_packed_and_read_back(store: Store) -> None:
    items = small(40) | {"big.jpg": noise_png(640, 600)}
    assert len(items["big.jpg"]) > PACK_MAX
    add(store, items)
    for name, data in items.items():
        rec = store.ns.item("p", "d", name)
        assert store.stat(rec.media).location == (LOCAL if name == "big.jpg" else PACK)
        assert store.stat(rec.ann).location == PACK  # annotations are small too
        assert store.read_bytes(rec.media) == data
        with store.open(rec.media) as reader:
            assert reader.read_at(5, 3) == data[3:8]
            assert reader.read_at(1 << 20, len(data) - 2) == data[-2:], "never past the blob, into the next entry"
    assert [blob for blob, _p, _s in store.local.list_ids() if blob is not None] == \
        [store.ns.item("p", "d", "big.jpg").media], "one file for the big blob, the rest in packs"
    assert packed_size(store) < 1.3 * sum(len(d) for n, d in items.items() if n != "big.jpg") + 4096
    assert fsck(store).clean


def test_copies_of_one_new_file_in_an_import_are_packed_once(store: Store) -> None:
    image = noise_png(60, 60)
    add(store, {f"copy{i}.png": image for i in range(6)} | small(3))
    media = store.ns.item("p", "d", "copy0.png").media
    found = [(path, offset) for _name, path, _size in store.local.list_packs()
             for blob, offset, _n in entries(path) if blob == media]
    assert len(found) == 1, f"the image was packed {len(found)} times"
    assert all(store.read_bytes(store.ns.item("p", "d", f"copy{i}.png").media) == image for i in range(6))
    assert fsck(store).clean


def test_a_damaged_entry_is_an_error_on_read_and_in_fsck(store: Store) -> None:
    add(store, small(5))
    rec = store.stat(store.ns.item("p", "d", "002.jpg").media)
    path = store.local.pack_path(rec.pack)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(rec.offset + 10)
        byte = f.read(1)[0]
        f.seek(rec.offset + 10)
        f.write(bytes([byte ^ 0xFF]))
    with pytest.raises(CorruptBlob):
        store.read_bytes(store.ns.item("p", "d", "002.jpg").media)
    assert store.read_bytes(store.ns.item("p", "d", "003.jpg").media)  # its neighbours are fine
    problems = fsck(store).problems
    assert [(p.kind, "pack" in p.detail) for p in problems if p.kind == "corrupt-blob"] == [("corrupt-blob", True)]
    assert fsck(store, verify=False).clean, "--quick reads headers, not bytes"
    os.truncate(path, rec.offset - 1)
    kinds = {p.kind for p in fsck(store, verify=False).problems}
    assert "corrupt-blob" in kinds


def test_gc_compacts_packs_and_removes_dead_ones(store: Store) -> None:
    items = small(60)
    add(store, items)
    before = packed_size(store)
    for name in list(items)[:45]:
        store.ns.remove_item("p", "d", name)
    report = collect_garbage(store)
    assert report.packs_compacted >= 1 and report.bytes_freed > 0
    assert packed_size(store) < before / 2
    for name in list(items)[45:]:
        assert store.read_bytes(store.ns.item("p", "d", name).media) == items[name]
    assert fsck(store).clean
    store.ns.remove_dataset("p", "d")
    collect_garbage(store)
    assert packed_size(store) == 0 and not list(store.local.list_packs())


def test_a_pack_no_record_uses_is_an_orphan(store: Store) -> None:
    add(store, small(3))
    writer = PackWriter(store.local.pack_dir)  # what a killed import leaves
    writer.append(hash_bytes(b"x" * 10), b"x" * 10)
    writer.close()
    report = fsck(store)
    assert [p.kind for p in report.problems] == ["orphan-file"] and writer.name in report.problems[0].subject
    assert collect_garbage(store).packs_compacted == 1 and fsck(store).clean


def test_entries_stop_at_a_torn_tail(tmp_path: Path) -> None:
    writer = PackWriter(tmp_path)
    blobs = [os.urandom(n) for n in (0, 1, 100, PACK_MAX)]
    where = [writer.append(hash_bytes(b), b) for b in blobs]
    writer.close()
    path = tmp_path / f"{writer.name}.pack"
    with open(path, "ab") as f:
        f.write(HEADER.pack(b"CASb", bytes(16), 50) + b"short")  # an append cut short by a crash
    assert [(blob, offset, size) for blob, offset, size in entries(str(path))] == \
        [(hash_bytes(b), offset, len(b)) for b, (_name, offset) in zip(blobs, where)]


def test_pack_names_are_checked(store: Store) -> None:
    with pytest.raises(NotFound):
        store.local.pack_path("../index/data")
