"""The mount commands: mount, mount-status, umount (the FUSE view lives in fusefs/, imported when used)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from cas.cli.base import Context, cli, complete_target, pass_ctx
from cas.errors import CasError, reason
from cas.ingest.drops import SETTLE


@cli.command("mount")
@click.argument("mountpoint")  # checked by check_mountpoint (a stale one cannot even be stat'ed)
@click.option("--foreground", "-f", is_flag=True, help="Serve in this process until unmounted (Ctrl-C unmounts).")
@click.option("--read-only", is_flag=True, help="Refuse every change through the mount.")
@click.option("--project", "-p", default=None, help="Show only this project, at the mount root.",
              shell_complete=complete_target)
@click.option("--allow-non-empty", is_flag=True, help="Mount over a folder that has files (hidden while mounted).")
@click.option("--settle", type=click.FloatRange(0, 3600), default=SETTLE, show_default=True,
              help="Seconds a folder copied in (COCO, YOLO, photos, ...) must go unwritten before it is imported.")
@pass_ctx
def mount_cmd(c: Context, mountpoint: str, foreground: bool, read_only: bool, project: str | None,
              allow_non_empty: bool, settle: float) -> None:
    """Mount the store as Supervisely-format directories; copying files in imports them."""
    from cas.cli.daemon import import_drop
    from fusefs.mount import check_fuse, check_mountpoint, log_path, mount_background, run_foreground

    check_fuse()
    check_mountpoint(mountpoint, allow_non_empty)
    store = c.store
    if project is not None:
        store.ns.project(project)
    root = str(store.root)
    store.close()  # the daemon opens the index itself
    c._store = None
    log = log_path(root)
    see = f"refused writes and drops: `cas mount-status {mountpoint}` (or {mountpoint.rstrip('/')}/.cas/status)"
    if foreground:
        def serving() -> None:
            click.echo(f"serving {root} at {mountpoint}; Ctrl-C or `cas umount {mountpoint}` stops (log {log})",
                       err=True)
            if not read_only and not c.quiet:
                click.echo(see, err=True)
        run_foreground(root, mountpoint, read_only, project, importer=import_drop, settle=settle, on_ready=serving)
        return
    pid = mount_background(root, mountpoint, read_only, project, settle=settle)
    click.echo(f"mounted {root} at {mountpoint} (daemon pid {pid}; log {log})")
    if not read_only and not c.quiet:
        click.echo(see)


@cli.command("mount-status")
@click.argument("mountpoint")
@click.option("--wait", is_flag=True, help="Import every folder still waiting now, and return once it is done.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def mount_status_cmd(mountpoint: str, wait: bool, as_json: bool) -> None:
    """What a mount did with what was written into it: folders waiting, importing, imported or
    failed, and the writes it refused. Exits 1 when something was refused since the last call."""
    from cas.ingest.outcomes import render
    from fusefs.mount import daemon_store, flush

    store = daemon_store(mountpoint)
    if wait:
        try:
            flush(mountpoint)  # a barrier: waiting drops are imported now
        except OSError:
            pass  # a drop failed: the status says which and why
    try:
        status = json.loads(Path(mountpoint, ".cas", "status.json").read_bytes())
    except (OSError, ValueError) as e:
        raise CasError(f"{mountpoint}: cannot read the mount's status ({reason(e)})") from None
    click.echo(json.dumps(status, indent=2) if as_json else render(status).rstrip("\n"))
    seen_file = Path(store, "logs", "mount-status.seen")
    try:
        seen = json.loads(seen_file.read_text())
    except (OSError, ValueError):
        seen = {}
    key = f"{os.path.realpath(mountpoint)}@{status['mount']}"
    new = status["refusals"] - seen.get(key, 0)
    try:
        seen_file.write_text(json.dumps({key: status["refusals"]}))
    except OSError:
        pass  # a store on a read-only file system: every call reports what was ever refused
    if new > 0:
        click.echo(f"{new} refused since the last `cas mount-status`", err=True)
        sys.exit(1)


@cli.command("umount")
@click.argument("mountpoint")
def umount_cmd(mountpoint: str) -> None:
    """Unmount; also clears a stale mount left by a killed daemon."""
    from fusefs.mount import umount

    click.echo(f"{umount(mountpoint)}: {mountpoint}")
