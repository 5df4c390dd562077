"""Every shell and Python block of README.md and docs/*.md runs, so a drifted example fails.

A page's blocks run in order in one bash session (`set -euo pipefail`), so its steps build on
each other: in a fresh folder holding sample data (`sample/`, a Supervisely project;
`street_coco/`, its COCO export; `photos/`, a folder of JPEGs), with `CAS_STORE` naming a store
not yet made, `cas` and `python` on PATH, and S3 (`s3://datasets`, through AWS_ENDPOINT_URL)
served by moto on 127.0.0.1. A ```python block is run by `python` at its place in the session;
```text blocks are output and are not run. A block that cannot run here is marked on the line
right before its fence: `<!-- skip: why -->`, or `<!-- needs: MODULE -->` for one that runs
where that module imports. Mounts left under the folder are unmounted whatever happens.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, write_images

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = {"sh", "bash", "console", "python"}
NOT_RUN = {"text"}  # output, listings, layouts
FENCE = re.compile(r"^```(\S*)\s*$")
MARK = re.compile(r"^<!--\s*(skip|needs):\s*(.*?)\s*-->$")
BUCKET = "datasets"
# A picture a page shows, and the file its blocks render: they must be the same pixels (`make docs`).
PICTURES = {"README.md": ("coco_item.png", ROOT / "docs" / "coco_item.png")}


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    mark: tuple[str, str] | None  # ("skip", reason) or ("needs", module)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def skipped_because(self) -> str | None:
        if self.mark is None:
            return None
        kind, what = self.mark
        if kind == "skip":
            return what
        return None if importlib.util.find_spec(what) else f"needs {what}, not installed here"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, with the mark on the line before each."""
    found: list[Block] = []
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"{page.name}:{i + 1}: a code fence that is never closed"
        mark = MARK.match(lines[i - 1].strip()) if i else None
        found.append(Block(page, i + 1, fence.group(1), "\n".join(lines[i + 1:end]) + "\n",
                           (mark.group(1), mark.group(2)) if mark else None))
        i = end + 1
    return found


def shell_of(block: Block) -> str:
    """The block as lines of the page's bash session."""
    if block.lang == "console":  # `$ command` lines run; the others are its output
        return "".join(line[2:] + "\n" for line in block.code.splitlines() if line.startswith("$ "))
    return block.code


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_block_is_run_or_says_why_not(page: Path):
    """A fence without a known language would be neither run nor called output: every block
    says which it is, and every mark stands before a block that would run and gives its reason."""
    for block in blocks(page):
        assert block.lang in RUN | NOT_RUN, \
            f"{block.where}: fence language {block.lang!r}: use one of {sorted(RUN | NOT_RUN)}"
        if block.mark:
            assert block.lang in RUN, f"{block.where}: a {block.mark[0]} mark before a block that is not run"
            assert block.mark[1], f"{block.where}: a {block.mark[0]} mark must say why (or which module)"


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sample/ (Supervisely), street_coco/ (its COCO export) and photos/ (plain JPEGs)."""
    from bench.datagen import make_sample_project
    root = tmp_path_factory.mktemp("docs-data")
    make_sample_project(root / "sample")
    write_images(root / "photos", 4, prefix="photo")
    store = root / ".store"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for args in (["init"], ["import", "sample", "--project", "street"],
                 ["export", "street", "street_coco", "--format", "coco"]):
        subprocess.run([sys.executable, "-m", "cas", "--store", str(store), "-q", *args], cwd=root, env=env,
                       check=True, capture_output=True)
    shutil.rmtree(store)
    return root


def page_session(page: Path) -> tuple[str, list[str]]:
    """The bash script of a page's runnable blocks, and the blocks skipped (with why)."""
    script = ["set -euo pipefail", "trap 'echo \"failed: $BASH_COMMAND\" >&2' ERR", "mkdir -p .blocks"]
    skipped = []
    for n, block in enumerate(blocks(page)):
        if block.lang not in RUN:
            continue
        reason = block.skipped_because()
        if reason:
            skipped.append(f"{block.where}: {reason}")
            continue
        script.append(f"echo '@@ {block.where}' >&2")
        if block.lang == "python":
            script.append(f"cat > .blocks/{n}.py <<'CAS_DOCS_EOF'\n{block.code}CAS_DOCS_EOF")
            script.append(f"python .blocks/{n}.py")
        else:
            script.append(shell_of(block))
    return "\n".join(script) + "\n", skipped


def unmount_all_under(folder: Path) -> None:
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1].replace("\\040", " ") for line in mounts]
    for point in reversed(points):
        if Path(point).is_relative_to(folder):
            subprocess.run(["fusermount3", "-u", "-z", point], capture_output=True)


def empty_bucket(endpoint: str) -> None:
    import boto3
    s3 = boto3.resource("s3", endpoint_url=endpoint)
    bucket = s3.Bucket(BUCKET)
    if bucket.creation_date is None:
        bucket.create()
    bucket.objects.all().delete()


RUNNABLE = [p for p in PAGES if any(b.lang in RUN and not (b.mark and b.mark[0] == "skip") for b in blocks(p))]


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: p.name)
def test_page_runs(page: Path, tmp_path: Path, sample_data: Path, s3_endpoint: str):
    script, skipped = page_session(page)
    work = tmp_path / "work"
    shutil.copytree(sample_data, work)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, line in (("cas", f'exec {sys.executable} -m cas "$@"'), ("python", f'exec {sys.executable} "$@"')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{line}\n")
        (bin_dir / name).chmod(0o755)
    empty_bucket(s3_endpoint)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "home" / "data"),
           "CAS_STORE": str(work / "store"), "AWS_ENDPOINT_URL": s3_endpoint,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        done = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True,
                              timeout=120)
    finally:
        unmount_all_under(tmp_path)
    if done.returncode != 0:
        at = [line for line in done.stderr.splitlines() if line.startswith("@@ ")]
        tail = "\n".join(done.stderr.splitlines()[-25:])
        pytest.fail(f"the block at {at[-1][3:] if at else page.name} failed (exit {done.returncode}):\n"
                    f"{done.stdout[-2000:]}\n{tail}")
    if page.name in PICTURES:
        rendered, shown = PICTURES[page.name]
        from PIL import Image
        with Image.open(work / rendered) as a, Image.open(shown) as b:
            assert a.size == b.size and a.tobytes() == b.tobytes(), \
                f"{shown.name} is not what {page.name}'s blocks render: run `make docs`"
    for line in skipped:
        print("skipped", line)


LINK = re.compile(r"\]\((?!https?:|mailto:)([^)\s#]*)(?:#([^)\s]+))?\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as '-'."""
    heads = [line.lstrip("#").strip() for line in page.read_text().splitlines() if re.match(r"#{1,6} ", line)]
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_reach_a_file_and_heading(page: Path):
    broken = []
    for target, anchor in LINK.findall(page.read_text()):
        linked = (page.parent / target).resolve() if target else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}#{anchor}: no such heading")
    assert not broken, f"{page.name}: {broken}"
