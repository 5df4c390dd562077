"""Lint and types: `ruff check` and `mypy`, configured in pyproject.toml, report nothing.

Both run from the repository root with this interpreter's installs (the `test` extra);
mypy takes seconds from its cache (.mypy_cache), under ten without it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

CHECKS = {
    "ruff": [sys.executable, "-m", "ruff", "check", "cas", "converters", "fusefs", "bench", "tests"],
    "mypy": [sys.executable, "-m", "mypy"],  # its files and options: [tool.mypy]
}


@pytest.mark.parametrize("tool", sorted(CHECKS))
def test_is_clean(tool):
    done = subprocess.run(CHECKS[tool], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"{tool} found problems:\n{done.stdout}{done.stderr}"
