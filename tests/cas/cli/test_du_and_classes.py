"""`cas du` and `cas stats P --classes` through the real executable: tables, --json, errors."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import pytest

from cas import Store
from cas.cli.base import human
from tests.cas.maintenance.test_usage import A_NIGHT, A_TOTAL, A_TRAIN, A_VAL, B_TOTAL, LINK_SIZE, build
from tests.conftest import assert_user_error, run_cas


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store of tests/cas/maintenance/test_usage.py; tests using it only read."""
    path = tmp_path_factory.mktemp("du") / "store"
    with Store.init(path) as store:
        build(store)
    return path


def table(store: Path, *args: str) -> list[list[str]]:
    """A table's lines split at runs of two or more spaces."""
    out = run_cas(store, *args).stdout.decode()
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]


def cells(r, *columns: str) -> list[str]:
    return [r.name, str(r.items), *(human(getattr(r, c)) for c in columns)]


def test_help_lists_du_and_defines_its_columns(two: Path) -> None:
    assert re.search(r"^  du\s", run_cas(two, "--help").stdout.decode(), re.MULTILINE)
    text = run_cas(two, "du", "--help").stdout.decode()
    for column in ("LOGICAL", "UNIQUE", "SHARED", "STORED", "S3", "LINKS", "UNKNOWN"):
        assert re.search(rf"^  {column}\s+\w", text, re.MULTILINE), column


def test_du_of_the_store_has_a_row_per_project_and_a_note_for_unknown_sizes(two: Path) -> None:
    rows = table(two, "du")
    assert rows[0] == ["NAME", "ITEMS", "LOGICAL", "UNIQUE", "SHARED", "STORED", "LINKS", "UNKNOWN"]
    columns = ("logical_bytes", "unique_bytes", "shared_bytes", "stored_bytes", "link_bytes")
    assert rows[1] == cells(A_TOTAL, *columns) + ["0"]
    assert rows[2] == cells(B_TOTAL, *columns) + ["1"]
    assert rows[3][:2] == ["total", "8"] and rows[3][-2:] == [human(LINK_SIZE), "1"]
    assert rows[4][0].startswith("UNKNOWN: 1 link item of unknown size") and len(rows) == 5


def test_du_of_a_project_and_of_a_dataset(two: Path) -> None:
    columns = ("logical_bytes", "unique_bytes", "shared_bytes", "stored_bytes")
    assert table(two, "du", "a") == [["NAME", "ITEMS", "LOGICAL", "UNIQUE", "SHARED", "STORED"],
                                     *(cells(r, *columns) for r in (A_TRAIN, A_NIGHT, A_VAL, A_TOTAL))]
    assert table(two, "du", "a/train") == [["NAME", "ITEMS", "LOGICAL", "UNIQUE", "SHARED", "STORED"],
                                           cells(A_NIGHT, *columns), ["a/train", *cells(A_TRAIN, *columns)[1:]]]


def test_du_json_has_the_documented_keys_and_exact_numbers(two: Path) -> None:
    out = json.loads(run_cas(two, "du", "a/train", "--json").stdout)
    assert out == {"target": "a/train", "rows": [asdict(A_NIGHT)], "total": {**asdict(A_TRAIN), "name": "a/train"}}
    out = json.loads(run_cas(two, "du", "--json").stdout)
    assert out["target"] is None and out["rows"] == [asdict(A_TOTAL), asdict(B_TOTAL)]
    assert list(out["total"]) == ["name", "items", "logical_bytes", "blobs", "unique_bytes", "shared_blobs",
                                  "shared_bytes", "stored_bytes", "s3_bytes", "link_bytes", "unknown_size_items",
                                  "unknown_size_blobs"]


def test_du_of_something_missing_or_of_an_item_is_a_one_line_error(two: Path) -> None:
    assert_user_error(run_cas(two, "du", "nope", check=False), "no project named 'nope'")
    assert_user_error(run_cas(two, "du", "a/nope", check=False), "no dataset or item a/nope")
    assert_user_error(run_cas(two, "du", "a/val/x4.png", check=False), "du takes a project or dataset")


def test_stats_classes_table_and_json(two: Path) -> None:
    out = run_cas(two, "stats", "a", "--classes").stdout.decode()
    assert out.splitlines()[0] == "project  a (images): 4 items in 3 datasets, 3 distinct annotations, 4 objects"
    blocks = [[re.split(r"\s{2,}", line.strip()) for line in block.splitlines()] for block in out.split("\n\n")[1:]]
    assert blocks == [
        [["CLASS", "GEOMETRY", "OBJECTS"], ["car", "rectangle", "3"], ["road", "polygon", "1"]],
        [["TAG", "ON ITEMS", "ON OBJECTS"], ["occluded", "0", "3"], ["weather", "3", "0"]],
        [["DATASET", "ITEMS"], ["train", "2"], ["train/night", "1"], ["val", "1"]],
    ]
    data = json.loads(run_cas(two, "stats", "b", "--classes", "--json").stdout)
    assert data == {"project": "b", "project_type": "images", "items": 4, "annotations": 3, "tagged_items": 1,
                    "counted": "objects",
                    "objects": 1, "classes": [{"class": "car", "geometry": "rectangle", "count": 1}],
                    "tags": [{"name": "occluded", "items": 0, "objects": 1},
                             {"name": "weather", "items": 1, "objects": 0}],
                    "datasets": [{"name": "d", "items": 2}, {"name": "links", "items": 2}], "media": {}}


def test_stats_classes_without_a_project_is_a_usage_error(two: Path) -> None:
    proc = run_cas(two, "stats", "--classes", check=False)
    assert proc.returncode == 2 and "Usage:" in proc.stderr.decode() and "Traceback" not in proc.stderr.decode()


def test_stats_classes_of_an_unknown_project_is_a_one_line_error(two: Path) -> None:
    assert_user_error(run_cas(two, "stats", "nope", "--classes", check=False), "no project named 'nope'")


def test_stats_of_a_project_without_classes_is_a_short_label_summary(two: Path) -> None:
    assert run_cas(two, "stats", "a").stdout.decode().splitlines() == [
        "project  a (images): 4 items in 3 datasets, 3 distinct annotations, 4 objects",
        "labels   2 classes used (car 3, road 1); 3 tagged items",
        "tables   cas stats a --classes"]
    assert json.loads(run_cas(two, "stats", "a", "--json").stdout) == json.loads(
        run_cas(two, "stats", "a", "--classes", "--json").stdout)


def test_plain_stats_is_unchanged(two: Path) -> None:
    assert json.loads(run_cas(two, "stats", "--json").stdout)["items"] == 8
