"""Commands over the whole store: init, stats, du, gc, fsck."""

from __future__ import annotations

import json
import sys

import click

from cas.cli.base import Context, SizeParam, blob_count, cli, complete_target, human, json_option, pass_ctx, resolve
from cas.config import settings
from cas.errors import InvalidInput, NotFound
from cas.store import Store, has_store_data
from cas.units import counted, human_binary, media_facts


@cli.command()
@click.option("--s3", "s3_url", default=None,
              help="Keep blobs in S3 at s3://bucket/prefix (also on an existing store).")
@click.option("--endpoint-url", default=None, help="S3 endpoint (MinIO, Ceph, a local test server...).")
@click.option("--region", default=None, help="S3 region (default: boto3's configuration).")
@click.option("--cache-size", type=SizeParam(), default=None,
              help="Cap of the local cache of remote blobs: 512K, 50M, 2G... [default: 10G].")
@pass_ctx
def init(c: Context, s3_url: str | None, endpoint_url: str | None, region: str | None, cache_size: int | None) -> None:
    """Create the store (the one command that does); set its S3 remote and cache size.
    Credentials come from boto3's standard chain (environment, profile, instance role)."""
    from cas.blobs.backends.s3 import S3Backend
    from cas.config import S3Remote

    # Every check before anything is written: a failed init leaves no store behind.
    if s3_url is None and (endpoint_url or region):
        raise InvalidInput("--endpoint-url/--region", "only with --s3")
    remote = S3Remote.parse(s3_url, endpoint_url, region) if s3_url is not None else None
    if remote is not None:
        S3Backend(remote, settings().net).check()
    existed = (c.store_path / "index" / "data.mdb").exists()
    store = c._store = Store.init(c.store_path)
    click.echo(f"{'store exists at' if existed else 'initialized store at'} {store.root}")
    if remote is not None:
        store.config.s3 = remote
        click.echo(f"new blobs go to {remote}" + (f" at {endpoint_url}" if endpoint_url else "")
                   + ("; existing local blobs stay local until `cas push`" if existed else ""))
    if cache_size is not None:
        store.config.cache_size = cache_size
        click.echo(f"cache of remote blobs: at most {human_binary(cache_size)}")
    if remote is not None or cache_size is not None:
        store.save_config()


@cli.command("stats")
@click.argument("project", required=False, shell_complete=complete_target)
@click.option("--classes", is_flag=True, help="With PROJECT: the full tables of objects per class and geometry, "
                                              "tags on items and objects, items per dataset.")
@json_option
@pass_ctx
def stats_cmd(c: Context, project: str | None, classes: bool, as_json: bool) -> None:
    """Counts, logical and stored bytes, dedup ratio of the store; with PROJECT, what its
    annotations hold (classes used, objects, tagged items; the full tables with --classes).
    PROJECT reads each distinct annotation once."""
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
                   f"hit rate {cache['hit_rate']:.1%} ({counted(cache['hits'], 'hit')}, "
                   f"{counted(cache['misses'], 'miss')}, "
                   f"{human(cache['bytes_fetched'])} fetched)")
    if s["unreferenced_blobs"]:
        click.echo(f"unreferenced  {counted(s['unreferenced_blobs'], 'blob')}, {human(s['unreferenced_bytes'])} "
                   "(freed by `cas gc`)")
    if s["version_only_blobs"]:
        click.echo(f"versions only {counted(s['version_only_blobs'], 'blob')}, {human(s['version_only_bytes'])} "
                   "(no item uses them; kept for `cas restore`)")


def _class_stats(c: Context, project: str | None, classes: bool, as_json: bool) -> None:
    from cas.maintenance.classes import class_stats

    if project is None:
        raise click.UsageError("--classes takes a PROJECT")
    s = class_stats(c.store, project).as_dict()
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    counted_noun = s["counted"].removesuffix("s")  # an object, a figure (videos)
    click.echo(f"project  {s['project']} ({s['project_type']}): {counted(s['items'], 'item')} in "
               f"{counted(len(s['datasets']), 'dataset')}, {counted(s['annotations'], 'distinct annotation')}, "
               f"{counted(s['objects'], counted_noun)}")
    if s["media"]:
        click.echo(f"media    {media_facts(s['media'])} in all")
    if not classes:
        click.echo(f"labels   {_label_summary(s)}")
        if s["classes"] or s["tags"]:
            click.echo(f"tables   cas stats {project} --classes")
        return
    tables = ((["CLASS", "GEOMETRY", s["counted"].upper()], [[r["class"], r["geometry"], r["count"]]
                                                             for r in s["classes"]], 2),
              (["TAG", "ON ITEMS", "ON OBJECTS"], [[r["name"], r["items"], r["objects"]] for r in s["tags"]], 1),
              (["DATASET", "ITEMS"], [[r["name"], r["items"]] for r in s["datasets"]], 1))
    for header, rows, left in tables:
        if rows:
            click.echo("")
            _table(header, rows, left)


SHOWN_CLASSES = 5  # the most used, in the summary line of `cas stats P`


def _label_summary(s: dict) -> str:
    """'2 classes used (car 3, road 1); 3 tagged items': what `cas stats P` says of the labels."""
    per_class: dict[str, int] = {}
    for row in s["classes"]:
        per_class[row["class"]] = per_class.get(row["class"], 0) + row["count"]
    top = sorted(per_class.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ", ".join(f"{name} {n}" for name, n in top[:SHOWN_CLASSES]) + (", ..." if len(top) > SHOWN_CLASSES else "")
    used = f"{counted(len(top), 'class')} used ({shown})" if top else "no classes used"
    return f"{used}; {counted(s['tagged_items'], 'tagged item')}"


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
@json_option
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
        click.echo(f"UNKNOWN: {counted(n, 'link item')} of unknown size (imported without a HEAD, never read): "
                   "their media is in no byte column")


@cli.command("gc")
@click.option("--dry-run", is_flag=True, help="Say what gc would remove and free; change nothing.")
@json_option
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
    click.echo(f"{verb} {counted(r.blobs_removed, 'blob')} and {counted(r.orphans_removed, 'orphan file')}, "
               f"{'would free' if dry_run else 'freed'} {human(r.bytes_freed)}; {counted(r.temp_removed, 'temp file')}"
               + (f"; {counted(r.packs_compacted, 'pack')} compacted" if r.packs_compacted else "")
               + (f" ({human(r.pack_bytes_copied)} of live entries copied)" if r.pack_bytes_copied else "")
               + (f"; {counted(r.packs_not_rewritten, 'pack')} not compacted: an entry's bytes are damaged "
                  "(see `cas fsck`)" if r.packs_not_rewritten else "")
               + (f"; {counted(r.s3_packs_compacted, 'S3 pack')} compacted" if r.s3_packs_compacted else "")
               + (f" ({human(r.s3_pack_bytes_copied)} of live entries copied)" if r.s3_pack_bytes_copied else "")
               + (f"; {counted(r.s3_packs_not_rewritten, 'S3 pack')} not compacted: an entry's bytes are damaged "
                  "(see `cas fsck --remote`)" if r.s3_packs_not_rewritten else "")
               + (f"; {counted(r.s3_packs_kept, 'S3 pack')} left in place: younger than the grace period or holding "
                  "blobs of the shared versions" if r.s3_packs_kept else "")
               + (f"; {counted(r.young_kept, 'S3 object')} younger than the grace period "
                  f"(s3_grace_seconds {c.store.config.s3_grace_seconds:g}) kept for a later gc" if r.young_kept else "")
               + ("; nothing changed (dry run)" if dry_run else ""))


@cli.command("fsck")
@click.option("--repair", is_flag=True, help="Remove orphans and lost records, reset lost annotations to empty; "
                                            "an image lost or damaged is kept, and named with the source to "
                                            "re-import that heals it.")
@click.option("--dry-run", is_flag=True, help="With --repair: say what it would do, change nothing.")
@click.option("--quick", is_flag=True, help="Check sizes only, do not re-hash blob contents.")
@click.option("--remote", is_flag=True,
              help="Also download the blobs this store keeps in S3 (pack objects and objects of their own) and "
                   "re-hash them (without it, S3 blobs are checked by size and index only).")
@click.option("--rebuild-index", is_flag=True,
              help="Build a new index from the blobs, trees and refs alone (the old one is moved aside), then check.")
@json_option
@pass_ctx
def fsck_cmd(c: Context, repair: bool, dry_run: bool, quick: bool, remote: bool, rebuild_index: bool,
             as_json: bool) -> None:
    """Check every blob against its bytes and every item against its blobs."""
    if dry_run and (not repair or rebuild_index):
        raise click.UsageError("--dry-run goes with --repair (and not with --rebuild-index)")
    if remote and quick:
        raise click.UsageError("--remote re-hashes the S3 blobs, --quick hashes nothing: give one of them")
    if rebuild_index:
        from cas.maintenance.rebuild import rebuild_index as rebuild
        if not has_store_data(c.store_path.expanduser().resolve()):
            raise NotFound(f"no cas store at {c.store_path}: no blobs to rebuild an index from")
        b = rebuild(c.store_path)
        click.echo(err=as_json, message=f"rebuilt the index: {counted(b.blobs, 'blob')}, "
                   f"{counted(b.projects, 'project')}, {counted(b.items, 'item')}"
                   + (f"; {counted(b.pinned, 'blob')} pinned that no version holds (cas release frees one)" if b.pinned
                      else "")
                   + (f"; the old index is in {b.moved_aside}" if b.moved_aside else ""))
    from cas.maintenance.fsck import check

    with c.bar(lambda: blob_count(c.store), "blob", "fsck") as bar:
        r = check(c.store, repair=repair and not dry_run, verify=not quick, progress=bar.update, plan_repair=dry_run,
                  remote=remote)
    if as_json:
        click.echo(json.dumps({
            "blobs_checked": r.blobs_checked, "items_checked": r.items_checked, "bytes_verified": r.bytes_verified,
            "clean": r.clean, "dry_run": dry_run,
            "problems": [{"kind": p.kind, "subject": p.subject, "detail": p.detail, "action": p.action or None,
                          "repaired": p.repaired} for p in r.problems],
            "sources_needed": [{"blob": str(n.blob), "items": n.users, "more_items": n.more, "pins": n.pins,
                                "versions": n.in_versions} for n in r.sources_needed],
            "healed": [str(blob) for blob in r.healed]}, indent=2))
    for problem in r.problems if not as_json else ():
        click.echo(f"{problem} [would {problem.action}]" if dry_run and problem.action else str(problem))
    if not as_json:
        for blob in r.healed:
            click.echo(f"healed-blob: {blob}: good bytes again (re-imported since an earlier fsck found it damaged)")
        for need in r.sources_needed:
            click.echo(str(need))
    waiting = (f", {counted(len(r.sources_needed), 'blob needs its source file', 'blobs need their source files')}"
               if r.sources_needed else "")
    click.echo(err=as_json, message=f"checked {counted(r.blobs_checked, 'blob')} ({human(r.bytes_verified)} hashed), "
               f"{counted(r.items_checked, 'item')}: "
               + ("clean" if r.clean else counted(len(r.problems), "problem")
                  + (", nothing changed (dry run)" if dry_run else ", repaired" + waiting if repair else waiting)))
    if not r.clean and (not repair or dry_run or r.sources_needed):
        sys.exit(1)
