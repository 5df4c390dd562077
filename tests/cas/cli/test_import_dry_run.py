"""`cas import --dry-run`: what would be imported, and not one byte of the store changed."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from cas.units import counted
from tests.conftest import run_cas, store_files, write_images


def big_png(path: Path) -> None:
    """A PNG past the spool's in-memory limit (8 MiB): hashed in place, never copied."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1800, 1800, 3), dtype=np.uint8)).save(path)


def test_a_dry_run_says_what_would_be_imported_and_writes_nothing(tmp_path):
    store = tmp_path / "store"
    write_images(tmp_path / "old" / "train", 3)
    run_cas(store, "import", str(tmp_path / "old"), "-p", "p")
    src = tmp_path / "src"
    write_images(src / "train", 3)  # the same bytes: known
    write_images(src / "val", 2, start=100)  # new
    big_png(src / "val" / "big.png")
    before = store_files(store)
    listing = sorted(p.relative_to(store) for p in store.rglob("*"))

    out = run_cas(store, "import", str(src), "-p", "p", "--dry-run").stdout.decode().splitlines()

    assert store_files(store) == before
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == listing
    head = re.fullmatch(r"would import 6 items into project p \(format images, detected\): (\d+) new blobs, "
                        r"(.+) not in the store yet \(of .+ read\); nothing written \(dry run\)", out[0])
    assert head, out
    assert out[1:] == ["  train\t3 items", "  val\t3 items"]
    real = run_cas(store, "import", str(src), "-p", "p").stdout.decode()
    assert f", {head.group(1)} new blobs, {head.group(2)} written of" in real, (out[0], real)


def test_a_dry_run_of_links_counts_their_new_annotations(tmp_path):
    """A link item's bytes stay at its URL; its annotation is a new blob the dry run counts."""
    store = tmp_path / "store"
    run_cas(store, "init")
    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.1:9/a.jpg\nhttp://127.0.0.1:9/b.jpg\n")
    args = ("import", str(urls), "-p", "web", "--format", "links", "--no-head")
    before = store_files(store)
    dry = run_cas(store, *args, "--dry-run").stdout.decode().splitlines()[0]
    assert store_files(store) == before
    new = re.search(r": (\d+) new blobs?,", dry)
    assert new, dry
    real = run_cas(store, *args).stdout.decode()
    assert f", {counted(int(new.group(1)), 'new blob')}, " in real, (dry, real)
