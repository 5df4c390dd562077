"""`cas du`'s sums (cas.maintenance.usage) on a small store: two projects sharing blobs, a nested dataset,
packed and loose blobs, links of known and unknown size, and one S3 store."""

from __future__ import annotations

import random
from dataclasses import asdict
from io import BytesIO

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from cas import Store
from cas.blobs.backends.packs import PACK_MAX
from cas.ingest.session import ImportSession
from cas.maintenance.stats import compute as compute_stats
from cas.maintenance.usage import UsageRow, dataset_usage, store_usage
from cas.model.annotation import dumps, empty_annotation
from cas.records import LINK, LOCAL, PACK
from tests.conftest import png_bytes

W, H = 64, 48
META = {"classes": [{"title": "car", "shape": "rectangle", "color": "#FF0000"},
                    {"title": "road", "shape": "polygon", "color": "#00FF00"}],
        "tags": [{"name": "weather", "value_type": "any_string"}, {"name": "occluded", "value_type": "none"}],
        "projectType": "images"}
CAR = {"classTitle": "car", "geometryType": "rectangle", "tags": [{"name": "occluded", "value": None}],
       "points": {"exterior": [[1, 2], [30, 20]], "interior": []}}
ROAD = {"classTitle": "road", "tags": [],  # no geometryType: the class's shape
        "points": {"exterior": [[0, 40], [63, 40], [63, 47]], "interior": []}}
ANN_CAR = {"description": "", "size": {"height": H, "width": W}, "tags": [{"name": "weather", "value": "rain"}],
           "objects": [CAR]}
ANN_TWO = {"description": "", "size": {"height": H, "width": W}, "tags": [{"name": "weather", "value": "fog"}],
           "objects": [CAR, ROAD]}
ANN_EMPTY = empty_annotation(W, H)
ITEM_META = {"source": "camera 3"}
LINK_SIZE = 5000


def noise_png() -> bytes:
    """A PNG too large for a pack (a text chunk pads it past PACK_MAX): a loose local blob."""
    buf = BytesIO()
    padding = PngInfo()
    padding.add_text("padding", "x" * PACK_MAX)
    Image.frombytes("RGB", (W, H), random.Random(0).randbytes(W * H * 3)).save(buf, "PNG", pnginfo=padding)
    return buf.getvalue()


IMG1, IMG2, IMG3, IMG4 = noise_png(), png_bytes(W, H, (1, 2, 3)), png_bytes(W, H, (4, 5, 6)), png_bytes(W, H, (7, 8, 9))


def build(store: Store, link_url: str = "http://127.0.0.1:9/unknown.jpg") -> None:
    """Project a: train/x1 (IMG1, ANN_CAR, item meta), train/x2 (IMG2, ANN_CAR),
    train/night/x3 (IMG1, ANN_TWO), val/x4 (IMG3, ANN_EMPTY). Project b: d/y1 (IMG1, ANN_CAR),
    d/y2 (IMG4, ANN_EMPTY), links/l1 (a link of unknown size), links/l2 (a link of LINK_SIZE
    bytes), both links with the empty annotation of size 0x0."""
    with ImportSession(store, "a", meta=META) as s:
        s.add_item("train", "x1.png", IMG1, ANN_CAR, item_meta=ITEM_META)
        s.add_item("train", "x2.png", IMG2, ANN_CAR)
        s.add_item("train/night", "x3.png", IMG1, ANN_TWO)
        s.add_item("val", "x4.png", IMG3, ANN_EMPTY)
        s.commit()
    with ImportSession(store, "b", meta=META) as s:
        s.add_item("d", "y1.png", IMG1, ANN_CAR)
        s.add_item("d", "y2.png", IMG4, ANN_EMPTY)
        s.add_link("links", "l1.jpg", link_url)
        s.add_link("links", "l2.jpg", "http://127.0.0.1:9/known.jpg", LINK_SIZE)
        s.commit()


# Sizes of every blob of the store built above.
I1, I2, I3, I4 = map(len, (IMG1, IMG2, IMG3, IMG4))
AC, AT, AE, M = (len(dumps(x)) for x in (ANN_CAR, ANN_TWO, ANN_EMPTY, ITEM_META))
AL = len(dumps(empty_annotation(0, 0)))


def row(name: str, **fields: int) -> UsageRow:
    return UsageRow(name, **fields)


A_TOTAL = row("a", items=4, logical_bytes=2 * I1 + I2 + I3 + 2 * AC + AT + AE + M, blobs=7,
              unique_bytes=I1 + I2 + I3 + AC + AT + AE + M, shared_blobs=3, shared_bytes=I1 + AC + AE,
              stored_bytes=I1 + I2 + I3 + AC + AT + AE + M)
A_TRAIN = row("train", items=3, logical_bytes=2 * I1 + I2 + 2 * AC + AT + M, blobs=5,
              unique_bytes=I1 + I2 + AC + AT + M, shared_blobs=2, shared_bytes=I1 + AC,
              stored_bytes=I1 + I2 + AC + AT + M)
A_NIGHT = row("train/night", items=1, logical_bytes=I1 + AT, blobs=2, unique_bytes=I1 + AT, shared_blobs=1,
              shared_bytes=I1, stored_bytes=I1 + AT)
A_VAL = row("val", items=1, logical_bytes=I3 + AE, blobs=2, unique_bytes=I3 + AE, shared_blobs=1,
            shared_bytes=AE, stored_bytes=I3 + AE)
B_TOTAL = row("b", items=4, logical_bytes=I1 + AC + I4 + AE + 2 * AL + LINK_SIZE, blobs=7,
              unique_bytes=I1 + AC + I4 + AE + AL + LINK_SIZE, shared_blobs=3, shared_bytes=I1 + AC + AE,
              stored_bytes=I1 + AC + I4 + AE + AL, link_bytes=LINK_SIZE, unknown_size_items=1,
              unknown_size_blobs=1)


@pytest.fixture
def built(store: Store) -> Store:
    build(store)
    return store


def test_the_store_holds_loose_packed_and_link_blobs_of_the_expected_sizes(built: Store) -> None:
    """Guards the expectations below: each blob where and as large as they assume."""
    x1, x2 = built.ns.item("a", "train", "x1.png"), built.ns.item("a", "train", "x2.png")
    assert I1 > PACK_MAX >= I2 and built.stat(x1.media).location == LOCAL and built.stat(x2.media).location == PACK
    assert (built.stat(x1.ann).size, built.stat(x1.meta).size) == (AC, M)
    l1, l2 = built.ns.item("b", "links", "l1.jpg"), built.ns.item("b", "links", "l2.jpg")
    assert (l1.size, built.stat(l1.media).location, built.stat(l1.media).size) == (-1, LINK, -1)
    assert (l2.size, built.stat(l2.media).size, l2.ann) == (LINK_SIZE, LINK_SIZE, l1.ann)


def test_store_rows_are_projects_and_the_total_counts_shared_blobs_once(built: Store) -> None:
    u = store_usage(built)
    assert u.target is None and u.rows == [A_TOTAL, B_TOTAL]
    assert u.total == row("total", items=8, logical_bytes=A_TOTAL.logical_bytes + B_TOTAL.logical_bytes,
                          blobs=11, unique_bytes=A_TOTAL.unique_bytes + B_TOTAL.unique_bytes - (I1 + AC + AE),
                          shared_blobs=3, shared_bytes=I1 + AC + AE,
                          stored_bytes=A_TOTAL.stored_bytes + B_TOTAL.stored_bytes - (I1 + AC + AE),
                          link_bytes=LINK_SIZE, unknown_size_items=1, unknown_size_blobs=1)
    # The store's stored bytes are `cas stats`'s when nothing but items holds a blob.
    assert u.total.stored_bytes == compute_stats(built)["stored_bytes"]
    for r in (*u.rows, u.total):
        assert r.unique_bytes == r.stored_bytes + r.s3_bytes + r.link_bytes, r.name


def test_project_rows_are_datasets_with_their_nested_datasets(built: Store) -> None:
    u = dataset_usage(built, "a")
    assert u.target == "a" and u.total == A_TOTAL
    assert u.rows == [A_TRAIN, A_NIGHT, A_VAL]


def test_dataset_rows_are_its_nested_datasets_and_its_total_is_its_row_in_the_project(built: Store) -> None:
    u = dataset_usage(built, "a", "train")
    assert u.target == "a/train" and u.rows == [A_NIGHT]
    assert asdict(u.total) == {**asdict(A_TRAIN), "name": "a/train"}
    leaf = dataset_usage(built, "a", "train/night")
    assert leaf.rows == [] and asdict(leaf.total) == {**asdict(A_NIGHT), "name": "a/train/night"}


def test_shared_means_another_project_not_another_dataset(built: Store) -> None:
    with ImportSession(built, "c", meta=META) as s:
        s.add_item("one", "z.png", IMG2, ANN_TWO)
        s.add_item("two", "z.png", IMG2, ANN_TWO)
        s.commit()
    u = dataset_usage(built, "c")
    assert [(r.name, r.shared_blobs, r.shared_bytes) for r in u.rows] == [("one", 2, I2 + AT), ("two", 2, I2 + AT)]
    assert (u.total.items, u.total.logical_bytes, u.total.blobs, u.total.unique_bytes) == (2, 2 * (I2 + AT), 2, I2 + AT)
    assert dataset_usage(built, "b").total.shared_blobs == 3  # c shares nothing with b
    rows = {r.name: r for r in store_usage(built).rows}
    assert (rows["a"].shared_blobs, rows["c"].shared_blobs) == (5, 2)  # a shares IMG2 and ANN_TWO with c


def test_a_link_size_learned_by_a_read_counts_though_its_item_says_unknown(store: Store, http_server) -> None:
    data = png_bytes(W, H, (10, 20, 30))
    http_server.files["/l1.jpg"] = data
    build(store, http_server.url("/l1.jpg"))
    l1 = store.ns.item("b", "links", "l1.jpg")
    assert store.read_bytes(l1.media) == data
    assert store.ns.item("b", "links", "l1.jpg").size == -1 and store.stat(l1.media).size == len(data)
    b = dataset_usage(store, "b").total
    assert (b.unknown_size_items, b.unknown_size_blobs, b.link_bytes) == (0, 0, LINK_SIZE + len(data))
    assert (b.logical_bytes, b.unique_bytes) == (B_TOTAL.logical_bytes + len(data), B_TOTAL.unique_bytes + len(data))
    assert b.stored_bytes == B_TOTAL.stored_bytes  # its bytes are in the cache, not stored


def test_blobs_in_s3_are_not_stored_here(s3_store: Store) -> None:
    with ImportSession(s3_store, "p", meta=META) as s:
        s.add_item("d", "x1.png", IMG1, ANN_CAR)
        s.add_item("d", "x2.png", IMG1, ANN_CAR)
        s.commit()
    u = dataset_usage(s3_store, "p")
    assert u.total == row("p", items=2, logical_bytes=2 * (I1 + AC), blobs=2, unique_bytes=I1 + AC,
                          s3_bytes=I1 + AC)
    assert store_usage(s3_store).total.s3_bytes == I1 + AC


def test_an_empty_store_and_an_empty_project(store: Store) -> None:
    assert store_usage(store).rows == [] and store_usage(store).total == row("total")
    store.ns.create_project("e")
    store.ns.create_dataset("e", "d")
    u = dataset_usage(store, "e")
    assert u.rows == [row("d")] and u.total == row("e")


def test_blobs_in_s3_pack_objects_count_as_s3_bytes(store: Store, s3_store: Store) -> None:
    from cas.records import S3PACK
    from cas.versions.transfer import push_blobs
    with ImportSession(store, "p", meta=META) as s:  # stored here first, then pushed in a pack
        s.add_item("d", "x1.png", IMG1, ANN_CAR)
        s.commit()
    store.config.s3 = s3_store.config.s3
    store.save_config()
    push_blobs(store, packs=True)
    item = store.ns.item("p", "d", "x1.png")
    assert S3PACK in {store.stat(b).location for b in item.blobs()}
    total = dataset_usage(store, "p").total
    assert (total.stored_bytes, total.s3_bytes) == (0, I1 + AC)
