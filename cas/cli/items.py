"""Commands on projects, datasets and items: import, export, ls, put, release, get, render, rm."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cas.cli.base import (
    Context,
    cli,
    complete_target,
    echo_lines,
    history_of,
    item_count,
    joined_lines,
    json_option,
    pass_ctx,
    resolve,
)
from cas.errors import CasError, InvalidInput, NotFound
from cas.ids import BlobId
from cas.model.names import check_dataset_path, check_name
from cas.model.namespace import Namespace
from cas.outputs import new_file, refuse_existing
from cas.records import UNKNOWN_SIZE
from cas.units import counted, counted_phrase, human, media_facts
from converters import FORMATS, WRITABLE

if TYPE_CHECKING:
    from cas.ingest.session import ImportReport
    from cas.store import Store


@cli.command("formats")
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
def formats_cmd(path: Path | None) -> None:
    """The formats import and export speak: what each reads and writes, and the layouts it
    takes. With PATH, how surely each one fits it, and why."""
    from converters.contract import SHAPES
    from converters.ingest import detections
    if path is not None:
        for name, found in detections(path).items():
            click.echo(f"{name:<11} {found.score:4.2f}  {found.reason}")
        return
    for name, module in FORMATS.items():
        reads = [s for s in SHAPES if s in module.READS]
        writes = [s for s in SHAPES if s in getattr(module, "WRITES", ())]
        click.echo(f"{name:<11} reads {', '.join(reads)}" + (f"; writes {', '.join(writes)}" if writes else
                                                               "; import only"))
        click.echo(f"{'':<11} {module.LAYOUTS}")


@cli.command("import")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option("--project", "-p", required=True, help="Project to create or add to.")
@click.option("--dataset", "-d", default=None,
              help="Dataset to import into: it names the source's only dataset (a folder, a split), or holds "
                   "its several datasets as children.")
@click.option("--format", "fmt", type=click.Choice(["auto", *FORMATS]), default="auto", show_default=True,
              help="The source's format; auto detects it.")
@click.option("--overwrite", is_flag=True, help="Replace items that exist with different bytes.")
@click.option("--skip-invalid", is_flag=True, help="Leave out bad items (and bad annotations of good ones, as in a "
                                                   "COCO file), report how many and why.")
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
@click.option("--dry-run", is_flag=True, help="Read, hash and check SRC, and say what would be imported (format, "
                                              "datasets, items, bytes not in the store yet); write nothing.")
@pass_ctx
def import_cmd(c: Context, src: Path, project: str, dataset: str | None, fmt: str, overwrite: bool,
               skip_invalid: bool, verify_dedup: bool, no_stat_cache: bool, workers: int | None, no_head: bool,
               link: bool, allow_roots: tuple[Path, ...], follow_symlinks: bool, dry_run: bool) -> None:
    """Import SRC into a project, atomically: all of it or nothing. With --format links, SRC is
    a list of URLs (one per line, or a CSV with url and optional name columns)."""
    from converters.ingest import count_items, detect_format, import_source

    check_name(project, "project name")
    if dataset is not None:
        check_dataset_path(dataset)
    store = c.store
    detected = fmt == "auto"
    if detected:
        fmt = detect_format(src)
        if not c.quiet and not dry_run:
            click.echo(f"format: {fmt}", err=True)
    new_roots = [str(p.resolve()) for p in allow_roots if str(p.resolve()) not in store.config.allow_roots]
    if new_roots:
        store.config.allow_roots += new_roots
        if not dry_run:
            store.save_config()
    reader_options: dict[str, object] = {}
    if fmt == "links":
        reader_options["head"] = not no_head
    if link:
        if fmt != "coco":
            raise InvalidInput("--link", f"only COCO items carry URLs, not {fmt}")
        reader_options["link"] = True
    with c.bar(lambda: count_items(src, fmt), "item", f"import {project}") as bar:
        report, extra = import_source(store, src, project, fmt, dataset, progress=bar.update,
                                      reader_options=reader_options, follow_symlinks=follow_symlinks,
                                      overwrite=overwrite, skip_invalid=skip_invalid,
                                      verify_dedup=verify_dedup, stat_cache=not no_stat_cache,
                                      workers=workers, dry_run=dry_run)
    r = report
    if dry_run:
        _echo_dry_run(r, fmt + (", detected" if detected else ""), project in c.store.ns.projects())
    else:
        click.echo(r.line())
    # What the converter and the annotation builders counted (phrases; bare words are totals).
    for key, value in sorted({**r.notes, **{k: v for k, v in extra.items() if " " in k}}.items()):
        if value:
            click.echo(f"note: {counted_phrase(value, key)}")
    if r.rejected:
        kinds = [counted(n, f"invalid {what}") if what == "item" else
                 f"{counted(n, f'invalid {what}')} (left out of {'its item' if n == 1 else 'their items'})"
                 for what, n in sorted(r.rejected.items(), key=lambda kv: kv[0] != "item")]
        click.echo(f"skipped {', '.join(kinds)}:", err=True)
        for line in r.invalid:
            click.echo(f"  {line}", err=True)
        if r.rejected.total() > len(r.invalid):
            click.echo(f"  ... and {r.rejected.total() - len(r.invalid)} more", err=True)


def _echo_dry_run(r: ImportReport, fmt: str, existing: bool) -> None:
    items = sum(r.dataset_items.values())
    click.echo(f"would import {counted(items, 'item')} into {'' if existing else 'new '}project {r.project} "
               f"(format {fmt}): {counted(r.blobs_new, 'new blob')}, {human(r.bytes_new)} not in the store yet "
               f"(of {human(r.bytes_read)} read); nothing written (dry run)")
    for dataset, n in sorted(r.dataset_items.items()):
        click.echo(f"  {dataset}\t{counted(n, 'item')}")


@cli.command("export")
@click.argument("project", shell_complete=complete_target)
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(WRITABLE), default="sly", show_default=True,
              help="The format to write.")
@click.option("--task", type=click.Choice(["detect", "segment"]), default="detect", show_default=True,
              help="YOLO: boxes, or polygons.")
@click.option("--other-split", type=click.Choice(["train", "val", "test", "none"]), default="train",
              show_default=True, help="YOLO: the split of datasets not named train, val or test (none: left out).")
@click.option("--force", is_flag=True, help="DEST may hold files: replace it whole, deleting everything in it, "
                                            "once the new export is complete (until then DEST is left as it was).")
@pass_ctx
def export_cmd(c: Context, project: str, dest: Path, fmt: str, task: str, other_split: str, force: bool) -> None:
    """Write PROJECT to DEST (absent or an empty folder, or see --force) in a dataset format.
    The export is written beside DEST and appears whole or not at all (an error or Ctrl-C
    removes it). A geometry the format cannot hold is converted (e.g. polygon -> box) and
    counted in the summary, never dropped silently."""
    ns = c.store.ns
    ns.project(project)
    with removed_if_interrupted("export", f"the partial export at {dest}"), \
            c.bar(lambda: item_count(ns, project), "item", f"export {project}") as bar:
        counts = FORMATS[fmt].write(c.store, project, dest, progress=bar.update, force=force,
                                    **({"task": task, "other_split": other_split} if fmt == "yolo" else {}))
    click.echo(f"exported {project} to {dest}: " + ", ".join(counted_phrase(v, k) for k, v in counts.items()))


@cli.command("ls")
@click.argument("target", required=False, shell_complete=complete_target)
@json_option
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
            click.echo(f"{p['project']}\t{p['type']}\t{counted(p['datasets'], 'dataset')}\t"
                       f"{counted(p['items'], 'item')}")
        return
    project, dataset, item = resolve(c.store, target)
    if dataset is None:
        paths = ns.datasets(project)
        if as_json:
            click.echo(json.dumps(_dataset_rows(ns, project, paths), indent=2))
        for path in paths if not as_json else ():
            click.echo(f"{'  ' * path.count('/')}{path.rsplit('/', 1)[-1]}/\t"
                       f"{counted(ns.count_items(project, path), 'item')}")
        return
    rows = [(item, ns.item(project, dataset, item))] if item else ns.items(project, dataset)
    children = [] if item else _dataset_rows(ns, project, [f"{dataset}/{c}" for c in ns.children(project, dataset)])
    frames = _frames(c.store, project, dataset)
    if as_json:  # streamed: a dataset may hold a million items
        echo_lines(itertools.chain(['{"items": ['], joined_lines(
            json.dumps({"name": name, "width": rec.width or None, "height": rec.height or None,
                        "size": None if rec.size == UNKNOWN_SIZE else rec.size, "mime": rec.mime,
                        "media": rec.media.hex(), "annotation": rec.ann.hex(), **(rec.facts or {}),
                        **({"frame": frames[name]} if frames else {})})
            for name, rec in rows),
            [f'], "datasets": {json.dumps(children)}}}']))
        return
    echo_lines(f"{name}\t{f'{rec.width}x{rec.height}' if rec.width else '?'}\t"
               f"{'-' if rec.size == UNKNOWN_SIZE else rec.size}\t{rec.mime}\t{rec.media}"
               + (f"\t{media_facts(rec.facts)}" if rec.facts else "")
               + (f"\tframe {frames[name]}" if frames else "") for name, rec in rows)
    for child in children:
        click.echo(f"{child['dataset'].rsplit('/', 1)[-1]}/\t{counted(child['items'], 'item')}")


def _frames(store: Store, project: str, dataset: str) -> dict[str, int] | None:
    """An episode's frame index of each of its clouds (its frame map), None for any other dataset."""
    if store.ns.project(project).project_type != "point_cloud_episodes":
        return None
    first = next(iter(store.ns.items(project, dataset)), None)
    if first is None or first[1].meta is None:
        return {}
    return {name: int(frame) for frame, name in store.read_json(first[1].meta, f"{dataset}/frame map").items()}


def _dataset_rows(ns: Namespace, project: str, paths: list[str]) -> list[dict[str, Any]]:
    return [{"dataset": path, "items": ns.count_items(project, path)} for path in paths]


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
              help="Write here instead of stdout (not a terminal).")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@pass_ctx
def get_cmd(c: Context, target: str, output: Path | None, force: bool) -> None:
    """Write a blob's bytes (verified against its id), or an item's image, to stdout or a file.
    TARGET is a blob id or PROJECT/DATASET/ITEM (a link item is fetched from its URL). The file
    appears whole or not at all (Ctrl-C leaves the old one, or none)."""
    if "/" in target:
        project, dataset, item = resolve(c.store, target)
        if item is None:
            raise InvalidInput(target, "not an item (PROJECT/DATASET/ITEM)")
        bid = c.store.ns.item(project, dataset or "", item).media
    else:
        bid = BlobId.from_hex(target)
    if output is None:
        if sys.stdout.isatty():
            raise CasError("stdout is a terminal, where raw bytes would garble it; pass -o FILE or redirect "
                           "(cas get ... > FILE)")
        c.store.copy_to(bid, sys.stdout.buffer)
        return
    check_output(output, force)
    with removed_if_interrupted("get", f"the partial copy; {output} is as it was"):
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
    check_output(output, force)
    if grid is not None:
        image, drawn = contact_sheet(c.store, project, dataset, grid)
        what = f"{counted(drawn, 'item')} of {project}/{dataset}"
    else:
        assert item is not None
        image = render_item(c.store, project, dataset, item)
        what = f"{project}/{dataset}/{item}"
    image_format = Image.registered_extensions()[output.suffix.lower()]
    if image.mode not in ("RGB", "L") and image_format in ("JPEG", "BMP", "PPM"):
        image = image.convert("RGB")  # no alpha in these formats
    with removed_if_interrupted("render", f"the partial image; {output} is as it was"), new_file(output) as out:
        image.save(out, format=image_format)
    click.echo(f"rendered {what} to {output}")


def check_output(output: Path, force: bool) -> None:
    """An output file may be written: its folder exists, and the file does not unless `force`."""
    refuse_existing(output, force)
    if not output.resolve().parent.is_dir():
        raise NotFound(f"no such directory: {output.parent}")


@contextmanager
def removed_if_interrupted(command: str, removed: str) -> Iterator[None]:
    """Ctrl-C in a block whose output cleans up after itself (`cas.outputs`): one line saying
    what was removed, exit status 130."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo(("\n" if sys.stderr.isatty() else "") + f"cas {command}: interrupted; removed {removed}", err=True)
        sys.exit(130)


@cli.command("rm")
@click.argument("targets", nargs=-1, required=True, metavar="TARGET...", shell_complete=complete_target)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
@pass_ctx
def rm_cmd(c: Context, targets: tuple[str, ...], dry_run: bool) -> None:
    """Remove projects (with their versions), datasets (with nested datasets) or items; every
    TARGET is checked before any is removed. `cas gc` frees the bytes."""
    resolved = _outermost([(target, resolve(c.store, target)) for target in targets])
    ns = c.store.ns
    for target, (project, dataset, item) in resolved:
        if dry_run:
            datasets = [] if item else [d for d in ns.datasets(project) if dataset is None or d == dataset
                                        or d.startswith(dataset + "/")]
            n = 1 if item else sum(ns.count_items(project, d) for d in datasets)
            versions = "" if dataset is not None else f" and its versions ({len(history_of(c.store, project))})"
            click.echo(f"would remove {target} ({counted(n, 'item')}){versions}")
        elif item is not None:
            ns.remove_item(project, dataset or "", item)
            click.echo(f"removed {target} (1 item)")
        elif dataset is not None:
            click.echo(f"removed {target} ({counted(ns.remove_dataset(project, dataset), 'item')})")
        else:
            from cas.versions.snapshots import remove_with_history
            click.echo(f"removed {target} ({counted(remove_with_history(c.store, project), 'item')})")
    click.echo("nothing changed (dry run)" if dry_run else "run `cas gc` to free unreferenced bytes")


Resolved = tuple[str, tuple[str, str | None, str | None]]


def _outermost(resolved: list[Resolved]) -> list[Resolved]:
    """The targets that no other target holds (`p/d` goes with `p`; a target given twice is one)."""
    def path(where: tuple[str, str | None, str | None]) -> tuple[str, ...]:
        project, dataset, item = where
        return (project, *(dataset.split("/") if dataset else ()), *((item,) if item is not None else ()))

    paths = [path(where) for _target, where in resolved]
    kept: list[Resolved] = []
    for i, (entry, mine) in enumerate(zip(resolved, paths)):
        held = any(other == mine[:len(other)] and (len(other) < len(mine) or j < i) for j, other in enumerate(paths)
                   if j != i)
        if not held:
            kept.append(entry)
    return kept
