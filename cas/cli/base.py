"""The `cas` group, its context and what every command shares (store, output, names)."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click
from click.shell_completion import CompletionItem

from cas.blobs.catalog import count_blobs
from cas.cli.completion import FOLDER
from cas.config import DEFAULT_MAX_PIXELS, export_flags, settings
from cas.errors import CasError, InvalidName, NotFound
from cas.model.names import check_name
from cas.model.namespace import Namespace
from cas.store import Store
from cas.units import human, parse_size  # noqa: F401 - human: the commands' import of it

if TYPE_CHECKING:
    from tqdm import tqdm


def default_store() -> Path:
    return settings().store


class Context:
    def __init__(self, store_path: Path, quiet: bool) -> None:
        self.store_path = store_path
        self.quiet = quiet
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        """The store; only `cas init` creates one (a mistyped --store is an error, not a new store)."""
        if self._store is None:
            self._store = Store(self.store_path)
        return self._store

    @property
    def shows_progress(self) -> bool:
        """Bars go to a terminal only (never into logs or CI output), and not with -q."""
        return not self.quiet and sys.stderr.isatty()

    @contextmanager
    def bar(self, total: Callable[[], int | None] | None, unit: str, desc: str,
            unit_scale: bool = False) -> Iterator[tqdm | _NoBar]:
        """A progress bar on stderr with rate and ETA, or nothing (see shows_progress). `total`
        counts what is to do; it runs only when a bar is drawn (a count may be a whole pass)."""
        if not self.shows_progress:
            yield _NoBar()
            return
        from tqdm import tqdm  # 20 ms to load: not for commands that draw no bar
        with tqdm(total=total() if total else None, unit=unit, desc=desc, leave=False, unit_scale=unit_scale,
                  dynamic_ncols=True, file=sys.stderr) as bar:
            yield bar


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


pass_ctx = click.make_pass_decorator(Context)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output (keys: see the README).")


COMPLETIONS = 500  # at most this many names offered at once


def complete_target(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Shell completion of PROJECT[/DATASET[/ITEM]] from the store the command line names (or
    the default one); nothing when there is no store. A project or dataset (ending in /) is a
    FOLDER: the shell adds no space after it."""
    try:
        with Store(ctx.find_root().params.get("store_path") or default_store()) as store:
            return [CompletionItem(name, type=FOLDER if name.endswith("/") else "plain")
                    for name in _names_under(store, incomplete)][:COMPLETIONS]
    except (CasError, InvalidName, OSError):
        return []


def _names_under(store: Store, incomplete: str) -> list[str]:
    ns = store.ns
    project, slash, rest = incomplete.partition("/")
    if not slash:
        return [f"{p}/" for p in ns.projects() if p.startswith(project)]
    if not ns.has_project(project):
        return []
    parent, _, start = rest.rpartition("/")
    under = f"{parent}/" if parent else ""
    names = [f"{project}/{d}/" for d in ns.datasets(project) if d.startswith(rest) and d.count("/") == rest.count("/")]
    if parent and ns.has_dataset(project, parent):
        names += [f"{project}/{under}{n}" for n in ns.item_names(project, parent, start, COMPLETIONS)]
    return names


class CasGroup(click.Group):
    """A group whose own options may also follow the subcommand (`cas ls --store X`, as
    git, restic and rclone accept): they are moved before it, then parsed as usual."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self.hoist_global_options(ctx, args))

    def hoist_global_options(self, ctx: click.Context, args: list[str]) -> list[str]:
        mine = {name: opt for opt in self.params if isinstance(opt, click.Option) for name in opt.opts}
        position = _first_positional(args, mine)
        if position is None:
            return args
        command = self.get_command(ctx, args[position])
        if command is None or isinstance(command, click.Group):
            return args
        takes_value = {name for opt in command.params if isinstance(opt, click.Option) and not opt.is_flag
                       and not opt.count for name in opt.opts}
        hoisted: list[str] = []
        rest: list[str] = []
        tail = iter(args[position + 1:])
        for arg in tail:
            if arg == "--":
                rest += [arg, *tail]
                break
            name = arg.split("=", 1)[0]
            if name in mine and name not in takes_value:
                hoisted.append(arg)
                if "=" not in arg and not mine[name].is_flag:
                    hoisted.append(next(tail, ""))
            else:
                rest.append(arg)
                if name in takes_value and "=" not in arg:
                    rest.append(next(tail, ""))
        return [*args[:position], *hoisted, args[position], *rest]


def _first_positional(args: list[str], options: dict[str, click.Option]) -> int | None:
    """Index of the subcommand's name in `args`, skipping the group's options and their values."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return i + 1 if i + 1 < len(args) else None
        if not arg.startswith("-") or arg == "-":
            return i
        option = options.get(arg)
        i += 2 if option is not None and not option.is_flag and "=" not in arg else 1
    return None


@click.group(cls=CasGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", "store_path", type=click.Path(path_type=Path), default=None,
              help="Store directory (default: $CAS_STORE, else $XDG_DATA_HOME/cas).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.option("--connect-timeout", type=click.FloatRange(0.1), envvar="CAS_CONNECT_TIMEOUT", default=5.0,
              show_default=True, help="Seconds to connect to S3 or a link's server.")
@click.option("--read-timeout", type=click.FloatRange(0.1), envvar="CAS_READ_TIMEOUT", default=30.0,
              show_default=True, help="Seconds a remote read may stall.")
@click.option("--retries", type=click.IntRange(0, 20), envvar="CAS_RETRIES", default=3, show_default=True,
              help="Retries (with backoff) of a failed remote request.")
@click.option("--read-deadline", type=click.FloatRange(1.0), envvar="CAS_READ_DEADLINE", default=60.0,
              show_default=True, help="Seconds a remote read may take in all, retries included.")
@click.option("--public-links-only", is_flag=True, envvar="CAS_PUBLIC_LINKS_ONLY",
              help="Links may not reach private or loopback addresses (link-local and metadata never can).")
@click.option("--max-pixels", type=click.IntRange(1), envvar="CAS_MAX_PIXELS",
              default=DEFAULT_MAX_PIXELS,
              show_default=True, help="Largest image or mask (width x height) render, mask imports and mask "
                                      "exports decode.")
@click.version_option(package_name="cas-datasets")
@click.pass_context
def cli(ctx: click.Context, store_path: Path | None, quiet: bool, connect_timeout: float, read_timeout: float,
        retries: int, read_deadline: float, public_links_only: bool, max_pixels: int) -> None:
    """Content-addressed storage for computer-vision datasets."""
    # Through the environment, so that a mount daemon started from here reads the same.
    export_flags(connect_timeout, read_timeout, retries, read_deadline, public_links_only, max_pixels)
    ctx.obj = Context(store_path or default_store(), quiet)
    ctx.call_on_close(lambda: ctx.obj._store and ctx.obj._store.close())


class SizeParam(click.ParamType):
    """A size option (`--cache-size 2G`), read by units.parse_size; a bad one is a one-line error
    naming the option, raised before the command changes anything."""

    name = "size"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        return parse_size(str(value), param.opts[0] if param else "size")


def resolve(store: Store, target: str) -> tuple[str, str | None, str | None]:
    """'P', 'P/D...' or 'P/D.../ITEM' -> (project, dataset, item), checked against the index."""
    project, _, rest = target.strip("/").partition("/")
    check_name(project, "project name")
    store.ns.project(project)
    if not rest:
        return project, None, None
    if store.ns.has_dataset(project, rest):
        return project, rest, None
    dataset, _, item = rest.rpartition("/")
    if dataset and store.ns.has_dataset(project, dataset):
        store.ns.item(project, dataset, item)
        return project, dataset, item
    raise NotFound(f"no dataset or item {target}")


def item_count(ns: Namespace, project: str) -> int:
    return sum(ns.count_items(project, d) for d in ns.datasets(project))


def blob_count(store: Store) -> int:
    with store.index.read() as txn:
        return count_blobs(store.index, txn)


def history_of(store: Store, project: str) -> list:
    from cas.versions.snapshots import history
    return list(history(store, project))


def joined_lines(parts: Iterable[str]) -> Iterator[str]:
    """The parts of a JSON array, one per line, commas between."""
    previous = None
    for part in parts:
        if previous is not None:
            yield previous + ","
        previous = part
    if previous is not None:
        yield previous


def echo_lines(lines: Iterable[str], per_write: int = 4096) -> None:
    """Print many lines in few writes (one write per line costs more than the listing into a pipe)."""
    for block in iter(lambda: list(itertools.islice(lines, per_write)), []):
        click.echo("\n".join(block))


def main() -> None:
    """Entry point: CasErrors become one line on stderr and exit status 1."""
    try:
        cli.main(prog_name="cas", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):  # click turns Ctrl-C into Abort
        click.echo("\ninterrupted: nothing of an unfinished command is visible; `cas gc` reclaims its blobs",
                   err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except (CasError, InvalidName) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(0)
    except OSError as e:  # a file of the user's (unreadable source, unwritable destination)
        where = f"{e.filename}: " if e.filename else ""
        click.echo(f"error: {where}{e.strerror or e}", err=True)
        sys.exit(1)
    sys.exit(0)
