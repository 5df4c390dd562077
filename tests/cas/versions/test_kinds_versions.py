"""Video, point cloud, point-cloud episode and volume projects written by the Supervisely SDK
through versions, diff, push and clone: a clone exports every media and related file (and an
episode's files) byte for byte, an old version reads back as it was, and the SDK reads the
clone's export as it reads the source."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import FAST_NET, run_cas
from tests.sdk_projects import assert_same_project, sdk_read

KINDS = {  # kind -> (SDK class, the items changed, the file changed in the second version (a pattern))
    "videos": ("VideoProject", ["day/a.mp4"], "day/ann/a.mp4.json"),
    "point_clouds": ("PointcloudProject", ["ds0/a.pcd"], "ds0/related_images/a_pcd/left.png"),
    # every frame of an episode holds its annotation
    "point_cloud_episodes": ("PointcloudEpisodeProject", ["ep0/f0.pcd", "ep0/f1.pcd", "ep0/f2.pcd"],
                             "ep0/annotation.json"),
    "volumes": ("VolumeProject", ["ds0/ct.nrrd"], "ds0/mask/ct.nrrd/*.nrrd"),
}
FIXTURES = {"videos": "sdk_video_project", "point_clouds": "sdk_pointcloud_project",
            "point_cloud_episodes": "sdk_episode_project", "volumes": "sdk_volume_project"}


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def change(src: Path, kind: str, rel: str) -> None:
    """The second version's edit: a video's or an episode's annotation's description, a cloud's
    camera image, a volume's mask (another of its shape: every voxel but the first)."""
    path, = src.glob(rel)
    if kind in ("videos", "point_cloud_episodes"):
        ann = json.loads(path.read_text())
        ann["description"] = "second take"
        path.write_text(json.dumps(ann))
    elif kind == "volumes":
        header = b"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 8 10 12\nencoding: raw\n\n"
        path.write_bytes(header + b"\0" + b"\1" * 959)
    else:
        shutil.copy(src / "ds0/related_images/a_pcd/front.png", path)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_versions_diff_push_and_clone_keep_every_file(tmp_path: Path, s3_endpoint: str, bucket: str, kind: str,
                                                      request: pytest.FixtureRequest,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in FAST_NET.items():
        monkeypatch.setenv(key, value)
    project_class, items, edited = KINDS[kind]
    first = request.getfixturevalue(FIXTURES[kind])
    second = tmp_path / "second"
    shutil.copytree(first, second)
    change(second, kind, edited)
    origin, url = tmp_path / "origin", f"s3://{bucket}/{kind}"
    run_cas(origin, "init", "--s3", url, "--endpoint-url", s3_endpoint)
    run_cas(origin, "import", str(first), "--project", "p")
    run_cas(origin, "snapshot", "p", "-m", "first")
    run_cas(origin, "import", str(second), "--project", "p", "--overwrite")
    run_cas(origin, "snapshot", "p", "-m", "second")
    old, new = (v["id"] for v in reversed(json.loads(run_cas(origin, "log", "p", "--json").stdout)))
    diff = run_cas(origin, "diff", "p", old, new, "--exit-code", check=False)
    assert diff.returncode == 1 and diff.stdout.decode().splitlines() == [f"~ {item}" for item in items], diff.stdout
    run_cas(origin, "push", "p")
    clone = tmp_path / "clone"
    run_cas(clone, "clone", url, str(clone), "--endpoint-url", s3_endpoint, init=False)
    run_cas(clone, "export", "p", str(tmp_path / "out"))
    exported, source = files(tmp_path / "out"), files(second)
    for name in source:  # media and related files byte for byte; JSON as the SDK reads it (below)
        if not name.endswith(".json") or kind == "point_cloud_episodes" and name != "meta.json":
            assert exported[name] == source[name], name
    assert_same_project(sdk_read(tmp_path / "out", project_class), sdk_read(second, project_class), kind)
    run_cas(clone, "restore", "p", old)
    run_cas(clone, "export", "p", str(tmp_path / "old"))
    assert_same_project(sdk_read(tmp_path / "old", project_class), sdk_read(first, project_class), kind)  # related too
    assert run_cas(clone, "fsck").returncode == 0
