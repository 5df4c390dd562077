"""The command line's conventions: where options go, what may create a store, --json,
--dry-run, exit codes, completion; through the real executable."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from PIL import Image

from bench.datagen import make_sample_project
from cas import Store
from converters import FORMATS, WRITABLE
from tests.conftest import ROOT, assert_user_error, loose_blob_path, run_cas


def cas(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m cas ARGS` with nothing added (run_cas puts --store and --quiet first)."""
    return subprocess.run([sys.executable, "-m", "cas", *args], capture_output=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def as_json(proc: subprocess.CompletedProcess) -> object:
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sample_project(tmp_path_factory.mktemp("conv") / "sample")


@pytest.fixture
def store(tmp_path: Path, sample: Path) -> Path:
    """A store holding the sample as project `demo`, with one version of it."""
    root = tmp_path / "store"
    run_cas(root, "init")
    run_cas(root, "import", str(sample), "--project", "demo")
    run_cas(root, "snapshot", "demo", "-m", "first")
    return root


# -- options ---------------------------------------------------------------------------------
def test_global_options_work_after_the_subcommand_too(store: Path, sample: Path):
    before = cas("--store", str(store), "-q", "ls", "demo").stdout
    assert before == cas("ls", "demo", "--store", str(store), "-q").stdout == \
        cas("ls", "--store=" + str(store), "demo", "--quiet").stdout
    assert b"train/" in before
    proc = cas("import", str(sample), "--project", "second", "-q", "--store", str(store))
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()  # -q: no "format:" line
    assert "second" in cas("ls", "--store", str(store)).stdout.decode()


def test_a_value_that_looks_like_a_global_option_stays_with_its_option(store: Path):
    """-m takes the next word whatever it is: `-m --quiet` is a message, not the flag."""
    run_cas(store, "rm", "demo/val")
    assert cas("snapshot", "demo", "-m", "--quiet", "--store", str(store)).returncode == 0
    assert as_json(cas("log", "demo", "--json", "--store", str(store)))[0]["message"] == "--quiet"


# -- help ------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["ls", "rm", "clone", "help"])
def test_help_command_prints_what_command_help_prints(command: str):
    assert cas("help", command).stdout == cas(command, "--help").stdout
    assert b"Usage: cas " + command.encode() in cas("help", command).stdout


def test_help_alone_is_the_group_help_and_an_unknown_command_one_line_with_the_list():
    assert cas("help").stdout == cas("--help").stdout
    line = assert_user_error(cas("help", "nope"), "no command 'nope'")
    assert "clone, diff, du" in line and "umount" in line


# -- the store ---------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["ls"], ["stats"], ["gc"], ["fsck"], ["import", ".", "-p", "p"], ["put", __file__]],
                         ids=lambda a: a[0])
def test_only_init_creates_a_store(tmp_path: Path, args: list[str]):
    typo = tmp_path / "typo"
    line = assert_user_error(cas("--store", str(typo), *args), f"no cas store at {typo}")
    assert line.endswith("(`cas init` or, in Python, `Store.init` creates one)")
    assert not typo.exists()
    assert cas("--store", str(typo), "init").returncode == 0
    assert (typo / "index").is_dir()


# -- usage and exit codes ------------------------------------------------------------------------
def test_import_help_lists_every_format_and_export_help_every_writable_one(tmp_path: Path):
    for command, formats in (("import", FORMATS), ("export", WRITABLE)):
        text = " ".join(cas(command, "--help").stdout.decode().split())
        assert f"[{'|'.join((['auto'] if command == 'import' else []) + list(formats))}]" in text, text


def test_writable_names_exactly_the_formats_that_can_write():
    assert WRITABLE == tuple(name for name, module in FORMATS.items() if hasattr(module, "write"))


def test_diff_exit_code_says_whether_there_are_differences(store: Path):
    assert run_cas(store, "diff", "demo", "HEAD", "--exit-code", check=False).returncode == 0
    run_cas(store, "rm", "demo/train/street_001.jpg")
    proc = run_cas(store, "diff", "demo", "HEAD", "--exit-code", check=False)
    assert proc.returncode == 1 and proc.stdout.decode() == "- train/street_001.jpg\n"
    assert run_cas(store, "diff", "demo", "HEAD").returncode == 0  # without --exit-code: 0, as git


def test_head_and_head_tilde_name_versions(store: Path):
    run_cas(store, "rm", "demo/val")
    run_cas(store, "snapshot", "demo", "-m", "second")
    log = as_json(run_cas(store, "log", "demo", "--json"))
    assert [v["message"] for v in log] == ["second", "first"] and log[0]["parent"] == log[1]["id"]
    diff = as_json(run_cas(store, "diff", "demo", "HEAD~1", "HEAD", "--json"))
    assert diff["removed"] and all(name.startswith("val/") for name in diff["removed"])
    assert diff["added"] == diff["changed"] == []
    assert_user_error(run_cas(store, "diff", "demo", "HEAD~2", check=False), "no version HEAD~2")


# -- --json ------------------------------------------------------------------------------------
def test_ls_json_at_every_level(store: Path):
    assert as_json(run_cas(store, "ls", "--json")) == [
        {"project": "demo", "type": "images", "datasets": 3, "items": 8}]
    assert as_json(run_cas(store, "ls", "demo", "--json")) == [
        {"dataset": "train", "items": 3}, {"dataset": "train/night", "items": 2}, {"dataset": "val", "items": 3}]
    listing = as_json(run_cas(store, "ls", "demo/train", "--json"))
    assert [i["name"] for i in listing["items"]] == ["street_001.jpg", "street_002.jpg", "street_003.png"]
    assert set(listing["items"][0]) == {"name", "width", "height", "size", "mime", "media", "annotation"}
    assert listing["datasets"] == [{"dataset": "train/night", "items": 2}]
    item = listing["items"][0]
    assert run_cas(store, "get", item["media"]).stdout == run_cas(store, "get", "demo/train/street_001.jpg").stdout
    assert as_json(run_cas(store, "ls", "demo/train/night", "--json")) == {
        "items": as_json(run_cas(store, "ls", "demo/train/night", "--json"))["items"], "datasets": []}


def test_fsck_json_lists_problems_with_their_action(store: Path):
    report = as_json(run_cas(store, "fsck", "--json"))
    assert report["clean"] is True and report["problems"] == [] and report["items_checked"] == 8
    media = as_json(run_cas(store, "ls", "demo/val", "--json"))["items"][0]["media"]
    with Store(store) as s:
        path = Path(loose_blob_path(s, bytes.fromhex(media)))
    path.unlink()
    proc = run_cas(store, "fsck", "--json", check=False)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["clean"] is False
    assert [(p["kind"], p["subject"]) for p in report["problems"]][0][1].startswith(media)
    assert all(set(p) == {"kind", "subject", "detail", "action", "repaired"} for p in report["problems"])


# -- --dry-run, and one definition of unreferenced -------------------------------------------------
def test_rm_dry_run_changes_nothing(store: Path):
    before = run_cas(store, "ls", "demo/train", "--json").stdout
    for target, says in (("demo/train/street_001.jpg", "(1 item)"), ("demo/train", "(5 items)"),
                         ("demo", "(8 items) and its versions (1)")):
        out = run_cas(store, "rm", target, "--dry-run").stdout.decode()
        assert out.startswith(f"would remove {target} {says}") and "nothing changed" in out
    assert run_cas(store, "ls", "demo/train", "--json").stdout == before
    assert len(as_json(run_cas(store, "log", "demo", "--json"))) == 1


def test_rm_takes_several_targets_and_checks_them_all_first(store: Path):
    before = run_cas(store, "ls", "demo", "--json").stdout
    assert_user_error(run_cas(store, "rm", "demo/val", "demo/nope", check=False), "demo/nope")
    assert run_cas(store, "ls", "demo", "--json").stdout == before, "one bad target: nothing removed"
    out = run_cas(store, "rm", "--dry-run", "demo/val", "demo/train/street_001.jpg").stdout.decode()
    assert out.splitlines() == ["would remove demo/val (3 items)", "would remove demo/train/street_001.jpg (1 item)",
                                "nothing changed (dry run)"]
    assert run_cas(store, "ls", "demo", "--json").stdout == before
    out = run_cas(store, "rm", "demo/train/night", "demo/val", "demo/train/night/", "demo/val/val_001.jpg")
    assert out.stdout.decode().splitlines() == ["removed demo/train/night (2 items)", "removed demo/val (3 items)",
                                                "run `cas gc` to free unreferenced bytes"]
    assert as_json(run_cas(store, "ls", "demo", "--json")) == [{"dataset": "train", "items": 3}]


def test_stats_unreferenced_is_what_gc_frees_and_dry_run_says_it_first(store: Path):
    run_cas(store, "rm", "demo/train")  # the version still holds its blobs
    stats = as_json(run_cas(store, "stats", "--json"))
    assert stats["unreferenced_blobs"] == 0 and stats["version_only_blobs"] > 0
    assert as_json(run_cas(store, "gc", "--json"))["blobs_removed"] == 0

    run_cas(store, "rm", "demo")  # a project goes with its versions: now its blobs are garbage
    stats = as_json(run_cas(store, "stats", "--json"))
    assert stats["unreferenced_blobs"] > 0 and stats["version_only_blobs"] == 0
    survey = as_json(run_cas(store, "gc", "--dry-run", "--json"))
    assert survey["dry_run"] is True and survey["blobs_removed"] == stats["unreferenced_blobs"]
    assert as_json(run_cas(store, "stats", "--json")) == stats  # the dry run changed nothing
    done = as_json(run_cas(store, "gc", "--json"))
    assert {**done, "dry_run": True, "stat_entries_dropped": 0} == {**survey, "stat_entries_dropped": 0}
    assert done["bytes_freed"] >= stats["unreferenced_bytes"] > 0
    after = as_json(run_cas(store, "stats", "--json"))
    assert after["blobs"] == 0 and after["unreferenced_blobs"] == 0


# -- outcomes a user can see ------------------------------------------------------------------------
def test_log_of_a_project_without_versions_says_so_and_how_to_make_one(store: Path, sample: Path):
    run_cas(store, "import", str(sample), "--project", "fresh")
    proc = run_cas(store, "log", "fresh")
    assert proc.stdout == b"" and proc.stderr.decode() == (
        "fresh has no versions yet: `cas snapshot fresh -m MESSAGE` makes one\n")
    assert as_json(run_cas(store, "log", "fresh", "--json")) == []


def test_stats_of_a_project_summarises_its_labels(store: Path):
    lines = run_cas(store, "stats", "demo").stdout.decode().splitlines()
    assert lines[0].startswith("project  demo (images): 8 items in 3 datasets, ")
    assert re.fullmatch(r"labels   \d+ class(es)? used \(.+\); \d+ tagged items?", lines[1]), lines
    assert lines[2:] == ["tables   cas stats demo --classes"]
    assert len(run_cas(store, "stats", "demo", "--classes").stdout.decode().splitlines()) > 3


def test_counts_agree_with_their_nouns(store: Path):
    run_cas(store, "rm", "demo/train", "demo/val/val_002.png", "demo/val/val_003.jpg")
    assert run_cas(store, "ls").stdout.decode() == "demo\timages\t1 dataset\t1 item\n"
    assert run_cas(store, "ls", "demo").stdout.decode() == "val/\t1 item\n"
    assert "version " in run_cas(store, "snapshot", "demo").stdout.decode()
    assert "  1 item  " in run_cas(store, "log", "demo").stdout.decode().splitlines()[0]


def test_a_link_of_unknown_size_lists_no_sentinel_numbers(store: Path, tmp_path: Path):
    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.1:9/a.jpg\n")
    run_cas(store, "import", str(urls), "--project", "web", "--format", "links", "--no-head")
    dataset = as_json(run_cas(store, "ls", "web", "--json"))[0]["dataset"]
    name, dims, size, mime, _media = run_cas(store, "ls", f"web/{dataset}").stdout.decode().rstrip("\n").split("\t")
    assert (name, dims, size, mime) == ("a.jpg", "?", "-", "image/jpeg")
    item = as_json(run_cas(store, "ls", f"web/{dataset}", "--json"))["items"][0]
    assert (item["width"], item["height"], item["size"]) == (None, None, None)


# -- completion --------------------------------------------------------------------------------
def complete(store: Path, words: str) -> list[str]:
    """What bash completion offers for the last word of `words` (click's bash protocol)."""
    parts = words.split(" ")
    proc = cas(env={"_CAS_COMPLETE": "bash_complete", "COMP_WORDS": " ".join(["cas", "--store", str(store), *parts]),
                    "COMP_CWORD": str(len(parts) + 2)})
    assert proc.returncode == 0, proc.stderr.decode()
    return [line.split(",", 1)[1] for line in proc.stdout.decode().splitlines() if line]


def test_completion_offers_projects_datasets_and_items(store: Path):
    assert complete(store, "ls d") == ["demo/"]
    assert complete(store, "rm demo/") == ["demo/train/", "demo/val/"]
    assert complete(store, "get demo/train/") == ["demo/train/night/", "demo/train/street_001.jpg",
                                                  "demo/train/street_002.jpg", "demo/train/street_003.png"]
    assert complete(store, "render demo/train/street_00") == ["demo/train/street_001.jpg",
                                                              "demo/train/street_002.jpg", "demo/train/street_003.png"]
    assert complete(store, "ls nope/") == []
    assert complete(store.parent / "missing", "ls d") == []  # no store: nothing offered, none created
    assert not (store.parent / "missing").exists()


def test_completion_marks_folders_so_that_no_space_follows(store: Path):
    proc = cas(env={"_CAS_COMPLETE": "bash_complete", "COMP_WORDS": f"cas --store {store} get demo/train/",
                    "COMP_CWORD": "4"})
    assert proc.stdout.decode().splitlines() == ["nospace,demo/train/night/", "plain,demo/train/street_001.jpg",
                                                 "plain,demo/train/street_002.jpg", "plain,demo/train/street_003.png"]


def bash_completes(store: Path, tmp_path: Path, words: str) -> list[str]:
    """What bash, running the script `cas` gives it, offers for the last of `words`, and the
    `compopt` calls it made (recorded: compopt only works inside an interactive completion)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "cas").write_text(f'#!/bin/sh\nexec {sys.executable} -m cas "$@"\n')
    (bin_dir / "cas").chmod(0o755)
    script = cas(env={"_CAS_COMPLETE": "bash_source"}).stdout.decode()
    parts = ["cas", "--store", str(store), *words.split(" ")]
    program = (f'compopt() {{ echo "compopt $1 $2"; }}\n{script}\nCOMP_WORDS=({" ".join(parts)})\n'
               f'COMP_CWORD={len(parts) - 1}\n_cas_completion cas\nprintf "%s\\n" "${{COMPREPLY[@]}}"\n')
    proc = subprocess.run(["bash", "-c", program], capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode().splitlines()


def test_bash_puts_no_space_after_a_project_or_dataset_but_after_an_item(store: Path, tmp_path: Path):
    assert bash_completes(store, tmp_path, "ls de") == ["compopt -o nospace", "demo/"]
    assert bash_completes(store, tmp_path, "rm demo/v") == ["compopt -o nospace", "demo/val/"]
    assert bash_completes(store, tmp_path, "get demo/train/street_001") == ["demo/train/street_001.jpg"]


def test_zsh_and_fish_scripts_know_folders():
    assert "compadd -S ''" in cas(env={"_CAS_COMPLETE": "zsh_source"}).stdout.decode()
    assert cas(env={"_CAS_COMPLETE": "fish_source"}).returncode == 0


# -- progress bars -------------------------------------------------------------------------------
def stderr_on_a_terminal(args: list[str]) -> tuple[int, bytes]:
    """(exit status, what `cas ARGS` wrote to stderr) with stderr on a 100-column terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        proc = subprocess.run([sys.executable, "-m", "cas", *args], stdout=subprocess.DEVNULL, stderr=slave,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    finally:
        os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other side is closed and drained
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return proc.returncode, out


@pytest.mark.parametrize("args, bar", [
    (["export", "demo", "{tmp}/out"], b"export demo:"),
    (["snapshot", "demo", "-m", "again"], b"snapshot demo:"),
    (["fsck"], b"fsck:"),
    (["import", "{sample}", "-p", "other"], b"import other:"),
], ids=lambda a: a[0] if isinstance(a, list) else "")
def test_progress_bars_show_on_a_terminal_only_and_q_silences_them(store: Path, sample: Path, tmp_path: Path,
                                                                     args: list[str], bar: bytes):
    args = [a.format(tmp=tmp_path, sample=sample) for a in args]
    status, shown = stderr_on_a_terminal(["--store", str(store), *args])
    assert status == 0 and bar in shown and b"/s]" in shown, shown  # with its rate
    for extra in (["-q"], []):  # -q on a terminal; no terminal at all
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
        if extra:
            status, shown = stderr_on_a_terminal(["--store", str(store), *extra, *args])
        else:
            proc = cas("--store", str(store), *args)
            status, shown = proc.returncode, proc.stderr
        assert status == 0 and bar not in shown and b"\r" not in shown, shown


# -- --overwrite and what differs ------------------------------------------------------------------
def test_an_images_only_reimport_keeps_stored_annotations_and_conflicts_say_what_differs(store: Path, sample: Path,
                                                                                         tmp_path: Path):
    def items() -> dict[str, dict]:
        return {i["name"]: i for i in as_json(run_cas(store, "ls", "demo/val", "--json"))["items"]}

    before = items()
    images = tmp_path / "images" / "val"
    shutil.copytree(sample / "val" / "img", images)
    run_cas(store, "import", str(tmp_path / "images"), "--project", "demo", "--format", "images")  # no conflict
    assert items() == before  # every item the same: its annotation kept, not emptied

    name = sorted(before)[0]
    with Image.open(images / name) as im:  # a new image of the same size, then one of another size
        same_size = im.convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        other_size = im.convert("RGB").resize((im.width // 2, im.height // 2))
    same_size.save(images / name, format=im.format)
    line = assert_user_error(run_cas(store, "import", str(tmp_path / "images"), "--project", "demo", "--format",
                                     "images", check=False), f"demo/val/{name}")
    assert "exists with a different image (use --overwrite" in line, line
    run_cas(store, "import", str(tmp_path / "images"), "--project", "demo", "--format", "images", "--overwrite")
    after = items()
    assert after[name]["media"] != before[name]["media"]
    assert after[name]["annotation"] == before[name]["annotation"]  # same size: the annotation still fits

    other_size.save(images / name, format=im.format)
    run_cas(store, "import", str(tmp_path / "images"), "--project", "demo", "--format", "images", "--overwrite")
    resized = items()[name]
    assert resized["width"] == other_size.width and resized["annotation"] != before[name]["annotation"]
    annotation = json.loads(run_cas(store, "get", resized["annotation"]).stdout)
    assert annotation["objects"] == [] and annotation["size"] == {"width": other_size.width,
                                                                  "height": other_size.height}
    assert {n: i for n, i in items().items() if n != name} == {n: i for n, i in before.items() if n != name}


def test_a_conflict_on_the_annotation_alone_says_so(store: Path, sample: Path, tmp_path: Path):
    edited = tmp_path / "edited"
    shutil.copytree(sample, edited)
    ann_file = sorted((edited / "val" / "ann").iterdir())[0]
    ann = json.loads(ann_file.read_text())
    ann["description"] = "edited"
    ann_file.write_text(json.dumps(ann))
    line = assert_user_error(run_cas(store, "import", str(edited), "--project", "demo", check=False),
                             f"demo/val/{ann_file.name.removesuffix('.json')}")
    assert "exists with a different annotation (use --overwrite" in line, line
