"""The `cas` command line; the composition root (imports converters inside commands)."""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.shell_completion import CompletionItem

from cas.errors import AlreadyExists, CasError, InvalidInput, InvalidName, NotFound
from cas.ids import BlobId
from cas.model.media import DEFAULT_MAX_PIXELS
from cas.model.names import check_dataset_path, check_name
from cas.model.namespace import Namespace
from cas.store import Store
from converters import FORMATS, WRITABLE

if TYPE_CHECKING:
    from tqdm import tqdm


def default_store() -> Path:
    if os.environ.get("CAS_STORE"):
        return Path(os.environ["CAS_STORE"])
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "cas"


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


class Context:
    def __init__(self, store_path: Path, quiet: bool) -> None:
        self.store_path = store_path
        self.quiet = quiet
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        """The store; only `cas init` creates one (a mistyped --store is an error, not a new store)."""
        if self._store is None:
            self._store = Store(self.store_path, create=False)
        return self._store

    @property
    def shows_progress(self) -> bool:
        """Bars go to a terminal only (never into logs or CI output), and not with -q."""
        return not self.quiet and sys.stderr.isatty()

    @contextmanager
    def bar(self, total: int | None, unit: str, desc: str, unit_scale: bool = False) -> Iterator[tqdm | _NoBar]:
        """A progress bar on stderr with rate and ETA, or nothing (see shows_progress)."""
        if not self.shows_progress:
            yield _NoBar()
            return
        from tqdm import tqdm  # 20 ms to load: not for commands that draw no bar
        with tqdm(total=total, unit=unit, desc=desc, leave=False, unit_scale=unit_scale,
                  dynamic_ncols=True, file=sys.stderr) as bar:
            yield bar


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


pass_ctx = click.make_pass_decorator(Context)
COMPLETIONS = 500  # at most this many names offered at once


def complete_target(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Shell completion of PROJECT[/DATASET[/ITEM]] from the store the command line names (or
    the default one); nothing when there is no store."""
    try:
        with Store(ctx.find_root().params.get("store_path") or default_store(), create=False) as store:
            return [CompletionItem(name) for name in _names_under(store, incomplete)][:COMPLETIONS]
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
@click.option("--max-pixels", type=click.IntRange(1), envvar="CAS_MAX_PIXELS", default=DEFAULT_MAX_PIXELS,
              show_default=True, help="Largest image or mask (width x height) render, mask imports and mask "
                                      "exports decode.")
@click.version_option(package_name="cas-datasets")
@click.pass_context
def cli(ctx: click.Context, store_path: Path | None, quiet: bool, connect_timeout: float, read_timeout: float,
        retries: int, read_deadline: float, public_links_only: bool, max_pixels: int) -> None:
    """Content-addressed storage for computer-vision datasets."""
    # Through the environment, so that a mount daemon started from here reads the same.
    os.environ.update(CAS_CONNECT_TIMEOUT=str(connect_timeout), CAS_READ_TIMEOUT=str(read_timeout),
                      CAS_RETRIES=str(retries), CAS_READ_DEADLINE=str(read_deadline),
                      CAS_PUBLIC_LINKS_ONLY="1" if public_links_only else "", CAS_MAX_PIXELS=str(max_pixels))
    ctx.obj = Context(store_path or default_store(), quiet)
    ctx.call_on_close(lambda: ctx.obj._store and ctx.obj._store.close())


def parse_size(text: str) -> int:
    """'10G', '512M', '1.5T' or a byte count (binary units)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1] if t and t[-1] in units else ""
    try:
        value = float(t[:-1] if unit else t)
    except ValueError:
        raise InvalidInput("--cache-size", f"not a size: {text!r} (e.g. 10G, 512M)") from None
    return int(value * units[unit])


@cli.command()
@click.option("--s3", "s3_url", default=None,
              help="Keep blobs in S3 at s3://bucket/prefix (also on an existing store).")
@click.option("--endpoint-url", default=None, help="S3 endpoint (MinIO, Ceph, a local test server...).")
@click.option("--region", default=None, help="S3 region (default: boto3's configuration).")
@click.option("--cache-size", default=None, help="Cap of the local cache of remote blobs [default: 10G].")
@pass_ctx
def init(c: Context, s3_url: str | None, endpoint_url: str | None, region: str | None, cache_size: str | None) -> None:
    """Create the store (the one command that does); set its S3 remote and cache size.
    Credentials come from boto3's standard chain (environment, profile, instance role)."""
    from cas.blobs.backends.s3 import S3Backend
    from cas.config import S3Remote

    existed = (c.store_path / "index" / "data.mdb").exists()
    store = c._store = Store(c.store_path, create=True)
    click.echo(f"{'store exists at' if existed else 'initialized store at'} {store.root}")
    if s3_url is None and (endpoint_url or region):
        raise InvalidInput("--endpoint-url/--region", "only with --s3")
    if s3_url is not None:
        remote = S3Remote.parse(s3_url, endpoint_url, region)
        S3Backend(remote, store.net).check()
        store.config.s3 = remote
        click.echo(f"new blobs go to {remote}" + (f" at {endpoint_url}" if endpoint_url else "")
                   + ("; existing local blobs stay local until `cas push`" if existed else ""))
    if cache_size is not None:
        store.config.cache_size = parse_size(cache_size)
        click.echo(f"cache of remote blobs: at most {human(store.config.cache_size)}")
    if s3_url is not None or cache_size is not None:
        store.save_config()


@cli.command("import")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option("--project", "-p", required=True, help="Project to create or add to.")
@click.option("--dataset", "-d", default=None, help="Dataset to import into (nests the source's datasets under it).")
@click.option("--format", "fmt", type=click.Choice(["auto", *FORMATS]), default="auto", show_default=True,
              help="The source's format; auto detects it.")
@click.option("--overwrite", is_flag=True, help="Replace items that exist with different bytes.")
@click.option("--skip-invalid", is_flag=True, help="Skip bad items, report how many and why.")
@click.option("--verify-dedup", is_flag=True, help="Compare bytes on a dedup hit (for untrusted sources); "
                                                  "reads every file, as --no-stat-cache.")
@click.option("--no-stat-cache", is_flag=True, help="Read and hash every file, even one unchanged since an "
                                                    "earlier import (its size, times and inode all the same).")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Reader threads.")
@click.option("--no-head", is_flag=True, help="Links: no HEAD per URL (size learned on first read).")
@click.option("--link", is_flag=True, help="COCO: link each image to its coco_url instead of reading files.")
@click.option("--allow-root", "allow_roots", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A directory outside SRC that file:// links and paths in annotation files may point "
                   "into (repeatable; remembered by the store).")
@click.option("--follow-symlinks", is_flag=True, help="Read symlinks that lead outside SRC (skipped and counted "
                                                       "by default).")
@pass_ctx
def import_cmd(c: Context, src: Path, project: str, dataset: str | None, fmt: str, overwrite: bool,
               skip_invalid: bool, verify_dedup: bool, no_stat_cache: bool, workers: int | None, no_head: bool,
               link: bool, allow_roots: tuple[Path, ...], follow_symlinks: bool) -> None:
    """Import SRC into a project, atomically: all of it or nothing. With --format links, SRC is
    a list of URLs (one per line, or a CSV with url and optional name columns)."""
    from converters.ingest import count_items, detect_format, import_source

    check_name(project, "project name")
    if dataset is not None:
        check_dataset_path(dataset)
    store = c.store
    if fmt == "auto":
        fmt = detect_format(src)
        if not c.quiet:
            click.echo(f"format: {fmt}", err=True)
    new_roots = [str(p.resolve()) for p in allow_roots if str(p.resolve()) not in store.config.allow_roots]
    if new_roots:
        store.config.allow_roots += new_roots
        store.save_config()
    reader_options: dict[str, object] = {}
    if fmt == "links":
        reader_options["head"] = not no_head
    if link:
        if fmt != "coco":
            raise InvalidInput("--link", f"only COCO items carry URLs, not {fmt}")
        reader_options["link"] = True
    total = count_items(src, fmt) if c.shows_progress else None
    with c.bar(total, "item", f"import {project}") as bar:
        report, extra = import_source(store, src, project, fmt, dataset, progress=bar.update,
                                      reader_options=reader_options, follow_symlinks=follow_symlinks,
                                      overwrite=overwrite, skip_invalid=skip_invalid,
                                      verify_dedup=verify_dedup, stat_cache=not no_stat_cache,
                                      workers=workers)
    r = report
    total_items = r.items_added + r.items_skipped + r.items_replaced
    rate = r.bytes_read / r.seconds if r.seconds else 0
    click.echo(f"imported {project}: {total_items} items ({r.items_added} added, {r.items_skipped} unchanged, "
               f"{r.items_replaced} replaced), " + (f"{r.links} links, " if r.links else "") +
               f"{r.blobs_new} new blobs, {human(r.bytes_new)} written of "
               f"{human(r.bytes_read)} read in {r.seconds:.1f} s ({human(rate)}/s)"
               + (f"; {r.files_unread} unchanged files not read (stat cache)" if r.files_unread else ""))
    # What the converter and the annotation builders counted (phrases; bare words are totals).
    for key, value in sorted({**r.notes, **{k: v for k, v in extra.items() if " " in k}}.items()):
        if value:
            click.echo(f"note: {value} {key}")
    if r.items_invalid:
        click.echo(f"skipped {r.items_invalid} invalid items:", err=True)
        for line in r.invalid:
            click.echo(f"  {line}", err=True)
        if r.items_invalid > len(r.invalid):
            click.echo(f"  ... and {r.items_invalid - len(r.invalid)} more", err=True)


@cli.command("export")
@click.argument("project", shell_complete=complete_target)
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(WRITABLE), default="sly", show_default=True,
              help="The format to write.")
@click.option("--task", type=click.Choice(["detect", "segment"]), default="detect", show_default=True,
              help="YOLO: boxes, or polygons.")
@click.option("--other-split", type=click.Choice(["train", "val", "test", "none"]), default="train",
              show_default=True, help="YOLO: the split of datasets not named train, val or test (none: left out).")
@pass_ctx
def export_cmd(c: Context, project: str, dest: Path, fmt: str, task: str, other_split: str) -> None:
    """Write PROJECT to DEST in a dataset format. A geometry the format cannot hold is
    converted (e.g. polygon -> box) and counted in the summary, never dropped silently."""
    ns = c.store.ns
    ns.project(project)
    total = _item_count(ns, project) if c.shows_progress else None
    with c.bar(total, "item", f"export {project}") as bar:
        counts = FORMATS[fmt].write(c.store, project, dest, progress=bar.update,
                                    **({"task": task, "other_split": other_split} if fmt == "yolo" else {}))
    click.echo(f"exported {project} to {dest}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


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


@cli.command("ls")
@click.argument("target", required=False, shell_complete=complete_target)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (keys: see the README).")
@pass_ctx
def ls_cmd(c: Context, target: str | None, as_json: bool) -> None:
    """List projects, a project's datasets, or a dataset's items."""
    ns = c.store.ns
    if not target:
        projects: list[dict[str, Any]] = []
        for name in ns.projects():
            datasets = ns.datasets(name)
            projects.append({"project": name, "type": ns.project(name).project_type, "datasets": len(datasets),
                             "items": sum(ns.count_items(name, d) for d in datasets)})
        if as_json:
            click.echo(json.dumps(projects, indent=2))
        for p in projects if not as_json else ():
            click.echo(f"{p['project']}\t{p['type']}\t{p['datasets']} datasets\t{p['items']} items")
        return
    project, dataset, item = resolve(c.store, target)
    if dataset is None:
        paths = ns.datasets(project)
        if as_json:
            click.echo(json.dumps(_dataset_rows(ns, project, paths), indent=2))
        for path in paths if not as_json else ():
            click.echo(f"{'  ' * path.count('/')}{path.rsplit('/', 1)[-1]}/\t{ns.count_items(project, path)} items")
        return
    rows = [(item, ns.item(project, dataset, item))] if item else ns.items(project, dataset)
    children = [] if item else _dataset_rows(ns, project, [f"{dataset}/{c}" for c in ns.children(project, dataset)])
    if as_json:  # streamed: a dataset may hold a million items
        echo_lines(itertools.chain(['{"items": ['], _joined(
            json.dumps({"name": name, "width": rec.width, "height": rec.height, "size": rec.size, "mime": rec.mime,
                        "media": rec.media.hex(), "annotation": rec.ann.hex()}) for name, rec in rows),
            [f'], "datasets": {json.dumps(children)}}}']))
        return
    echo_lines(f"{name}\t{rec.width}x{rec.height}\t{rec.size}\t{rec.mime}\t{rec.media}" for name, rec in rows)
    for child in children:
        click.echo(f"{child['dataset'].rsplit('/', 1)[-1]}/\t{child['items']} items")


def _dataset_rows(ns: Namespace, project: str, paths: list[str]) -> list[dict[str, Any]]:
    return [{"dataset": path, "items": ns.count_items(project, path)} for path in paths]


def _item_count(ns: Namespace, project: str) -> int:
    return sum(ns.count_items(project, d) for d in ns.datasets(project))


def _blob_count(store: Store) -> int:
    with store.index.read() as txn:
        return store.index.count(txn, "blobs")


def _history(store: Store, project: str) -> list:
    from cas.versions.snapshots import history
    return list(history(store, project))


def _joined(parts: Iterable[str]) -> Iterator[str]:
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


@cli.command("stats")
@click.argument("project", required=False, shell_complete=complete_target)
@click.option("--classes", is_flag=True, help="PROJECT's objects per class and geometry, tags on items and "
                                              "objects, items per dataset (reads every distinct annotation).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def stats_cmd(c: Context, project: str | None, classes: bool, as_json: bool) -> None:
    """Counts, logical and stored bytes, dedup ratio; with PROJECT --classes, what its
    annotations hold."""
    if classes or project is not None:
        _class_stats(c, project, classes, as_json)
        return
    from cas.maintenance.stats import compute

    s = compute(c.store)
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    click.echo(f"store         {s['store']}")
    click.echo(f"projects      {s['projects']}")
    click.echo(f"datasets      {s['datasets']}")
    click.echo(f"items         {s['items']}")
    click.echo(f"blobs         {s['blobs']}")
    click.echo(f"logical bytes {human(s['logical_bytes'])} ({s['logical_bytes']})")
    click.echo(f"stored bytes  {human(s['stored_bytes'])} ({s['stored_bytes']})")
    click.echo(f"dedup ratio   {s['dedup_ratio']:.2f}x")
    for where, n in s["locations"].items():
        if n["blobs"]:
            unknown = f", {n['unknown_size']} of unknown size" if n.get("unknown_size") else ""
            click.echo(f"{where + ' blobs':<13} {n['blobs']}, {human(n['bytes'])}{unknown}")
    cache = s["cache"]
    if cache["hits"] or cache["misses"]:
        click.echo(f"cache         {human(cache['used_bytes'])} of {human(cache['max_bytes'])}; "
                   f"hit rate {cache['hit_rate']:.1%} ({cache['hits']} hits, {cache['misses']} misses, "
                   f"{human(cache['bytes_fetched'])} fetched)")
    if s["unreferenced_blobs"]:
        click.echo(f"unreferenced  {s['unreferenced_blobs']} blobs, {human(s['unreferenced_bytes'])} "
                   "(freed by `cas gc`)")
    if s["version_only_blobs"]:
        click.echo(f"versions only {s['version_only_blobs']} blobs, {human(s['version_only_bytes'])} "
                   "(no item uses them; kept for `cas restore`)")


def _class_stats(c: Context, project: str | None, classes: bool, as_json: bool) -> None:
    from cas.maintenance.classes import class_stats

    if not (classes and project):
        raise click.UsageError("--classes takes a PROJECT (and PROJECT goes with --classes)")
    s = class_stats(c.store, project).as_dict()
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    click.echo(f"project  {s['project']} ({s['project_type']}): {s['items']} items in {len(s['datasets'])} "
               f"datasets, {s['annotations']} distinct annotations, {s['objects']} {s['counted']}")
    tables = ((["CLASS", "GEOMETRY", s["counted"].upper()], [[r["class"], r["geometry"], r["count"]]
                                                             for r in s["classes"]], 2),
              (["TAG", "ON ITEMS", "ON OBJECTS"], [[r["name"], r["items"], r["objects"]] for r in s["tags"]], 1),
              (["DATASET", "ITEMS"], [[r["name"], r["items"]] for r in s["datasets"]], 1))
    for header, rows, left in tables:
        if rows:
            click.echo("")
            _table(header, rows, left)


def _table(header: list[str], rows: list[list[object]], left: int = 1) -> None:
    """Columns padded to their widest cell: the first `left` aligned left, the rest right."""
    cells = [header] + [[str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        click.echo("  ".join(v.ljust(w) if i < left else v.rjust(w)
                             for i, (v, w) in enumerate(zip(row, widths))).rstrip())


DU_HELP = """Bytes used by each project, by each dataset of PROJECT, or by each dataset nested in
PROJECT/DATASET; a dataset's row includes its nested datasets, the last row is the target.

\b
LOGICAL  sizes of the blobs each item references (media, annotation, item
         meta), summed once per item
UNIQUE   the distinct blobs those items reference, each once
SHARED   the distinct blobs that items of another project also reference
         (in the store's total: blobs referenced by more than one project)
STORED   the distinct blobs whose bytes are here: local files and packs
S3       the distinct blobs in the S3 remote (not stored here)
LINKS    the distinct link media of known size (at their URLs, not here)
UNKNOWN  link items whose size no HEAD or read has told: in ITEMS, their
         media in no byte column
S3, LINKS and UNKNOWN are shown when the total has some.

Only items' references count: blobs that only a version or a `cas put`
holds are in no row (see `cas stats`)."""


@cli.command("du", help=DU_HELP)
@click.argument("target", required=False, metavar="[PROJECT[/DATASET]]", shell_complete=complete_target)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (keys in the README).")
@pass_ctx
def du_cmd(c: Context, target: str | None, as_json: bool) -> None:
    from cas.maintenance.usage import dataset_usage, store_usage

    if target:
        project, dataset, item = resolve(c.store, target)
        if item is not None:
            raise InvalidInput(target, "du takes a project or dataset, not an item")
        usage = dataset_usage(c.store, project, dataset)
    else:
        usage = store_usage(c.store)
    if as_json:
        click.echo(json.dumps(usage.as_dict(), indent=2))
        return
    rows = [*usage.rows, usage.total]
    columns = [("LOGICAL", "logical_bytes"), ("UNIQUE", "unique_bytes"), ("SHARED", "shared_bytes"),
               ("STORED", "stored_bytes")]
    columns += [(h, k) for h, k in (("S3", "s3_bytes"), ("LINKS", "link_bytes")) if getattr(usage.total, k)]
    unknown = usage.total.unknown_size_items > 0
    _table(["NAME", "ITEMS", *(h for h, _k in columns)] + (["UNKNOWN"] if unknown else []),
           [[r.name, r.items, *(human(getattr(r, k)) for _h, k in columns)]
            + ([r.unknown_size_items] if unknown else []) for r in rows])
    if unknown:
        n = usage.total.unknown_size_items
        click.echo(f"UNKNOWN: {n} link item{'s' * (n != 1)} of unknown size (imported without a HEAD, never read): "
                   "their media is in no byte column")


@cli.command("put")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def put_cmd(c: Context, files: tuple[Path, ...]) -> None:
    """Store files as blobs; prints one id per file (each holds a reference until released)."""
    for path in files:
        click.echo(f"{c.store.put(path)}  {path}")


@cli.command("release")
@click.argument("blob_ids", nargs=-1, required=True)
@pass_ctx
def release_cmd(c: Context, blob_ids: tuple[str, ...]) -> None:
    """Drop the reference a `cas put` took; `cas gc` then frees blobs nothing else uses."""
    for text in blob_ids:
        c.store.release(BlobId.from_hex(text))
        click.echo(f"released {text}")


@cli.command("get")
@click.argument("target", shell_complete=complete_target)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here instead of stdout.")
@pass_ctx
def get_cmd(c: Context, target: str, output: Path | None) -> None:
    """Write a blob's bytes (verified against its id), or an item's image, to stdout or a file.
    TARGET is a blob id or PROJECT/DATASET/ITEM (a link item is fetched from its URL)."""
    if "/" in target:
        project, dataset, item = resolve(c.store, target)
        if item is None:
            raise InvalidInput(target, "not an item (PROJECT/DATASET/ITEM)")
        bid = c.store.ns.item(project, dataset or "", item).media
    else:
        bid = BlobId.from_hex(target)
    if output is not None and not output.resolve().parent.is_dir():
        raise NotFound(f"no such directory: {output.parent}")
    if output is None:
        c.store.copy_to(bid, sys.stdout.buffer)
    else:
        c.store.copy_to(bid, output)


@cli.command("render")
@click.argument("target", shell_complete=complete_target)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Image to write; its extension picks the format (.png, .jpg, .webp...). "
                   "Default: <item>.render.png, or <dataset>.sheet.png with --grid.")
@click.option("--grid", type=click.IntRange(1, 400), default=None,
              help="TARGET is a dataset: a contact sheet of its first N items.")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@pass_ctx
def render_cmd(c: Context, target: str, output: Path | None, grid: int | None, force: bool) -> None:
    """Draw an item's annotation over its image (or a contact sheet of a dataset)."""
    from PIL import Image

    from converters.render import contact_sheet, render_item

    if output is not None:
        image_format = Image.registered_extensions().get(output.suffix.lower())
        if image_format is None or image_format not in Image.SAVE:
            raise InvalidInput(str(output), f"cannot tell an image format from {output.suffix or 'no extension'!r} "
                                            "(use .png, .jpg, .webp, ...)")
    project, dataset, item = resolve(c.store, target)
    if dataset is None or (grid is None and item is None):
        raise InvalidInput(target, "render takes PROJECT/DATASET/ITEM, or PROJECT/DATASET with --grid N")
    if grid is not None:
        if item is not None:
            raise InvalidInput(target, "--grid takes a dataset, not an item")
        output = output or Path(f"{dataset.replace('/', '_')}.sheet.png")
    else:
        output = output or Path(f"{item}.render.png")
    if output.exists() and not force:
        raise AlreadyExists(f"{output} exists; pass --force to replace it")
    if not output.resolve().parent.is_dir():
        raise NotFound(f"no such directory: {output.parent}")
    if grid is not None:
        image, drawn = contact_sheet(c.store, project, dataset, grid)
        what = f"{drawn} items of {project}/{dataset}"
    else:
        assert item is not None
        image = render_item(c.store, project, dataset, item)
        what = f"{project}/{dataset}/{item}"
    image_format = Image.registered_extensions()[output.suffix.lower()]
    if image.mode not in ("RGB", "L") and image_format in ("JPEG", "BMP", "PPM"):
        image = image.convert("RGB")  # no alpha in these formats
    image.save(output, format=image_format)
    click.echo(f"rendered {what} to {output}")


@cli.command("snapshot")
@click.argument("project", shell_complete=complete_target)
@click.option("-m", "--message", default="", help="What this version is.")
@pass_ctx
def snapshot_cmd(c: Context, project: str, message: str) -> None:
    """Freeze PROJECT into an immutable version (costs only what changed since the last)."""
    from cas.versions.snapshots import snapshot

    ns = c.store.ns
    total = _item_count(ns, project) if c.shows_progress else None
    with c.bar(total, "item", f"snapshot {project}") as bar:
        version, new = snapshot(c.store, project, message, progress=bar.update)
    if new:
        click.echo(f"version {version.id.hex()} of {project}: {version.items} items, {human(version.bytes)}")
    else:
        click.echo(f"nothing changed since version {version.id.hex()} of {project}")


@cli.command("log")
@click.argument("project", shell_complete=complete_target)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (keys: see the README).")
@pass_ctx
def log_cmd(c: Context, project: str, as_json: bool) -> None:
    """Versions of PROJECT, newest first: id, time, items, bytes, message."""
    from datetime import datetime

    from cas.versions.snapshots import history

    c.store.ns.project(project)
    versions = list(history(c.store, project))
    if as_json:
        click.echo(json.dumps([{"id": v.id.hex(), "time": datetime.fromtimestamp(v.time / 1e9, UTC).isoformat(),
                                "items": v.items, "bytes": v.bytes, "message": v.message,
                                "parent": v.parent.hex() if v.parent else None,
                                "merged": v.merged.hex() if v.merged else None} for v in versions], indent=2))
        return
    for v in versions:
        when = datetime.fromtimestamp(v.time / 1e9).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{v.id.hex()}  {when}  {v.items} items  {human(v.bytes)}  {v.message}")


@cli.command("diff")
@click.argument("project", shell_complete=complete_target)
@click.argument("old")
@click.argument("new", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (keys: see the README).")
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
    click.echo(f"restored {project} to {target.id.hex()} ({target.items} items) as version {new.id.hex()}")


@cli.command("pull")
@click.argument("target", shell_complete=complete_target)
@click.option("--links", "links_only", is_flag=True, help="Only fetch link items' bytes (never the remote).")
@pass_ctx
def pull_cmd(c: Context, target: str, links_only: bool) -> None:
    """PROJECT shared through the S3 remote: bring the remote's versions in (fast-forward,
    or an item-level merge with local changes). Otherwise, or with --links: fetch the link
    items of PROJECT[/DATASET] into the store (resumable; identical content stored once)."""
    from cas.versions.sharing import pull, remote_head
    from cas.versions.transfer import count_links, pull_links

    project, _, rest = target.strip("/").partition("/")
    if not links_only and not rest and c.store.s3 is not None and remote_head(c.store, project)[0] is not None:
        how, version = pull(c.store, project)
        click.echo(f"{project}: {how}, now at {version.id.hex()} ({version.items} items)")
        return
    project, dataset, item = resolve(c.store, target)
    if item is not None:
        raise InvalidInput(target, "pull takes a project or dataset")
    total = count_links(c.store, project, dataset) if c.shows_progress else None
    with c.bar(total, "item", f"pull {target}") as bar:
        r = pull_links(c.store, project, dataset, progress=bar.update)
    changed = f", {r.skipped} changed meanwhile" if r.skipped else ""
    click.echo(f"pulled {r.done} link items ({human(r.bytes)}){changed}")
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
        click.echo(f"pushed {project} at {version.id.hex()} ({version.items} items; {r.done} blobs uploaded) "
                   f"to {c.store.config.s3}")
        return
    total = count_local(c.store)[1] if c.shows_progress else None
    with c.bar(total, "B", "push", unit_scale=True) as bar:
        r = push_blobs(c.store, progress=bar.update)
    click.echo(f"pushed {r.done} blobs ({human(r.bytes)}) to {c.store.config.s3}")
    _report_failures(r.failed, r.errors, "blobs stay local")


@cli.command("clone")
@click.argument("url")
@click.argument("project")
@click.option("--endpoint-url", default=None, help="S3 endpoint.")
@click.option("--region", default=None, help="S3 region.")
@pass_ctx
def clone_cmd(c: Context, url: str, project: str, endpoint_url: str | None, region: str | None) -> None:
    """Make PROJECT of the shared store at URL (s3://bucket/prefix) available here: its
    trees are fetched and the index built; media bytes are read on demand."""
    from cas.blobs.backends.s3 import S3Backend
    from cas.config import S3Remote
    from cas.versions.sharing import clone

    store = c.store
    remote = S3Remote.parse(url, endpoint_url, region)
    if store.config.s3 is None:
        S3Backend(remote, store.net).check()
        store.config.s3 = remote
        store.save_config()
    elif (store.config.s3.bucket, store.config.s3.prefix) != (remote.bucket, remote.prefix):
        raise InvalidInput(url, f"this store's remote is {store.config.s3}")
    with c.bar(None, "item", f"clone {project}") as bar:
        version = clone(store, project, progress=bar.update)
    click.echo(f"cloned {project} at {version.id.hex()}: {version.items} items, {human(version.bytes)} "
               "(read on demand)")


def _report_failures(failed: int, errors: list[str], outcome: str) -> None:
    if not failed:
        return
    click.echo(f"{failed} failed ({outcome}; rerun to retry):", err=True)
    for line in errors:
        click.echo(f"  {line}", err=True)
    if failed > len(errors):
        click.echo(f"  ... and {failed - len(errors)} more", err=True)
    sys.exit(1)


@cli.command("rm")
@click.argument("target", shell_complete=complete_target)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
@pass_ctx
def rm_cmd(c: Context, target: str, dry_run: bool) -> None:
    """Remove a project (with its versions), dataset (with nested datasets) or item; `cas gc`
    frees the bytes."""
    project, dataset, item = resolve(c.store, target)
    ns = c.store.ns
    if dry_run:
        datasets = [] if item else [d for d in ns.datasets(project) if dataset is None or d == dataset
                                    or d.startswith(dataset + "/")]
        n = 1 if item else sum(ns.count_items(project, d) for d in datasets)
        versions = "" if dataset is not None else f" and its versions ({len(_history(c.store, project))})"
        click.echo(f"would remove {target} ({n} items){versions}; nothing changed (dry run)")
        return
    if item is not None:
        ns.remove_item(project, dataset or "", item)
        n = 1
    elif dataset is not None:
        n = ns.remove_dataset(project, dataset)
    else:
        from cas.versions.snapshots import remove_project
        n = remove_project(c.store, project)  # its versions go with it
    click.echo(f"removed {target} ({n} items); run `cas gc` to free unreferenced bytes")


@cli.command("gc")
@click.option("--dry-run", is_flag=True, help="Say what gc would remove and free; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (keys: see the README).")
@pass_ctx
def gc_cmd(c: Context, dry_run: bool, as_json: bool) -> None:
    """Delete blobs no item, version or put references, orphan files and stale temp files."""
    from dataclasses import asdict

    from cas.maintenance.gc import collect

    with c.bar(None, "blob", "gc") as bar:
        r = collect(c.store, dry_run=dry_run, progress=bar.update)
    if as_json:
        click.echo(json.dumps(asdict(r), indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {r.blobs_removed} blobs and {r.orphans_removed} orphan files, "
               f"{'would free' if dry_run else 'freed'} {human(r.bytes_freed)}; {r.temp_removed} temp files"
               + (f"; {r.packs_compacted} packs compacted" if r.packs_compacted else "")
               + (f"; {r.young_kept} S3 objects under an hour old kept for a later gc" if r.young_kept else "")
               + ("; nothing changed (dry run)" if dry_run else ""))


@cli.command("fsck")
@click.option("--repair", is_flag=True, help="Remove orphans, lost records and the items whose image is lost; "
                                            "reset lost annotations to empty.")
@click.option("--dry-run", is_flag=True, help="With --repair: say what it would do, change nothing.")
@click.option("--quick", is_flag=True, help="Check sizes only, do not re-hash blob contents.")
@click.option("--rebuild-index", is_flag=True,
              help="Build a new index from the blobs, trees and refs alone (the old one is moved aside), then check.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (keys: see the README).")
@pass_ctx
def fsck_cmd(c: Context, repair: bool, dry_run: bool, quick: bool, rebuild_index: bool, as_json: bool) -> None:
    """Check every blob against its bytes and every item against its blobs."""
    if dry_run and (not repair or rebuild_index):
        raise click.UsageError("--dry-run goes with --repair (and not with --rebuild-index)")
    if rebuild_index:
        from cas.maintenance.rebuild import rebuild_index as rebuild
        if not (c.store_path / "blobs").is_dir():
            raise NotFound(f"no cas store at {c.store_path}")
        b = rebuild(c.store_path)
        click.echo(err=as_json, message=f"rebuilt the index: {b.blobs} blobs, {b.projects} projects, {b.items} items"
                   + (f"; {b.pinned} blobs no version holds are pinned (cas release frees one)" if b.pinned else "")
                   + (f"; the old index is in {b.moved_aside}" if b.moved_aside else ""))
    from cas.maintenance.fsck import check

    with c.bar(_blob_count(c.store) if c.shows_progress else None, "blob", "fsck") as bar:
        r = check(c.store, repair=repair and not dry_run, verify=not quick, progress=bar.update)
    if as_json:
        click.echo(json.dumps({
            "blobs_checked": r.blobs_checked, "items_checked": r.items_checked, "bytes_verified": r.bytes_verified,
            "clean": r.clean, "dry_run": dry_run,
            "problems": [{"kind": p.kind, "subject": p.subject, "detail": p.detail, "action": p.action or None,
                          "repaired": p.repaired} for p in r.problems]}, indent=2))
    for problem in r.problems if not as_json else ():
        click.echo(f"{problem} [would {problem.action}]" if dry_run and problem.action else str(problem))
    click.echo(err=as_json, message=f"checked {r.blobs_checked} blobs ({human(r.bytes_verified)} hashed), "
               f"{r.items_checked} items: "
               + ("clean" if r.clean else f"{len(r.problems)} problems"
                  + (", nothing changed (dry run)" if dry_run else ", repaired" if repair else "")))
    if not r.clean and (not repair or dry_run):
        sys.exit(1)


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
