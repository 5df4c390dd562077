"""Module-level locks in cas/ are new in a forked child (DataLoader workers fork from a
parent whose threads may hold one): a lock held at the fork would never be released there."""

from __future__ import annotations

import ast
import importlib
import os

import pytest

from tests.conftest import ROOT


def module_locks() -> list[tuple[str, str]]:
    """(module, name) of every `NAME = threading.Lock()` (or RLock) at the top of a cas module."""
    found = []
    for path in sorted((ROOT / "cas").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.parse(path.read_text()).body:
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            if isinstance(value, ast.Call) and ast.unparse(value.func) in ("threading.Lock", "threading.RLock"):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                found.extend((module, ast.unparse(t)) for t in targets)
    return found


def test_the_module_locks_are_found():
    assert {("cas.index", "_envs_lock"), ("cas.versions.trees", "_trees_lock")} <= set(module_locks())


@pytest.mark.parametrize("module, name", module_locks())
def test_a_module_lock_held_at_a_fork_is_free_in_the_child(module: str, name: str):
    mod = importlib.import_module(module)
    with getattr(mod, name):  # held, as by another thread of the parent
        pid = os.fork()
        if pid == 0:
            os._exit(0 if getattr(mod, name).acquire(timeout=10) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"{module}.{name} stays held in a forked child"
