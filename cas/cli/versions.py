"""Commands on versions and sharing: snapshot, log, diff, restore, pull, push, clone."""

from __future__ import annotations

import json
import sys
from datetime import UTC
from pathlib import Path

import click

from cas.cli.base import Context, cli, complete_target, echo_lines, human, item_count, json_option, pass_ctx, resolve
from cas.errors import InvalidInput
from cas.model.names import check_name
from cas.units import counted


@cli.command("snapshot")
@click.argument("project", shell_complete=complete_target)
@click.option("-m", "--message", default="", help="What this version is.")
@pass_ctx
def snapshot_cmd(c: Context, project: str, message: str) -> None:
    """Freeze PROJECT into an immutable version (costs only what changed since the last)."""
    from cas.versions.snapshots import snapshot

    ns = c.store.ns
    with c.bar(lambda: item_count(ns, project), "item", f"snapshot {project}") as bar:
        version, new = snapshot(c.store, project, message, progress=bar.update)
    if new:
        click.echo(f"version {version.id.hex()} of {project}: {counted(version.items, 'item')}, "
                   f"{human(version.bytes)}")
    else:
        click.echo(f"nothing changed since version {version.id.hex()} of {project}")


@cli.command("log")
@click.argument("project", shell_complete=complete_target)
@json_option
@pass_ctx
def log_cmd(c: Context, project: str, as_json: bool) -> None:
    """Versions of PROJECT, newest first: id, time, items, bytes, message."""
    from datetime import datetime

    from cas.versions.snapshots import history

    c.store.ns.project(project)
    versions = list(history(c.store, project))
    if not versions and not as_json:
        click.echo(f"{project} has no versions yet: `cas snapshot {project} -m MESSAGE` makes one", err=True)
    if as_json:
        click.echo(json.dumps([{"id": v.id.hex(), "time": datetime.fromtimestamp(v.time / 1e9, UTC).isoformat(),
                                "items": v.items, "bytes": v.bytes, "message": v.message,
                                "parent": v.parent.hex() if v.parent else None,
                                "merged": v.merged.hex() if v.merged else None} for v in versions], indent=2))
        return
    for v in versions:
        when = datetime.fromtimestamp(v.time / 1e9).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{v.id.hex()}  {when}  {counted(v.items, 'item')}  {human(v.bytes)}  {v.message}")


@cli.command("diff")
@click.argument("project", shell_complete=complete_target)
@click.argument("old")
@click.argument("new", required=False)
@json_option
@click.option("--exit-code", is_flag=True, help="Exit 1 when there are differences, 0 when none (as git diff).")
@pass_ctx
def diff_cmd(c: Context, project: str, old: str, new: str | None, as_json: bool, exit_code: bool) -> None:
    """Items added (+), removed (-) and changed (~) from version OLD to NEW (default: now)."""
    from cas.versions.snapshots import diff, resolve_version

    c.store.ns.project(project)
    d = diff(c.store, project, resolve_version(c.store, project, old),
             resolve_version(c.store, project, new) if new else None)
    if as_json:
        click.echo(json.dumps({"added": d.added, "removed": d.removed, "changed": d.changed}, indent=2))
    else:
        for sign, names in (("+", d.added), ("-", d.removed), ("~", d.changed)):
            echo_lines(f"{sign} {name}" for name in names)
        click.echo(f"{len(d.added)} added, {len(d.removed)} removed, {len(d.changed)} changed", err=True)
    if exit_code and (d.added or d.removed or d.changed):
        sys.exit(1)


@cli.command("restore")
@click.argument("project", shell_complete=complete_target)
@click.argument("version")
@pass_ctx
def restore_cmd(c: Context, project: str, version: str) -> None:
    """Make VERSION the current state of PROJECT (the state it replaces stays a version)."""
    from cas.versions.snapshots import resolve_version, restore

    target = resolve_version(c.store, project, version)
    new = restore(c.store, project, target)
    click.echo(f"restored {project} to {target.id.hex()} ({counted(target.items, 'item')}) "
               f"as version {new.id.hex()}")


@cli.command("pull")
@click.argument("target", shell_complete=complete_target)
@click.option("--links", "links_only", is_flag=True, help="Only fetch link items' bytes (never the remote).")
@pass_ctx
def pull_cmd(c: Context, target: str, links_only: bool) -> None:
    """PROJECT shared through this store's S3 remote: bring the remote's versions in (a
    project not here yet is cloned into this store; else a fast-forward, or an item-level
    merge with local changes). Otherwise, or with --links: fetch the link items of
    PROJECT[/DATASET] into the store (resumable; identical content stored once).
    `cas clone URL PATH` makes a new store instead."""
    from cas.versions.sharing import pull, remote_head
    from cas.versions.transfer import count_links, pull_links

    project, _, rest = target.strip("/").partition("/")
    if not links_only and not rest and c.store.s3 is not None and remote_head(c.store, project)[0] is not None:
        how, version = pull(c.store, project)
        click.echo(f"{project}: {how}, now at {version.id.hex()} ({counted(version.items, 'item')})")
        return
    project, dataset, item = resolve(c.store, target)
    if item is not None:
        raise InvalidInput(target, "pull takes a project or dataset")
    with c.bar(lambda: count_links(c.store, project, dataset), "item", f"pull {target}") as bar:
        r = pull_links(c.store, project, dataset, progress=bar.update)
    changed = f", {r.skipped} changed meanwhile" if r.skipped else ""
    click.echo(f"pulled {counted(r.done, 'link item')} ({human(r.bytes)}){changed}")
    _report_failures(r.failed, r.errors, "items stay links")


@cli.command("push")
@click.argument("project", required=False, shell_complete=complete_target)
@click.option("-m", "--message", default="push", help="Message of the version a push snapshots.")
@pass_ctx
def push_cmd(c: Context, project: str | None, message: str) -> None:
    """With PROJECT: snapshot it, upload what its versions need and move its ref on the S3
    remote (a conflict if someone pushed meanwhile: `cas pull`, then push again). Without:
    move every local blob to the S3 remote (resumable)."""
    from cas.versions.transfer import count_local, push_blobs

    if project is not None:
        from cas.versions.sharing import push
        c.store.ns.project(project)
        version, r = push(c.store, project, message)
        click.echo(f"pushed {project} at {version.id.hex()} ({counted(version.items, 'item')}; "
                   f"{counted(r.done, 'blob')} uploaded) to {c.store.config.s3}")
        return
    with c.bar(lambda: count_local(c.store)[1], "B", "push", unit_scale=True) as bar:
        r = push_blobs(c.store, progress=bar.update)
    click.echo(f"pushed {counted(r.done, 'blob')} ({human(r.bytes)}) to {c.store.config.s3}")
    _report_failures(r.failed, r.errors, "blobs stay local")


@cli.command("clone")
@click.argument("url")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option("--project", "-p", "projects", multiple=True,
              help="Clone only this project (repeatable; default: every project shared at URL).")
@click.option("--endpoint-url", default=None, help="S3 endpoint.")
@click.option("--region", default=None, help="S3 region.")
@pass_ctx
def clone_cmd(c: Context, url: str, path: Path, projects: tuple[str, ...], endpoint_url: str | None,
              region: str | None) -> None:
    """Make a new store at PATH (missing or an empty folder, as `git clone`) whose S3 remote is
    URL (s3://bucket/prefix), holding the projects shared there: trees fetched, index built,
    media bytes read on demand. A failed clone leaves nothing at PATH.

    To bring a shared project into an existing store instead: `cas init --s3 URL` once, then
    `cas pull PROJECT`."""
    from cas.config import S3Remote
    from cas.versions.cloning import clone_store

    for project in projects:
        check_name(project, "project name")
    remote = S3Remote.parse(url, endpoint_url, region)
    with c.bar(None, "item", f"clone {remote}") as bar:
        versions = clone_store(path, remote, projects, progress=bar.update)
    for project, version in versions.items():
        click.echo(f"cloned {project} at {version.id.hex()}: {counted(version.items, 'item')}, "
                   f"{human(version.bytes)} (read on demand)")
    click.echo(f"new store at {path.resolve()} with remote {remote}"
               + ("" if versions else " (it shares no projects yet)")
               + f"; use it with --store {path} or CAS_STORE={path}")


def _report_failures(failed: int, errors: list[str], outcome: str) -> None:
    if not failed:
        return
    click.echo(f"{failed} failed ({outcome}; rerun to retry):", err=True)
    for line in errors:
        click.echo(f"  {line}", err=True)
    if failed > len(errors):
        click.echo(f"  ... and {failed - len(errors)} more", err=True)
    sys.exit(1)
