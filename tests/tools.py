"""Python environments of the real tools the interop tests run (the Supervisely SDK,
Datumaro), each in a venv of its own so their pins never touch ours. `make test` builds
them; a run without make builds what is missing (not skipped: the tests must run)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = {  # name: (environment variable, venv folder, packages)
    "sly": ("CAS_SLY_PYTHON", ".venv-sly", ["supervisely", "pycocotools", "lxml"]),
    "datumaro": ("CAS_DATUMARO_PYTHON", ".venv-dm", ["datumaro"]),
}


def tool_python(name: str) -> str:
    variable, folder, packages = TOOLS[name]
    python = os.environ.get(variable) or str(ROOT / folder / "bin/python")
    if not Path(python).exists():
        subprocess.run(["python3", "-m", "venv", str(ROOT / folder)], check=True)
        python = str(ROOT / folder / "bin/python")
        subprocess.run([python, "-m", "pip", "install", "-q", *packages], check=True, timeout=900)
    return python


def run_tool(name: str, script: str, *args: str, timeout: float = 300) -> str:
    """Run `script` in the tool's Python; its stdout. A failure shows the tool's stderr."""
    res = subprocess.run([tool_python(name), "-c", script, *args], capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-4000:]
    return res.stdout
