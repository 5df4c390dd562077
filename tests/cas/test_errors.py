"""Messages say a failure in words: no exception class names, no Python object reprs."""

from __future__ import annotations

import io

import pytest
from PIL import Image, UnidentifiedImageError

from cas.errors import reason, shown


def test_the_reason_of_an_unidentified_image_has_no_object_repr():
    with pytest.raises(UnidentifiedImageError) as caught:
        Image.open(io.BytesIO(b"not an image"))
    assert "object at 0x" in str(caught.value)  # what Pillow says
    assert reason(caught.value) == "cannot identify image file"


def test_the_reason_of_an_os_error_is_the_systems_text_after_its_file():
    assert reason(FileNotFoundError(2, "No such file or directory", "/x")) == "/x: No such file or directory"
    assert reason(OSError(28, "No space left on device")) == "No space left on device"


def test_a_connection_error_loses_the_connection_objects_repr():
    from urllib3.exceptions import NewConnectionError
    e = NewConnectionError(object(), "Failed to establish a new connection: [Errno 113] No route to host")
    assert reason(e) == "Failed to establish a new connection: [Errno 113] No route to host"


@pytest.mark.parametrize(("value", "text"), [(None, "null"), (True, "true"), ({"k": [1]}, '{"k": [1]}'),
                                             ("car", "'car'"), ("x" * 100, "'" + "x" * 76 + "...")])
def test_a_documents_value_is_shown_as_the_document_writes_it(value, text):
    assert shown(value) == text


def test_the_reason_of_a_broken_video_is_ffmpegs_text():
    av = pytest.importorskip("av")
    with pytest.raises(av.error.FFmpegError) as caught:
        av.open(io.BytesIO(b"garbage" * 100))
    assert reason(caught.value) == "Invalid data found when processing input"
