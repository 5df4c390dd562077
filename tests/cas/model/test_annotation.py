"""JSON from outside is parsed strictly: finite numbers, bounded integers and nesting, UTF-8."""

from __future__ import annotations

import json
import re

import pytest

from cas.errors import InvalidInput
from cas.model.annotation import _suspect, loads
from tests.conftest import assert_user_error, run_cas


@pytest.mark.parametrize("raw, why", [
    (b'{"x": NaN}', "NaN"), (b'[Infinity]', "Infinity"), (b'[-Infinity]', "-Infinity"),
    (b'[1e400]', "out of range"), (b'[-2.5E+999]', "out of range"),
    (b'[' + b'7' * 2_000_000 + b']', "digits"), (b'[' * 3000 + b']' * 3000, "nested too deeply"),
    (b'{"a": "\xff"}', "utf-8"), (b'{"a": ', "invalid JSON"),
], ids=["nan", "inf", "-inf", "1e400", "-2.5e999", "2M digits", "deep", "bad utf-8", "truncated"])
def test_hostile_json_is_one_invalid_input(raw: bytes, why: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(why)) as err:
        loads(raw, "ann/x.json")
    assert str(err.value).startswith("ann/x.json: invalid JSON")


def test_ordinary_numbers_pass() -> None:
    raw = b'{"a": [1.5, -2, 1e10, 1E-400, 123456789012345678901234567890], "id": "1234567890" }'
    assert loads(raw, "x") == json.loads(raw)


@pytest.mark.parametrize("raw, suspect", [
    (b'{"counts": "PR1d0' + b"0" * 40 + b'e000d1"}', False), (b'{"a": "x' + b"9" * 40 + b'"}', False),
    (b'[1.0e10, 3, "e+999"]', False), (b'[' + b"1" * 31 + b']', True), (b'{"a": -1' + b"0" * 31 + b'}', True),
    (b'[1.5e400]', True), (b'[2, 1E-400]', True), (b'1e999', True), (b'{"a":\n 2.5e+308}', True),
])
def test_only_patterns_that_may_be_numbers_are_suspect(raw: bytes, suspect: bool) -> None:
    assert _suspect(raw) is suspect


def test_a_bad_number_after_many_patterns_in_strings_is_still_refused() -> None:
    strings = b", ".join(b'"x' + b"0" * 40 + b'"' for _ in range(100))  # past the budget of patterns to look at
    assert loads(b"[" + strings + b"]", "x") == ["x" + "0" * 40] * 100
    with pytest.raises(InvalidInput, match="out of range"):
        loads(b"[" + strings + b", 1e999]", "x")


def test_an_import_with_a_nan_coordinate_fails_in_one_line_and_stores_nothing(tmp_path, sample_project) -> None:
    ann = sample_project / "train/ann/street_001.jpg.json"
    text = ann.read_text()
    ann.write_text(re.sub(r'"exterior":\s*\[\s*\[\s*[-0-9.]+', '"exterior": [[NaN', text, count=1))
    assert "NaN" in ann.read_text()
    store = tmp_path / "store"
    proc = run_cas(store, "import", str(sample_project), "--project", "p", check=False)
    assert_user_error(proc, "street_001.jpg.json", "NaN")
    assert run_cas(store, "ls").stdout == b""


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1e300, 3e9])
def test_non_finite_or_absurd_coordinates_are_refused_naming_the_field(bad: float) -> None:
    from cas.model.annotation import Meta, empty_annotation
    meta = Meta({"classes": [{"title": "car", "shape": "polygon", "color": "#FF0000"}], "tags": []})
    ann = {**empty_annotation(40, 30), "objects": [{"classTitle": "car", "geometryType": "polygon", "tags": [],
                                                   "points": {"exterior": [[1, 1], [bad, 2], [3, 9]], "interior": []}}]}
    with pytest.raises(InvalidInput, match=r"objects\[0\].*exterior\[1\].*finite"):
        meta.check_annotation(ann, "ann/a.jpg.json", 40, 30)


@pytest.mark.parametrize("hole, message", [
    ([[1, 1], [2, 2], [3, "1"]], r"objects\[1\].points.interior\[0\]\[2\]: expected \[x, y\] numbers"),
    ([[1, 1], [2, True], [3, 1]], r"objects\[1\].points.interior\[0\]\[1\]: expected \[x, y\] numbers"),
    ([[1, 1], (2, 2), [3, 1]], r"objects\[1\].points.interior\[0\]\[1\]: expected \[x, y\] numbers"),
    ([[1, 1], [2, 2 ** 40], [3, 1]], r"objects\[1\].points.interior\[0\]\[1\]: coordinates must be finite"),
])
def test_a_bad_point_of_a_hole_is_named(hole: list, message: str) -> None:
    from cas.model.annotation import Meta, empty_annotation
    meta = Meta({"classes": [{"title": "car", "shape": "polygon", "color": "#FF0000"}], "tags": []})
    good = {"classTitle": "car", "geometryType": "polygon", "tags": [],
            "points": {"exterior": [[1.5, 1], [9, 2], [3, 9.25]], "interior": []}}
    ann = {**empty_annotation(40, 30), "objects": [good, {**good, "points": {**good["points"], "interior": [hole]}}]}
    with pytest.raises(InvalidInput, match=message):
        meta.check_annotation(ann, "ann/a.jpg.json", 40, 30)


BOX = {"geometryType": "rectangle", "points": {"exterior": [[0, 0], [1, 1]], "interior": []}}


@pytest.mark.parametrize("ann, said", [
    ({"tags": [{"name": "seen", "value": True}], "objects": []}, "value true does not fit tag 'seen'"),
    ({"tags": [], "objects": [{"classTitle": None, **BOX}]}, "unknown class null"),
], ids=["tag value", "class title"])
def test_a_bad_value_is_shown_as_the_json_writes_it(ann, said) -> None:  # not as Python's True / None
    from cas.model.annotation import Meta
    meta = Meta({"classes": [], "tags": [{"name": "seen", "value_type": "none"}]}, "meta.json")
    with pytest.raises(InvalidInput, match=re.escape(said)):
        meta.check_annotation({"size": {"width": 4, "height": 4}, **ann}, "ann/x.json", 4, 4)


def test_annotation_kind_tells_videos_and_point_clouds_from_images():
    from cas.model.annotation import (
        annotation_kind,
        empty_annotation,
        empty_pointcloud_annotation,
        empty_video_annotation,
    )

    assert annotation_kind(empty_video_annotation(4, 3, 10, b"\1" * 16)) == "videos"
    assert annotation_kind(empty_pointcloud_annotation(b"\1" * 16)) == "point_clouds"
    assert annotation_kind(empty_annotation(4, 3)) == annotation_kind([]) == "images"
