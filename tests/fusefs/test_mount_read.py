"""Reading through a real mount: layout, bytes, sizes, stable times, live updates."""

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

from cas import Store
from tests.conftest import jpeg_bytes, png_bytes, run_cas
from tests.fusefs.conftest import store_with


def import_sample(tmp_path, sample_project):
    store = tmp_path / "store"
    run_cas(store, "import", str(sample_project), "--project", "demo")
    return store


def test_mount_shows_supervisely_layout_with_exact_bytes(tmp_path, sample_project, mount):
    store = import_sample(tmp_path, sample_project)
    with mount(store) as mnt:
        assert sorted(os.listdir(mnt)) == [".cas", "demo"]
        assert sorted(os.listdir(mnt / "demo")) == ["meta.json", "train", "val"]
        assert sorted(os.listdir(mnt / "demo/train")) == ["ann", "datasets", "img", "img_info", "meta"]
        assert os.listdir(mnt / "demo/train/datasets") == ["night"]
        meta = json.loads((sample_project / "meta.json").read_text())
        assert json.loads((mnt / "demo/meta.json").read_text()) == meta
        for src in sample_project.rglob("img/*"):
            rel = src.relative_to(sample_project)
            shown = mnt / "demo" / rel
            assert shown.read_bytes() == src.read_bytes()
            assert shown.stat().st_size == src.stat().st_size
            ann_src = sample_project / rel.parent.parent / "ann" / (src.name + ".json")
            ann = json.loads((mnt / "demo" / rel.parent.parent / "ann" / (src.name + ".json")).read_text())
            if ann_src.exists():
                assert ann == json.loads(ann_src.read_text())
            else:
                assert ann["objects"] == [] and ann["size"]["width"] > 0
        assert json.loads((mnt / "demo/val/meta/val_001.jpg.json").read_text()) == \
            json.loads((sample_project / "val/meta/val_001.jpg.json").read_text())
        assert os.listdir(mnt / "demo/train/meta") == []
        info = json.loads((mnt / "demo/train/img_info/street_001.jpg.json").read_text())
        item = Store(store).ns.item("demo", "train", "street_001.jpg")
        assert (info["blob"], info["width"], info["height"], info["mime"], info["size"]) == \
            (str(item.media), item.width, item.height, item.mime, item.size)
        stats = json.loads((mnt / ".cas/stats.json").read_text())
        assert stats["items"] == 8 and stats["projects"] == 1


def test_mtimes_are_stable_across_remounts(tmp_path, sample_project, mount):
    store = import_sample(tmp_path, sample_project)
    paths = ["demo/train/img/street_001.jpg", "demo/train/ann/street_001.jpg.json", "demo/meta.json", "demo/train"]
    with mount(store) as mnt:
        first = {p: (mnt / p).stat().st_mtime_ns for p in paths}
    time.sleep(0.05)
    with mount(store) as mnt:
        assert {p: (mnt / p).stat().st_mtime_ns for p in paths} == first


def test_cli_import_shows_up_in_the_mount_within_a_second(tmp_path, mount):
    store = tmp_path / "store"
    run_cas(store, "init")
    (tmp_path / "src/new").mkdir(parents=True)
    (tmp_path / "src/new/a.jpg").write_bytes(jpeg_bytes())
    with mount(store) as mnt:
        assert os.listdir(mnt) == [".cas"]
        assert not (mnt / "p").exists()
        run_cas(store, "import", str(tmp_path / "src"), "--project", "p")
        deadline = time.monotonic() + 1.0
        while not (mnt / "p/new/img/a.jpg").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (mnt / "p/new/img/a.jpg").read_bytes() == jpeg_bytes()


def test_overwritten_item_never_serves_stale_bytes(tmp_path, mount):
    store = tmp_path / "store"
    (tmp_path / "v1/d").mkdir(parents=True)
    (tmp_path / "v2/d").mkdir(parents=True)
    old, new = jpeg_bytes(40, 30), png_bytes(64, 48)
    (tmp_path / "v1/d/x.jpg").write_bytes(old)
    (tmp_path / "v2/d/x.jpg").write_bytes(new)
    run_cas(store, "import", str(tmp_path / "v1"), "--project", "p")
    with mount(store) as mnt:
        target = mnt / "p/d/img/x.jpg"
        assert target.read_bytes() == old and target.read_bytes() == old  # second read: page cache
        run_cas(store, "import", str(tmp_path / "v2"), "--project", "p", "--overwrite")
        # The kernel may keep the old attributes for their timeout (a fraction of a second):
        # until then a read gives the old bytes whole, never a mix, then the new ones.
        deadline = time.monotonic() + 30  # a watchdog, not a synchronisation
        while (seen := target.read_bytes()) != new:
            assert seen == old, "a read mixed the old and the new bytes"
            assert time.monotonic() < deadline, "the mount kept serving the old bytes"
            time.sleep(0.02)
        shutil.copyfile(tmp_path / "v1/d/x.jpg", target)  # overwrite through the mount: at once
        assert target.read_bytes() == old


def test_parallel_readers_all_get_their_bytes(tmp_path, mount):
    src = tmp_path / "src/d"
    src.mkdir(parents=True)
    blobs = {f"f{i:03d}.png": png_bytes(20 + i, 20, (i, 2 * i % 256, 9)) for i in range(64)}
    for name, data in blobs.items():
        (src / name).write_bytes(data)
    store = tmp_path / "store"
    run_cas(store, "import", str(tmp_path / "src"), "--project", "p")
    with mount(store) as mnt:
        with ThreadPoolExecutor(8) as pool:
            got = dict(pool.map(lambda n: (n, (mnt / "p/d/img" / n).read_bytes()), blobs))
    assert got == blobs


def test_project_mount_shows_one_project_at_the_root(tmp_path, sample_project, mount):
    store = import_sample(tmp_path, sample_project)
    with mount(store, project="demo") as mnt:
        assert sorted(os.listdir(mnt)) == ["meta.json", "train", "val"]
        assert (mnt / "train/img/street_001.jpg").read_bytes() == \
            (sample_project / "train/img/street_001.jpg").read_bytes()


def test_item_removed_by_another_process_disappears_despite_long_caches(tmp_path, mount):
    store = store_with(tmp_path, {"d/x.jpg": jpeg_bytes()})
    with mount(store) as mnt:
        target = mnt / "p/d/img/x.jpg"
        assert target.stat().st_size == len(jpeg_bytes())  # now cached by the kernel
        run_cas(store, "rm", "p/d/x.jpg")
        deadline = time.monotonic() + 1.0
        while target.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not target.exists()


def test_eight_threads_reading_random_ranges_get_every_byte_right(tmp_path, mount):
    import random
    src = tmp_path / "src/d"
    src.mkdir(parents=True)
    blobs = {}
    for i in range(6):  # several items, larger than one kernel read
        data = jpeg_bytes(8, 8)[:-2] + os.urandom(300_000 + 7919 * i) + b"\xff\xd9"
        (src / f"f{i}.jpg").write_bytes(data)
        blobs[f"f{i}.jpg"] = data
    store = tmp_path / "store"
    run_cas(store, "import", str(tmp_path / "src"), "--project", "p")

    def reader(seed: int) -> int:
        rng = random.Random(seed)
        checked = 0
        handles = {n: open(mnt / "p/d/img" / n, "rb") for n in blobs}
        try:
            for _ in range(200):
                name = rng.choice(list(blobs))
                data = blobs[name]
                offset = rng.randrange(len(data))
                length = rng.randrange(1, 200_000)
                assert os.pread(handles[name].fileno(), length, offset) == data[offset:offset + length]
                checked += 1
        finally:
            for h in handles.values():
                h.close()
        return checked

    with mount(store) as mnt:
        with ThreadPoolExecutor(8) as pool:
            assert sum(pool.map(reader, range(8))) == 8 * 200
