"""The `cas` command line, the composition root (the one part of cas/ that reaches converters/
and fusefs/, inside the commands that need them): base.py holds the group and what the
commands share; each other module is one group of commands, registered on import."""

from cas.cli import help, items, maintenance, mount, versions  # noqa: F401 - registers their commands
from cas.cli.base import cli, main

__all__ = ["cli", "main"]
