"""The mount commands: mount, umount (the FUSE view lives in fusefs/, imported when used)."""

from __future__ import annotations

import click

from cas.cli.base import Context, cli, complete_target, pass_ctx


@cli.command("mount")
@click.argument("mountpoint")  # checked by check_mountpoint (a stale one cannot even be stat'ed)
@click.option("--foreground", "-f", is_flag=True, help="Serve in this process until unmounted (Ctrl-C unmounts).")
@click.option("--read-only", is_flag=True, help="Refuse every change through the mount.")
@click.option("--project", "-p", default=None, help="Show only this project, at the mount root.",
              shell_complete=complete_target)
@click.option("--allow-non-empty", is_flag=True, help="Mount over a folder that has files (hidden while mounted).")
@pass_ctx
def mount_cmd(c: Context, mountpoint: str, foreground: bool, read_only: bool, project: str | None,
              allow_non_empty: bool) -> None:
    """Mount the store as Supervisely-format directories; copying files in imports them."""
    from fusefs.mount import check_fuse, check_mountpoint, log_path, mount_background, run_foreground

    check_fuse()
    check_mountpoint(mountpoint, allow_non_empty)
    store = c.store
    if project is not None:
        store.ns.project(project)
    root = str(store.root)
    store.close()  # the daemon opens the index itself
    c._store = None
    if foreground:
        run_foreground(root, mountpoint, read_only, project)
        return
    pid = mount_background(root, mountpoint, read_only, project)
    click.echo(f"mounted {root} at {mountpoint} (daemon pid {pid}; log {log_path(str(root))})")


@cli.command("umount")
@click.argument("mountpoint")
def umount_cmd(mountpoint: str) -> None:
    """Unmount; also clears a stale mount left by a killed daemon."""
    from fusefs.mount import umount

    click.echo(f"{umount(mountpoint)}: {mountpoint}")
