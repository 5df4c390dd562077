"""gc's rewrite of packs that blobs left: when a pack is rewritten, into what, and what the
dry run says of it."""

from __future__ import annotations

from dataclasses import asdict

from cas import Store
from cas.blobs.repack import REWRITE_BELOW, compaction_plan
from cas.ingest.session import ImportSession
from cas.maintenance.fsck import check as fsck
from cas.maintenance.gc import collect as collect_garbage
from tests.conftest import damage_blob, jpeg_bytes


def add(store: Store, dataset: str, n: int, seed: int = 0) -> dict[str, bytes]:
    """n small images in their own import (so in a pack of their own)."""
    items = {f"{i:03d}.jpg": jpeg_bytes(8 + i % 7, 8 + i // 7, ((seed + i) % 256, 9, 9)) for i in range(n)}
    with ImportSession(store, "p") as session:
        for name, data in items.items():
            session.add_item(dataset, name, data)
        session.commit()
    return items


def packs(store: Store) -> dict[str, int]:
    return {str(name): size for name, _path, size in store.local.list_packs()}


def remove(store: Store, dataset: str, names: list[str]) -> None:
    for name in names:
        store.ns.remove_item("p", dataset, name)


def test_the_dry_run_names_the_rewrites_and_their_bytes_and_the_run_does_them(store: Store) -> None:
    a, b = add(store, "a", 40), add(store, "b", 40, seed=100)
    old = packs(store)
    assert len(old) == 2
    remove(store, "a", list(a)[:35])
    remove(store, "b", list(b)[:35])
    dry = collect_garbage(store, dry_run=True)
    assert packs(store) == old, "a dry run changes nothing"
    assert dry.packs_compacted == 2 and dry.pack_bytes_copied > 0
    done = collect_garbage(store)
    assert asdict(done) == {**asdict(dry), "dry_run": False}
    new = packs(store)
    assert len(new) == 1 and not set(new) & set(old), "both rewrites go into one new pack"
    assert sum(new.values()) == dry.pack_bytes_copied
    assert sum(old.values()) - sum(new.values()) == dry.bytes_freed  # every blob here is packed
    for dataset, items in (("a", a), ("b", b)):
        for name in list(items)[35:]:
            assert store.read_bytes(store.ns.item("p", dataset, name).media) == items[name]
    assert fsck(store).clean


def test_a_pack_is_rewritten_only_under_the_threshold(store: Store) -> None:
    items = add(store, "a", 40)
    remove(store, "a", list(items)[:10])
    collect_garbage(store)
    (name, size), = packs(store).items()
    _unused, rewrites = compaction_plan(store)
    assert not rewrites, "three quarters live: left alone"
    remove(store, "a", list(items)[10:30])
    collect_garbage(store)
    assert name not in packs(store), f"a quarter live, under {REWRITE_BELOW}: rewritten"


def test_a_pack_holding_a_damaged_blob_is_not_planned_so_the_dry_run_stays_exact(store: Store) -> None:
    items = add(store, "a", 40)
    remove(store, "a", list(items)[:35])
    damage_blob(store, bytes(store.ns.item("p", "a", "039.jpg").media))
    before = packs(store)
    # Found on the way (no fsck yet): the rewrite stops there, and the report says so.
    done = collect_garbage(store)
    assert (done.packs_compacted, done.packs_not_rewritten) == (0, 1)
    assert packs(store) == before, "nothing copied, nothing moved"
    assert [p.kind for p in fsck(store).problems] == ["corrupt-blob", "damaged-item"]  # and now it is marked
    dry = collect_garbage(store, dry_run=True)
    assert (dry.packs_compacted, dry.packs_not_rewritten) == (0, 0)
    assert asdict(collect_garbage(store)) == {**asdict(dry), "dry_run": False}
