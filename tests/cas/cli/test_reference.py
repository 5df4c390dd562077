"""docs/reference.md is what `python -m cas.cli.reference` prints: the command reference
cannot drift from the CLI's own help (`make docs` regenerates it)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_reference_md_is_what_the_generator_prints():
    printed = subprocess.run([sys.executable, "-m", "cas.cli.reference"], cwd=ROOT, capture_output=True,
                             text=True, check=True, env={"PYTHONPATH": str(ROOT), "COLUMNS": "40"}).stdout
    assert (ROOT / "docs" / "reference.md").read_text() == printed, \
        "docs/reference.md is out of date with the CLI's help: run `make docs`"


def test_reference_has_every_command():
    from cas.cli import cli
    text = (ROOT / "docs" / "reference.md").read_text()
    missing = [name for name in cli.commands if f"\n## cas {name}\n" not in text]
    assert not missing, missing
