"""open_dataset: one dataset's items as (image, annotation) for training loops, read in
this process and in worker processes, forked (after the parent has read) or spawned."""

from __future__ import annotations

import io
import multiprocessing
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cas import CorruptBlob, InvalidInput, NotFound, Store, open_dataset
from cas.dataset import StoreDataset
from cas.ingest.session import ImportSession
from tests.conftest import damage_blob, jpeg_bytes
from tests.servers import RangeServer

META = {"classes": [{"title": "car", "shape": "rectangle", "color": "#E53935"}], "tags": [], "projectType": "images"}


def annotation(width: int, height: int, note: str) -> dict:
    return {"description": note, "size": {"height": height, "width": width}, "tags": [],
            "objects": [{"classTitle": "car", "geometryType": "rectangle", "tags": [],
                         "points": {"exterior": [[0, 0], [width - 1, height - 1]], "interior": []}}]}


def encoded(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def sources() -> dict[str, tuple[bytes, dict]]:
    """Item name -> (file bytes, annotation): JPEGs, and the modes decoding must handle."""
    out = {}
    for i in range(10):
        w, h = 16 + 3 * i, 12 + i
        out[f"img{i:02d}.jpg"] = (jpeg_bytes(w, h, (20 * i, 100, 255 - 20 * i)), annotation(w, h, f"item {i}"))
    palette = Image.new("P", (20, 10), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    out["palette.png"] = (encoded(palette, "PNG", transparency=0), annotation(20, 10, "palette"))
    out["grey.png"] = (encoded(Image.new("L", (10, 8), 77), "PNG"), annotation(10, 8, "grey"))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter: 40 wide as stored, 20 wide as shown
    turned = encoded(Image.new("RGB", (40, 20), (0, 200, 0)), "JPEG", exif=exif.tobytes())
    out["turned.jpg"] = (turned, annotation(20, 40, "turned"))
    return out


def import_items(store: Store, dataset: str, items: dict[str, tuple[bytes, dict]], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with ImportSession(store, "p") as session:
        session.set_meta(META)
        for name, (data, ann) in items.items():
            (folder / name).write_bytes(data)
            session.add_item(dataset, name, folder / name, ann)
        session.commit()


@pytest.fixture
def items(store: Store, tmp_path: Path) -> dict[str, tuple[bytes, dict]]:
    """The sources, imported as p/ds; p/ds/inner (nested) has one more item."""
    src = sources()
    import_items(store, "ds", src, tmp_path / "src")
    deep = encoded(Image.new("I;16", (6, 4), 4000), "PNG")
    import_items(store, "ds/inner", {"deep.png": (deep, annotation(6, 4, "16-bit"))}, tmp_path / "inner")
    return src


def test_items_in_name_order_with_their_bytes_and_annotations(store: Store, items) -> None:
    ds = open_dataset(str(store.root), "p/ds")
    assert len(ds) == len(items)
    assert ds.names == sorted(items) == [ds.item_name(i) for i in range(len(ds))]
    for i, name in enumerate(ds.names):
        data, ann = ds[i]
        assert (data, ann) == items[name]
    ds.close()


def test_an_open_store_or_a_path_names_the_store(store: Store, items) -> None:
    for where in (store, store.root, str(store.root)):
        with open_dataset(where, "p/ds") as ds:
            assert ds.names == sorted(items)


def test_indexes_behave_as_in_a_list(store: Store, items) -> None:
    ds = open_dataset(store, "p/ds")
    n = len(ds)
    assert ds[-1] == ds[n - 1] and ds.item_name(-n) == ds.names[0]
    assert ds[np.int64(2)] == ds[2]
    for bad in (n, -n - 1):
        with pytest.raises(IndexError, match=f"{bad} out of range: p/ds has {n} items"):
            ds[bad]
    with pytest.raises(TypeError):
        ds["img00.jpg"]  # type: ignore[index]
    assert len(list(ds)) == n, "iterable as a sequence is (IndexError ends it)"


def test_a_batch_of_indexes_reads_as_each_index_alone(store: Store, items) -> None:
    with open_dataset(store, "p/ds") as ds:
        n = len(ds)
        batch = [3, 0, -1, 3, n - 2]  # any order, repeats and negative indexes, as DataLoader may give
        assert ds.__getitems__(batch) == [ds[i] for i in batch] == [items[ds.item_name(i)] for i in batch]
        assert ds.__getitems__([]) == []
        with pytest.raises(IndexError, match=f"{n} out of range"):
            ds.__getitems__([0, n])


def test_nested_dataset_is_exactly_its_own_items(store: Store, items) -> None:
    assert "deep.png" not in open_dataset(store, "p/ds").names
    inner = open_dataset(store, "p/ds/inner")
    assert inner.names == ["deep.png"]
    assert inner[0][1]["description"] == "16-bit"


def test_pil_images_are_loaded_upright_and_converted_only_when_needed(store: Store, items) -> None:
    ds = open_dataset(store, "p/ds", decode="pil")
    modes = {}
    for i, name in enumerate(ds.names):
        img, ann = ds[i]
        assert isinstance(img, Image.Image)
        assert img.size == (ann["size"]["width"], ann["size"]["height"]), name
        modes[name] = img.mode
    assert modes["turned.jpg"] == "RGB" and ds[ds.names.index("turned.jpg")][0].size == (20, 40)
    assert modes["grey.png"] == "L", "kept as stored"
    assert modes["palette.png"] == "RGBA", "a palette with transparency converted, alpha kept"
    palette = ds[ds.names.index("palette.png")][0]
    assert palette.getpixel((0, 0)) == (255, 0, 0, 255)
    assert {modes[n] for n in modes if n.startswith("img")} == {"RGB"}
    assert open_dataset(store, "p/ds/inner", decode="pil")[0][0].mode.startswith("I;16"), "16 bits kept"


def test_numpy_arrays_are_hxwx3_uint8_rgb(store: Store, items) -> None:
    ds = open_dataset(store, "p/ds", decode="numpy")
    for i, name in enumerate(ds.names):
        arr, ann = ds[i]
        assert isinstance(arr, np.ndarray) and arr.dtype == np.uint8 and arr.flags.writeable
        assert arr.shape == (ann["size"]["height"], ann["size"]["width"], 3), name
        if name.startswith("img"):
            expected = np.asarray(Image.open(io.BytesIO(items[name][0])).convert("RGB"))
            assert np.array_equal(arr, expected), name
    grey = ds[ds.names.index("grey.png")][0]
    assert (grey == 77).all(), "grey replicated into three channels"
    with pytest.raises(InvalidInput, match=r"p/ds/inner/deep.png: I;16 pixels are deeper than 8 bits"):
        open_dataset(store, "p/ds/inner", decode="numpy")[0]


def test_bad_arguments_are_clear_errors(store: Store, items, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"decode: unknown decode 'jpeg' \(one of: bytes, pil, numpy\)"):
        open_dataset(store, "p/ds", decode="jpeg")
    with pytest.raises(NotFound, match=r"no dataset p/nope \(datasets of p: ds, ds/inner\)"):
        open_dataset(store, "p/nope")
    with pytest.raises(NotFound, match="no project named 'q'"):
        open_dataset(store, "q/ds")
    with pytest.raises(InvalidInput, match="p: name a dataset as project/dataset"):
        open_dataset(store, "p")
    with pytest.raises(NotFound, match="no cas store at"):
        open_dataset(tmp_path / "nowhere", "p/ds")
    assert not (tmp_path / "nowhere").exists(), "nothing created"


def test_reads_are_verified(store: Store, items) -> None:
    ds = open_dataset(store, "p/ds")
    damage_blob(store, store.ns.item("p", "ds", "img03.jpg").media, at=100)
    with pytest.raises(CorruptBlob):
        ds[ds.names.index("img03.jpg")]


def test_reads_take_no_store_lock(store: Store, items) -> None:
    ds = open_dataset(store, "p/ds")
    with store.lock(exclusive=True, what="gc"):  # as gc holds it: every writer would be refused
        assert ds[0] == items[ds.names[0]]


def test_pickles_to_its_item_list_and_opens_the_store_on_first_read(store: Store, items) -> None:
    ds = open_dataset(store, "p/ds", decode="numpy")
    copy = pickle.loads(pickle.dumps(ds))
    assert isinstance(copy, StoreDataset) and copy._opened is None
    assert (copy.root, copy.decode, copy.names) == (ds.root, "numpy", ds.names)
    arr, ann = copy[3]
    assert np.array_equal(arr, ds[3][0]) and ann == ds[3][1]
    assert copy._opened is not None


# -- worker processes ---------------------------------------------------------------------------
_dataset: StoreDataset | None = None
_parents_store: Store | None = None


def _adopt(ds: StoreDataset) -> None:
    """A fork pool's initializer: the parent's own object, inherited (not pickled), as a
    forked DataLoader worker gets it."""
    global _dataset, _parents_store
    _dataset, _parents_store = ds, ds._opened


def _read(i: int) -> tuple[str, bytes, dict, int, bool]:
    assert _dataset is not None and _parents_store is not None
    data, ann = _dataset[i]
    return _dataset.item_name(i), data, ann, os.getpid(), _dataset._opened is not _parents_store


def read_in_forked_workers(ds: StoreDataset) -> list[tuple[str, bytes, dict, int, bool]]:
    ds[0]  # the parent has the store open before the fork
    assert ds._opened is not None and ds._pid == os.getpid()
    with multiprocessing.get_context("fork").Pool(4, initializer=_adopt, initargs=(ds,)) as pool:
        return pool.map(_read, range(len(ds)), chunksize=1)


def check_worker_reads(results: list, expected: dict[str, bytes]) -> None:
    assert {name: data for name, data, _ann, _pid, _reopened in results} == expected
    assert all(pid != os.getpid() and reopened for _n, _d, _a, pid, reopened in results)


def test_forked_workers_reopen_the_store_and_read_every_item(store: Store, items, tmp_path: Path) -> None:
    ds = open_dataset(store, "p/ds")
    results = read_in_forked_workers(ds)
    check_worker_reads(results, {name: data for name, (data, _ann) in items.items()})
    assert all(ann == items[name][1] for name, _d, ann, _p, _r in results)
    # the parent's store is unharmed by its children: it reads, and it writes
    assert ds[1] == items[ds.names[1]]
    import_items(store, "later", {"x.jpg": (jpeg_bytes(9, 9), annotation(9, 9, "x"))}, tmp_path / "later")
    assert open_dataset(store, "p/later")[0][0] == jpeg_bytes(9, 9)


def test_spawned_workers_open_the_store_from_the_pickle(store: Store, items) -> None:
    ds = open_dataset(store, "p/ds", decode="pil")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        got = pool.map(ds.__getitem__, range(len(ds)))
    for i, (img, ann) in enumerate(got):
        mine, my_ann = ds[i]
        assert img.tobytes() == mine.tobytes() and ann == my_ann


def test_link_items_are_read_from_their_server_in_forked_workers(tmp_path: Path, http_server: RangeServer) -> None:
    from cas.config import NetOptions
    net = NetOptions(connect_timeout=1.0, read_timeout=2.0, retries=2, backoff=0.05)
    store = Store.init(tmp_path / "store", net=net)
    expected = {}
    with ImportSession(store, "p") as session:
        for i in range(6):
            expected[f"l{i}.jpg"] = http_server.files[f"/l{i}.jpg"] = jpeg_bytes(20 + i, 10)
            session.add_link("links", f"l{i}.jpg", http_server.url(f"/l{i}.jpg"))
        session.commit()
    ds = open_dataset(store, "p/links")
    assert ds.net == store.net
    check_worker_reads(read_in_forked_workers(ds), expected)
    fetched = {path for method, path, _range in http_server.requests if method == "GET"}
    assert fetched == {f"/l{i}.jpg" for i in range(6)}
    store.close()


def test_s3_items_are_read_in_forked_workers(s3_store: Store, tmp_path: Path) -> None:
    from cas.records import S3
    src = {f"s{i}.jpg": (jpeg_bytes(24, 10 + i), annotation(24, 10 + i, f"s{i}")) for i in range(6)}
    import_items(s3_store, "ds", src, tmp_path / "src")
    assert s3_store.stat(s3_store.ns.item("p", "ds", "s0.jpg").media).location == S3
    ds = open_dataset(s3_store, "p/ds")
    check_worker_reads(read_in_forked_workers(ds), {name: data for name, (data, _ann) in src.items()})


def _collate(batch: list) -> tuple[list, list]:
    import torch
    return [torch.from_numpy(image) for image, _ann in batch], [ann for _image, ann in batch]


def test_a_torch_dataloader_reads_it_with_fork_and_spawn_workers(store: Store, items) -> None:
    pytest.importorskip("torch")  # not a dependency: runs where torch is installed
    from torch.utils.data import DataLoader
    ds = open_dataset(store, "p/ds", decode="numpy")
    ds[0]
    for method in ("fork", "spawn"):
        loader = DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context=method, collate_fn=_collate)
        seen = [ann["description"] for _images, anns in loader for ann in anns]
        assert seen == [ds[i][1]["description"] for i in range(len(ds))], method
