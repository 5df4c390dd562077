"""Two stores, one bucket: push from one, clone and mount on the other, read every byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import FAST_NET, run_cas, write_images
from tests.fusefs.conftest import files_under


def test_clone_mounts_and_reads_every_byte(tmp_path: Path, s3_endpoint: str, bucket: str, mount,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in FAST_NET.items():
        monkeypatch.setenv(key, value)
    write_images(tmp_path / "src" / "train", 12)
    write_images(tmp_path / "src" / "val", 5, start=100)
    a, b = tmp_path / "a", tmp_path / "b"
    run_cas(a, "init", "--s3", f"s3://{bucket}/team", "--endpoint-url", s3_endpoint)
    run_cas(a, "import", str(tmp_path / "src"), "--project", "p")
    run_cas(a, "push", "p")
    out = run_cas(b, "clone", f"s3://{bucket}/team", str(b), "--endpoint-url", s3_endpoint, init=False).stdout.decode()
    assert "17 items" in out
    with mount(a, read_only=True) as mnt:
        expected = files_under(mnt / "p")
    with mount(b, read_only=True) as mnt:
        assert files_under(mnt / "p") == expected
    assert len(expected) == 17 * 3 + 1  # img, ann, img_info per item, plus meta.json
