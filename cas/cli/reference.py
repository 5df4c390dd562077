"""The command reference, docs/reference.md, printed from the CLI's own help so that it cannot
drift: `python -m cas.cli.reference > docs/reference.md` (`make docs`); tests/cas/cli/
test_reference.py fails when the file differs from what this prints."""

from __future__ import annotations

import click

from cas.cli import cli

WIDTH = 100  # help is wrapped at this width whatever the terminal (the file must not depend on it)

HEADER = """\
# Command reference

Generated from the CLI's own `--help` by `python -m cas.cli.reference` (`make docs`); do not
edit by hand: `tests/cas/cli/test_reference.py` fails when this file differs from what the
generator prints. Options of `cas` itself may be given before or after the command
(`cas --store X ls` is `cas ls --store X`).
"""


Chain = list[tuple[str, click.Command]]  # (name, command) from `cas` down to one command


def help_text(chain: Chain) -> str:
    """The --help page of the chain's last command, as `cas ... --help` prints it at WIDTH columns."""
    ctx = None
    for name, command in chain:
        ctx = click.Context(command, info_name=name, parent=ctx, terminal_width=WIDTH, max_content_width=WIDTH,
                            **command.context_settings)
    assert ctx is not None
    return ctx.command.get_help(ctx)


def commands(chain: Chain) -> list[Chain]:
    """The chain of every command under the last of `chain`, depth first, in name order."""
    group = chain[-1][1]
    found: list[Chain] = []
    if isinstance(group, click.Group):
        for name in sorted(group.commands):
            command = group.commands[name]
            if not command.hidden:
                found += [[*chain, (name, command)], *commands([*chain, (name, command)])]
    return found


def reference() -> str:
    """docs/reference.md: `cas --help`, then one section per command."""
    root: Chain = [("cas", cli)]
    sections = [HEADER]
    for chain in [root, *commands(root)]:
        sections += [f"## {' '.join(name for name, _ in chain)}\n", f"```text\n{help_text(chain)}\n```\n"]
    return "\n".join(sections)


if __name__ == "__main__":
    print(reference(), end="")
