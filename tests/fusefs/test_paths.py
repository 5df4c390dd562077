import pytest

from cas.errors import InvalidName
from fusefs.paths import Kind, Target, dataset_path, parse


@pytest.mark.parametrize("path,expected", [
    ("/", Target(Kind.ROOT)),
    ("/.cas", Target(Kind.CAS_DIR)),
    ("/.cas/stats.json", Target(Kind.STATS)),
    ("/p", Target(Kind.PROJECT, "p")),
    ("/p/meta.json", Target(Kind.PROJECT_META, "p")),
    ("/p/train", Target(Kind.DATASET, "p", "train")),
    ("/p/train/img", Target(Kind.SECTION, "p", "train", "img")),
    ("/p/train/ann/x.jpg.json", Target(Kind.FILE, "p", "train", "ann", "x.jpg.json")),
    ("/p/train/datasets", Target(Kind.SECTION, "p", "train", "datasets")),
    ("/p/train/datasets/night", Target(Kind.DATASET, "p", "train/night")),
    ("/p/train/datasets/night/img/y.png", Target(Kind.FILE, "p", "train/night", "img", "y.png")),
])
def test_paths_name_what_the_layout_says(path, expected):
    assert parse(path) == expected


@pytest.mark.parametrize("path", ["/.cas/other", "/p/train/nope", "/p/train/img/x/y", "/p/train/datasets/a/b"])
def test_paths_outside_the_layout_are_refused(path):
    with pytest.raises(InvalidName):
        parse(path)


def test_item_of_a_json_file_drops_the_suffix_and_requires_it():
    assert parse("/p/d/ann/x.jpg.json").item == "x.jpg"
    assert parse("/p/d/img/x.jpg").item == "x.jpg"
    target = parse("/p/d/ann/x.jpg")  # parses; only its item is refused
    with pytest.raises(InvalidName):
        _ = target.item


def test_nested_dataset_path_round_trips():
    assert dataset_path("p", "a/b/c") == "/p/a/datasets/b/datasets/c"
    assert parse(dataset_path("p", "a/b/c")) == Target(Kind.DATASET, "p", "a/b/c")
