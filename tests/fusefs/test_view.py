"""The view's generated files, without a mount."""

from __future__ import annotations

import json

import pytest

from cas.ids import BlobId
from cas.records import UNKNOWN_SIZE, ItemRecord
from fusefs.view import _iso, img_info


@pytest.mark.parametrize("name", ["a.jpg", "no_suffix", 'quote"and\\slash.PNG', "ünïcode 画像.jpeg", "tab\there.x"])
def test_img_info_is_what_json_writes(name: str) -> None:
    item = ItemRecord(BlobId(bytes(range(16))), BlobId(b"\1" * 16), 1234, 56, 640, 480, "image/jpeg",
                      1_700_000_000_123_456_789)
    expected = json.dumps({
        "name": name, "hash": str(item.media), "blob": str(item.media), "size": item.size,
        "width": item.width, "height": item.height, "mime": item.mime,
        "ext": name.rpartition(".")[2].lower() if "." in name else "", "link": None,
        "created_at": _iso(item.mtime), "updated_at": _iso(item.mtime)}, indent=4).encode()
    assert img_info(name, item) == expected


def test_img_info_of_a_link_not_yet_read_has_null_size_and_dimensions() -> None:
    item = ItemRecord(BlobId(bytes(range(16))), BlobId(b"\1" * 16), UNKNOWN_SIZE, 56, 0, 0, "image/jpeg", 1)
    info = json.loads(img_info("a.jpg", item))
    assert (info["size"], info["width"], info["height"]) == (None, None, None)


def test_sections_without_sizes_list_links_without_looking_their_sizes_up(tmp_path, monkeypatch) -> None:
    """ann/ and meta/ show no link's size: their listings read no blob record (img/ does)."""
    from cas.ingest.session import ImportSession
    from cas.store import Store
    from fusefs.paths import parse
    from fusefs.view import View

    store = Store.init(tmp_path / "store")
    with ImportSession(store, "p") as session:
        session.add_link("d", "a.jpg", "http://127.0.0.1:9/a.jpg")
        session.commit()
    view = View(store, store.ns, read_only=True)
    looked_up: list[str] = []
    sized = View.sized
    monkeypatch.setattr(View, "sized", lambda self, item, txn=None: looked_up.append("x") or sized(self, item, txn))
    assert [name for name, _ in view.section_entries(parse("/p/d/ann"))] == ["a.jpg.json"]
    assert looked_up == []
    assert [(name, a["st_size"]) for name, a in view.section_entries(parse("/p/d/img"))] == [("a.jpg", 0)]
    assert looked_up == ["x"]
    store.close()


def test_a_listing_reads_its_items_and_their_sizes_from_one_snapshot(tmp_path) -> None:
    """An item replaced while a listing starts shows its old record with the old size, or the new
    one with its own: never the new record sized from the old snapshot (0 for a link it lacks)."""
    from cas.ingest.session import ImportSession
    from cas.store import Store
    from fusefs.paths import parse
    from fusefs.view import View

    store = Store.init(tmp_path / "store")
    with ImportSession(store, "p") as session:
        session.add_link("d", "a.jpg", "http://127.0.0.1:9/a.jpg")
        session.commit()
    first = store.ns.item("p", "d", "a.jpg").media
    store.learn_link(first, 1234, None, BlobId(b"\2" * 16))  # what a full read learned

    class ReplacedAsListed:
        """The live namespace, where a.jpg is re-pointed at a new URL just as its listing starts."""

        def __getattr__(self, name: str):
            return getattr(store.ns, name)

        def items(self, project: str, dataset: str, txn=None):
            with ImportSession(store, "p", overwrite=True) as session:
                session.add_link("d", "a.jpg", "http://127.0.0.1:9/other.jpg")
                session.commit()
            yield from store.ns.items(project, dataset, txn)

    view = View(store, ReplacedAsListed(), read_only=True)  # type: ignore[arg-type]
    assert [(name, a["st_size"]) for name, a in view.section_entries(parse("/p/d/img"))] == [("a.jpg", 1234)]
    assert store.ns.item("p", "d", "a.jpg").media != first  # the replacement did happen
    store.close()
