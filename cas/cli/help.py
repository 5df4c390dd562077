"""`cas help [COMMAND]`, as git and DVC have it: the text `cas COMMAND --help` prints."""

from __future__ import annotations

import click

from cas.cli.base import cli
from cas.errors import NotFound


@cli.command("help")
@click.argument("command", required=False)
@click.pass_context
def help_cmd(ctx: click.Context, command: str | None) -> None:
    """What COMMAND does and takes (as `cas COMMAND --help`); without one, every command."""
    group = ctx.find_root()
    if command is None:
        click.echo(group.get_help())
        return
    found = cli.get_command(group, command)
    if found is None:
        raise NotFound(f"no command {command!r}; the commands: {', '.join(cli.list_commands(group))}")
    click.echo(found.get_help(click.Context(found, info_name=command, parent=group)))
