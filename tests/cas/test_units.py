"""Sizes: one parser for every size a user gives (options and the store's config)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cas.config import StoreConfig
from cas.errors import InvalidInput
from cas.units import BARE_BYTES_FLOOR, counted, counted_phrase, human_binary, parse_size


@pytest.mark.parametrize(("text", "size"), [("512K", 512 << 10), ("50M", 50 << 20), ("2G", 2 << 30),
                                            ("1.5G", 3 << 29), ("1t", 1 << 40), ("64MiB", 64 << 20),
                                            ("8 MB", 8 << 20), (str(BARE_BYTES_FLOOR), BARE_BYTES_FLOOR)])
def test_sizes_take_binary_units(text: str, size: int) -> None:
    assert parse_size(text, "--cache-size") == size


@pytest.mark.parametrize("text", ["50", "1048576", "50B"])
def test_a_bare_byte_count_below_the_floor_is_refused_naming_the_option(text: str) -> None:
    with pytest.raises(InvalidInput, match=r"^--cache-size: .* bytes; give a unit .* at least 16777216 bytes"):
        parse_size(text, "--cache-size")


@pytest.mark.parametrize("text", ["", "abc", "-3", "0", "0M", "nanM", "infG", "G", "1.2.3M", "+5M"])
def test_what_is_not_a_size_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match=r"^--cache-size: not a size"):
        parse_size(text, "--cache-size")


def test_the_config_takes_saved_bytes_or_a_size_written_by_hand(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"cache_size": 524288}))
    assert StoreConfig.load(tmp_path).cache_size == 524288
    (tmp_path / "config.json").write_text(json.dumps({"cache_size": "2G"}))
    assert StoreConfig.load(tmp_path).cache_size == 2 << 30
    (tmp_path / "config.json").write_text(json.dumps({"cache_size": "50"}))
    with pytest.raises(InvalidInput, match="cache_size: 50 would be 50 bytes"):
        StoreConfig.load(tmp_path)


@pytest.mark.parametrize(("n", "noun", "shown"), [(1, "item", "1 item"), (0, "item", "0 items"),
                                                  (2, "dataset", "2 datasets"), (1, "class", "1 class"),
                                                  (3, "class", "3 classes"),
                                                  (2, "entry", "2 entries"), (2, "key", "2 keys"),
                                                  (5, "link item", "5 link items"), (2, "box", "2 boxes")])
def test_counted_nouns_agree_with_their_count(n: int, noun: str, shown: str) -> None:
    assert counted(n, noun) == shown


@pytest.mark.parametrize(("n", "phrase", "shown"), [
    (1, "objects clipped to the image", "1 object clipped to the image"),
    (2, "objects clipped to the image", "2 objects clipped to the image"),
    (1, "polygons with holes written as masks", "1 polygon with holes written as masks"),
    (1, "segmentation classes without an object skipped", "1 segmentation class without an object skipped"),
    (1, "DontCare regions kept as class DontCare", "1 DontCare region kept as class DontCare"),
    (1, "image tags", "1 image tag"),
    (1, "val splits made of the train folders", "1 val split made of the train folders"),
    (1, "entries", "1 entry"),
    (1, "boxes", "1 box"),
])
def test_a_counted_phrase_agrees_with_its_count(n, phrase, shown):
    assert counted_phrase(n, phrase) == shown


@pytest.mark.parametrize(("text", "shown"), [("50M", "50 MiB"), ("1.5G", "1.5 GiB"), ("10G", "10 GiB"),
                                             ("512K", "512 KiB")])
def test_a_size_is_shown_in_the_units_it_was_given_in(text, shown):
    assert human_binary(parse_size(text, "--cache-size")) == shown
