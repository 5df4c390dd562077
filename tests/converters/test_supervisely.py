"""Supervisely projects through the real `cas` command: round trip, dedup, bad input, re-import."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from bench.datagen import make_sample_project
from cas import Store
from cas.blobs.hashing import hash_bytes
from cas.maintenance.fsck import check as fsck
from cas.maintenance.stats import compute as compute_stats
from tests.conftest import assert_user_error, run_cas, write_images

NO_ANN = "val/ann/val_002.png.json"  # the sample's one image without an annotation file
VISIBLE = ("projects", "datasets", "items", "logical_bytes")  # what an import may change


def stats(store: Path) -> dict:
    return json.loads(run_cas(store, "stats", "--json").stdout)


def rel_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def load(path: Path) -> object:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo sample (as the `sample_project` fixture makes it), shared by the module: read only."""
    return make_sample_project(tmp_path_factory.mktemp("sly") / "sample")


@pytest.fixture(scope="module")
def roundtrip(tmp_path_factory: pytest.TempPathFactory, sample: Path) -> SimpleNamespace:
    """Import the sample as `demo`, export it, import the export as `again`."""
    base = tmp_path_factory.mktemp("roundtrip")
    store, out = base / "store", base / "out"
    run_cas(store, "import", str(sample), "--project", "demo")
    export = run_cas(store, "export", "demo", str(out), "--format", "sly")
    before = stats(store)
    again = run_cas(store, "import", str(out), "--project", "again")
    return SimpleNamespace(store=store, src=sample, out=out, export=export.stdout.decode(),
                           before=before, after=stats(store), again=again.stdout.decode())


# -- round trip ----------------------------------------------------------------------------------
def test_export_reports_what_it_wrote(roundtrip):
    assert roundtrip.export.strip() == f"exported demo to {roundtrip.out}: 3 datasets, 8 items"


def test_export_has_the_source_files_plus_the_missing_annotation(roundtrip):
    src, out = rel_files(roundtrip.src), rel_files(roundtrip.out)
    assert NO_ANN not in src
    assert out == src | {NO_ANN}


def test_image_without_annotation_is_exported_with_an_empty_one_of_its_size(roundtrip):
    with Image.open(roundtrip.src / "val/img/val_002.png") as im:
        width, height = im.size
    assert load(roundtrip.out / NO_ANN) == {"description": "", "size": {"height": height, "width": width},
                                            "tags": [], "objects": []}


def test_every_exported_image_is_byte_identical(roundtrip):
    images = sorted(f for f in rel_files(roundtrip.src) if "/img/" in f)
    assert len(images) == 8
    for rel in images:
        assert (roundtrip.out / rel).read_bytes() == (roundtrip.src / rel).read_bytes(), rel


def test_every_exported_annotation_is_semantically_equal(roundtrip):
    anns = sorted(f for f in rel_files(roundtrip.src) if "/ann/" in f)
    assert len(anns) == 7
    for rel in anns:
        assert load(roundtrip.out / rel) == load(roundtrip.src / rel), rel


def test_project_meta_and_item_meta_are_semantically_equal(roundtrip):
    assert load(roundtrip.out / "meta.json") == load(roundtrip.src / "meta.json")
    item_meta = "val/meta/val_001.jpg.json"
    assert load(roundtrip.out / item_meta) == load(roundtrip.src / item_meta)
    assert load(roundtrip.out / item_meta) == {"camera": "cam2", "weather": "rain", "frame": 1532}


def test_nested_dataset_is_preserved(roundtrip):
    night = roundtrip.out / "train" / "datasets" / "night"
    assert sorted(p.name for p in (night / "img").iterdir()) == ["night_001.jpg", "night_002.png"]
    assert sorted(p.name for p in (night / "ann").iterdir()) == ["night_001.jpg.json", "night_002.png.json"]
    assert sorted(p.name for p in roundtrip.out.iterdir()) == ["meta.json", "train", "val"]
    with Store(roundtrip.store) as store:
        assert store.ns.datasets("again") == ["train", "train/night", "val"]
        assert store.ns.count_items("again", "train/night") == 2


def test_reimporting_the_export_writes_no_new_blob(roundtrip):
    before, after = roundtrip.before, roundtrip.after
    assert "8 items (8 added, 0 unchanged, 0 replaced), 0 new blobs" in roundtrip.again
    assert after["blobs"] == before["blobs"] and after["stored_bytes"] == before["stored_bytes"]
    assert (after["projects"], after["items"]) == (2, 2 * before["items"])


def test_export_layout_matches_the_sdk_layout(roundtrip):
    """The SDK's layout (not installed here): meta.json at the root, `<ds>/img/<name>`,
    `<ds>/ann/<name>.json`, optional `<ds>/meta/<name>.json`, children in `<ds>/datasets/<child>/`."""
    out = roundtrip.out
    assert (out / "meta.json").is_file()
    found: dict[str, dict[str, set[str]]] = {}
    for rel in sorted(rel_files(out) - {"meta.json"}):
        *folders, kind, name = rel.split("/")
        assert len(folders) % 2 == 1 and all(f == "datasets" for f in folders[1::2]), rel
        assert kind in ("img", "ann", "meta"), rel
        found.setdefault("/".join(folders[0::2]), {"img": set(), "ann": set(), "meta": set()})[kind].add(name)
    with Store(roundtrip.store) as store:
        assert set(found) == set(store.ns.datasets("demo"))
    for dataset, kinds in found.items():
        assert kinds["img"], dataset
        assert kinds["ann"] == {f"{name}.json" for name in kinds["img"]}, dataset
        assert kinds["meta"] <= kinds["ann"], dataset


# -- dedup ---------------------------------------------------------------------------------------
def test_duplicate_image_is_stored_once(roundtrip):
    with Store(roundtrip.store) as store:
        dup = store.ns.item("demo", "val", "val_003.jpg")
        original = store.ns.item("demo", "train", "street_001.jpg")
        assert dup.media == original.media == hash_bytes((roundtrip.src / "train/img/street_001.jpg").read_bytes())
        assert dup.ann == original.ann  # same annotation JSON too
        assert store.stat(dup.media).refcount == 4  # two items in demo, two in its re-import
        others = {rec.media for d in store.ns.datasets("demo") for _, rec in store.ns.items("demo", d)}
        assert len(others) == 7  # 8 items, 7 distinct images


# -- bad input -----------------------------------------------------------------------------------
def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def unknown_class(root: Path) -> None:
    edit_json(root / "train/ann/street_002.jpg.json", lambda a: a["objects"][0].update(classTitle="zebra"))


def size_mismatch(root: Path) -> None:
    edit_json(root / "train/ann/street_002.jpg.json", lambda a: a["size"].update(width=801))


def invalid_json(root: Path) -> None:
    (root / "val/ann/val_001.jpg.json").write_text('{"size": ')


def rectangle_with_three_points(root: Path) -> None:
    path = root / "train/datasets/night/ann/night_001.jpg.json"
    ann = load(path)
    assert ann["objects"][5]["geometryType"] == "rectangle"  # the sample's first car
    ann["objects"][5]["points"]["exterior"].append([5, 5])
    path.write_text(json.dumps(ann))


def truncated_jpeg(root: Path) -> None:
    path = root / "train/img/street_002.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def duplicate_class(root: Path) -> None:
    edit_json(root / "meta.json", lambda m: m["classes"].append({**m["classes"][0], "color": "#000000"}))


def annotation_without_image(root: Path) -> None:
    shutil.copy(root / "val/ann/val_001.jpg.json", root / "val/ann/ghost.jpg.json")


def invalid_item_meta(root: Path) -> None:
    (root / "val/meta/val_001.jpg.json").write_text("[1, ")


BAD = {
    "unknown class": (unknown_class, ["error: train/ann/street_002.jpg.json: objects[0].classTitle: ",
                                      "unknown class 'zebra'"]),
    "size disagrees": (size_mismatch, ["error: train/ann/street_002.jpg.json: size: ",
                                       "801x600", "800x600"]),
    "invalid json": (invalid_json, ["error: val/ann/val_001.jpg.json: ", "invalid JSON"]),
    "rectangle with 3 points": (rectangle_with_three_points, [
        "error: train/datasets/night/ann/night_001.jpg.json: objects[5].points.exterior: ",
        "rectangle needs exactly 2 points, got 3"]),
    "truncated jpeg": (truncated_jpeg, ["error: train/img/street_002.jpg: ", "truncated"]),
    "duplicate class": (duplicate_class, ["error: meta.json: classes[7].title: ", "duplicate class name 'car'"]),
    "annotation without image": (annotation_without_image, ["error: val/ann/ghost.jpg.json: ", "no matching image"]),
    "invalid item meta": (invalid_item_meta, ["error: val/meta/val_001.jpg.json: ", "invalid JSON"]),
}


@pytest.fixture(scope="module")
def busy_store(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A store that already holds another project (none of the sample's blobs)."""
    base = tmp_path_factory.mktemp("busy")
    write_images(base / "other" / "pics", 3)
    run_cas(base / "store", "import", str(base / "other"), "--project", "other", "--format", "images")
    return SimpleNamespace(path=base / "store", baseline=stats(base / "store"))


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_fails_with_one_line_and_leaves_the_store_unchanged(case, sample, busy_store, tmp_path):
    corrupt, needles = BAD[case]
    src = tmp_path / "bad"
    shutil.copytree(sample, src)
    corrupt(src)
    proc = run_cas(busy_store.path, "import", str(src), "--project", "bad", check=False)
    line = assert_user_error(proc, *needles)
    assert line.startswith(needles[0])
    # Nothing visible changed; blobs the failed import wrote are unreferenced and `gc` takes them.
    after = stats(busy_store.path)
    assert {k: after[k] for k in VISIBLE} == {k: busy_store.baseline[k] for k in VISIBLE}
    run_cas(busy_store.path, "gc")
    assert stats(busy_store.path) == busy_store.baseline


@pytest.mark.parametrize("bad_file, corrupt", [("val/ann/val_001.jpg.json", invalid_json),
                                               ("val/meta/val_001.jpg.json", invalid_item_meta)])
def test_skip_invalid_imports_the_other_items_and_names_the_skipped_one(bad_file, corrupt, sample, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(sample, src)
    corrupt(src)
    proc = run_cas(tmp_path / "store", "import", str(src), "--project", "demo", "--skip-invalid")
    assert "imported demo: 7 items (7 added, 0 unchanged, 0 replaced)" in proc.stdout.decode()
    stderr = proc.stderr.decode()
    assert "skipped 1 invalid item:" in stderr and bad_file in stderr and "Traceback" not in stderr
    with Store.init(tmp_path / "store") as store:
        assert [name for name, _ in store.ns.items("demo", "val")] == ["val_002.png", "val_003.jpg"]
        assert compute_stats(store)["items"] == 7
        assert fsck(store).clean


# -- importing into an existing project ----------------------------------------------------------
def test_reimport_unchanged_then_conflict_then_overwrite(sample, tmp_path):
    store = tmp_path / "store"
    run_cas(store, "import", str(sample), "--project", "demo")
    before = stats(store)
    again = run_cas(store, "import", str(sample), "--project", "demo").stdout.decode()
    assert "8 items (0 added, 8 unchanged, 0 replaced), 0 new blobs" in again
    assert stats(store) == before

    changed = tmp_path / "changed"
    shutil.copytree(sample, changed)
    image = changed / "train/img/street_002.jpg"
    with Image.open(image) as im:
        im.load()
        im.save(image, "JPEG", quality=40)  # same size, so the annotation still fits
    new_bytes = image.read_bytes()
    assert new_bytes != (sample / "train/img/street_002.jpg").read_bytes()
    with Store(store) as s:
        old_media = s.ns.item("demo", "train", "street_002.jpg").media

    proc = run_cas(store, "import", str(changed), "--project", "demo", check=False)
    assert_user_error(proc, "demo/train/street_002.jpg", "exists with a different image (use --overwrite")
    with Store(store) as s:
        assert s.ns.item("demo", "train", "street_002.jpg").media == old_media

    out = run_cas(store, "import", str(changed), "--project", "demo", "--overwrite").stdout.decode()
    assert "8 items (0 added, 7 unchanged, 1 replaced), 1 new blob" in out
    with Store(store) as s:
        assert s.ns.item("demo", "train", "street_002.jpg").media == hash_bytes(new_bytes)
        assert s.stat(old_media).refcount == 0
    fsck = run_cas(store, "fsck")
    assert re.search(r"8 items: clean$", fsck.stdout.decode().strip())


def test_import_nested_under_a_dataset(sample, tmp_path):
    run_cas(tmp_path / "store", "import", str(sample), "--project", "demo", "--dataset", "2024")
    with Store.init(tmp_path / "store") as store:
        assert store.ns.datasets("demo") == ["2024", "2024/train", "2024/train/night", "2024/val"]
        assert store.ns.count_items("demo", "2024") == 0
        assert store.ns.count_items("demo", "2024/train/night") == 2


# -- export errors -------------------------------------------------------------------------------
def test_export_refuses_a_non_empty_directory_or_a_file(roundtrip, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    assert_user_error(run_cas(roundtrip.store, "export", "demo", str(full), check=False),
                      f"{full} is not empty; pass --force")
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    file = tmp_path / "file"
    file.write_text("mine")
    assert_user_error(run_cas(roundtrip.store, "export", "demo", str(file), check=False),
                      f"{file} exists and is not a directory")
    assert file.read_text() == "mine"
    for under in (file / "out", file / "a" / "out"):
        assert_user_error(run_cas(roundtrip.store, "export", "demo", str(under), check=False),
                          f"cannot make {under}: {file} is not a directory")


def test_export_of_a_missing_project_or_unknown_format_fails(roundtrip, tmp_path):
    assert_user_error(run_cas(roundtrip.store, "export", "nope", str(tmp_path / "o"), check=False),
                      "no project named 'nope'")
    proc = run_cas(roundtrip.store, "export", "demo", str(tmp_path / "o"), "--format", "tfrecord", check=False)
    assert proc.returncode == 2 and "'tfrecord' is not one of 'sly', 'coco', 'yolo', 'voc'" in proc.stderr.decode()
    assert not (tmp_path / "o").exists()


def test_the_dataset_option_renames_a_projects_only_dataset(tmp_path):
    src = make_sample_project(tmp_path / "one", layout=[("train", "a.jpg", (200, 150), False)])
    run_cas(tmp_path / "store", "import", str(src), "--project", "p", "--dataset", "2024")
    with Store(tmp_path / "store") as store:
        assert store.ns.datasets("p") == ["2024"]  # was 2024/train
