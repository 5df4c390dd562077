"""Every `cas` command once, through the real executable: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.datagen import make_sample_project
from cas import Store
from cas.blobs.hashing import hash_bytes
from cas.maintenance.stats import compute as compute_stats
from tests.conftest import ROOT, assert_user_error, damage_blob, loose_blob_path, run_cas, write_images

COMMANDS = ("init", "import", "export", "ls", "stats", "put", "get", "rm", "gc", "fsck")
ID_LINE = re.compile(r"^([0-9a-f]{32})  (.+)$")


def stats(store: Path) -> dict:
    return json.loads(run_cas(store, "stats", "--json").stdout)


def lines(proc: subprocess.CompletedProcess) -> list[str]:
    return proc.stdout.decode().splitlines()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sample_project(tmp_path_factory.mktemp("cli") / "sample")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, sample: Path) -> Path:
    """A store holding the sample as project `demo`; tests using it only read."""
    store = tmp_path_factory.mktemp("demo") / "store"
    run_cas(store, "import", str(sample), "--project", "demo")
    return store


@pytest.fixture(scope="module")
def blob(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, bytes]:
    """(store, id, bytes) of one `put` blob: binary content with newlines and NULs."""
    base = tmp_path_factory.mktemp("blob")
    data = bytes(range(256)) * 40 + b"\n\r\n\0end"
    (base / "f.bin").write_bytes(data)
    out = lines(run_cas(base / "store", "put", str(base / "f.bin")))
    return base / "store", ID_LINE.match(out[0]).group(1), data


# -- commands ------------------------------------------------------------------------------------
def test_help_lists_every_command(tmp_path):
    out = run_cas(tmp_path / "store", "--help").stdout.decode()
    listed = set(re.findall(r"^  (\w+)\s", out.split("Commands:", 1)[1], re.MULTILINE))
    assert set(COMMANDS) <= listed, set(COMMANDS) - listed  # mount/umount belong to the FUSE view


def test_init_creates_the_store_then_reports_it_exists(tmp_path):
    store = tmp_path / "store"
    assert lines(run_cas(store, "init")) == [f"initialized store at {store}"]
    assert (store / "index" / "data.mdb").is_file() and (store / "blobs").is_dir()
    assert lines(run_cas(store, "init")) == [f"store exists at {store}"]


def test_put_prints_id_and_path_per_file_and_same_content_gives_same_id(tmp_path):
    a, b, c = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    c.write_bytes(b"other bytes")
    out = lines(run_cas(tmp_path / "store", "put", str(a), str(b), str(c)))
    matches = [ID_LINE.match(line) for line in out]
    assert all(matches) and len(matches) == 3, out
    assert [m.group(2) for m in matches] == [str(a), str(b), str(c)]
    ids = [m.group(1) for m in matches]
    assert ids[0] == ids[1] == str(hash_bytes(b"same bytes")) != ids[2]
    assert stats(tmp_path / "store")["blobs"] == 2


def test_get_writes_the_bytes_to_a_file_or_stdout(blob, tmp_path):
    store, blob_id, data = blob
    run_cas(store, "get", blob_id, "-o", str(tmp_path / "out.bin"))
    assert (tmp_path / "out.bin").read_bytes() == data
    assert run_cas(store, "get", blob_id).stdout == data


def test_get_with_a_malformed_id_is_a_one_line_error(blob):
    assert_user_error(run_cas(blob[0], "get", "not-hex", check=False), "not a blob id", "'not-hex'")


def test_get_of_an_unknown_id_is_a_one_line_error(blob):
    unknown = "0" * 32
    assert_user_error(run_cas(blob[0], "get", unknown, check=False), f"no blob {unknown}")


def test_get_into_a_missing_directory_is_a_one_line_error(blob, tmp_path):
    proc = run_cas(blob[0], "get", blob[1], "-o", str(tmp_path / "nodir" / "out"), check=False)
    assert_user_error(proc, "no such directory", str(tmp_path / "nodir"))


def test_ls_lists_projects(demo):
    assert lines(run_cas(demo, "ls")) == ["demo\timages\t3 datasets\t8 items"]


def test_ls_project_lists_nested_datasets(demo):
    assert lines(run_cas(demo, "ls", "demo")) == ["train/\t3 items", "  night/\t2 items", "val/\t3 items"]


def test_ls_dataset_lists_items_then_children(demo):
    out = lines(run_cas(demo, "ls", "demo/train"))
    assert [line.split("\t")[:2] for line in out[:3]] == [
        ["street_001.jpg", "640x480"], ["street_002.jpg", "800x600"], ["street_003.png", "640x480"]]
    assert out[3:] == ["night/\t2 items"]
    assert [line.split("\t")[0] for line in lines(run_cas(demo, "ls", "demo/train/night"))] == [
        "night_001.jpg", "night_002.png"]


def test_ls_item_shows_its_record(demo, sample):
    data = (sample / "val/img/val_001.jpg").read_bytes()
    assert lines(run_cas(demo, "ls", "demo/val/val_001.jpg")) == [
        f"val_001.jpg\t800x600\t{len(data)}\timage/jpeg\t{hash_bytes(data)}"]


def test_ls_of_something_missing_is_a_one_line_error(demo):
    assert_user_error(run_cas(demo, "ls", "nope", check=False), "no project named 'nope'")
    assert_user_error(run_cas(demo, "ls", "demo/nope", check=False), "no dataset or item demo/nope")
    assert_user_error(run_cas(demo, "ls", "demo/val/nope.jpg", check=False), "no item demo/val/nope.jpg")


def test_stats_counts_the_store(demo):
    s = stats(demo)
    assert (s["projects"], s["datasets"], s["items"], s["blobs"]) == (1, 3, 8, 15)
    assert s["unreferenced_blobs"] == 0 and s["logical_bytes"] > s["stored_bytes"] > 0
    text = run_cas(demo, "stats").stdout.decode()
    assert re.search(r"^items\s+8$", text, re.MULTILINE) and re.search(r"^blobs\s+15$", text, re.MULTILINE)


def test_rm_item_dataset_project_then_gc_frees_every_byte(sample, tmp_path):
    store = tmp_path / "store"
    run_cas(store, "import", str(sample), "--project", "demo")
    assert "(1 item)" in run_cas(store, "rm", "demo/val/val_001.jpg").stdout.decode()
    with Store(store) as s:
        assert [name for name, _ in s.ns.items("demo", "val")] == ["val_002.png", "val_003.jpg"]
    assert "(5 items)" in run_cas(store, "rm", "demo/train").stdout.decode()  # with train/night
    with Store(store) as s:
        assert s.ns.datasets("demo") == ["val"]
    assert "(2 items)" in run_cas(store, "rm", "demo").stdout.decode()
    assert lines(run_cas(store, "ls")) == []
    s = stats(store)
    assert (s["projects"], s["datasets"], s["items"]) == (0, 0, 0)
    assert s["unreferenced_blobs"] == s["blobs"] == 15
    assert lines(run_cas(store, "gc"))[0].startswith("removed 15 blobs and 0 orphan files")
    s = stats(store)
    assert (s["blobs"], s["unreferenced_blobs"], s["stored_bytes"]) == (0, 0, 0)
    assert [p for p in (store / "blobs").rglob("*") if p.is_file()] == []


def test_fsck_finds_a_missing_blob_and_repair_keeps_the_items_that_need_it(sample, tmp_path):
    store = tmp_path / "store"
    run_cas(store, "import", str(sample), "--project", "demo")
    assert lines(run_cas(store, "fsck"))[-1].endswith("8 items: clean")
    with Store(store) as s:
        shared = s.ns.item("demo", "train", "street_001.jpg").media  # also val/val_003.jpg's image
        path = Path(loose_blob_path(s, shared))
    original = path.read_bytes()
    path.unlink()

    proc = run_cas(store, "fsck", check=False)
    assert proc.returncode == 1
    out = lines(proc)
    assert f"missing-blob: {shared}: file is missing" in out
    assert sorted(line.split(":")[1].strip() for line in out if line.startswith("damaged-item")) == [
        "demo/train/street_001.jpg", "demo/val/val_003.jpg"]

    repair = run_cas(store, "fsck", "--repair", check=False)  # only the original bytes can heal it
    assert repair.returncode == 1
    assert f"needs-source: {shared}: used by image of demo/train/street_001.jpg, image of demo/val/val_003.jpg; " \
        "re-import the original file" in lines(repair)[-2]
    assert lines(repair)[-1].endswith("3 problems, repaired, 1 blob needs its source file")
    with Store(store) as s:
        assert compute_stats(s)["items"] == 8 and s.has(shared)
    run_cas(store, "import", str(sample), "--project", "demo")
    healed = lines(run_cas(store, "fsck"))
    assert f"healed-blob: {shared}: good bytes again (re-imported since an earlier fsck found it damaged)" in healed
    assert healed[-1].endswith("8 items: clean")
    with Store(store) as s:
        assert s.read_bytes(shared) == original


def test_fsck_repair_resets_a_damaged_annotation_and_keeps_the_intact_image(sample, tmp_path):
    store = tmp_path / "store"
    run_cas(store, "import", str(sample), "--project", "demo")
    with Store(store) as s:
        item = s.ns.item("demo", "val", "val_002.png")
        image = s.read_bytes(item.media)
        sharing = [(d, n) for d in ("train", "val", "train/night") for n, rec in s.ns.items("demo", d)
                   if rec.ann == item.ann]
        ann_path, at = damage_blob(s, item.ann, b'{"broken": ')  # the digest no longer matches
    before = sorted(p.relative_to(store) for p in store.rglob("*") if p.is_file())

    dry = run_cas(store, "fsck", "--repair", "--dry-run", check=False)
    assert dry.returncode == 1
    out = lines(dry)
    assert any(line.startswith("damaged-annotation: demo/val/val_002.png:") and "[would reset to empty]" in line
               for line in out), out
    assert not any(line.startswith(("damaged-item", "dangling-item")) for line in out), out
    assert out[-1].endswith("nothing changed (dry run)")
    assert sorted(p.relative_to(store) for p in store.rglob("*") if p.is_file()) == before
    assert Path(ann_path).read_bytes()[at:at + 11] == b'{"broken": '

    repair = lines(run_cas(store, "fsck", "--repair"))
    assert any("damaged-annotation: demo/val/val_002.png" in line and "[reset to empty (done)]" in line
               for line in repair), repair
    assert lines(run_cas(store, "fsck"))[-1].endswith("8 items: clean")
    with Store(store) as s:
        for dataset, name in sharing:  # every item that shared the lost annotation keeps its image
            rec = s.ns.item("demo", dataset, name)
            assert s.read_json(rec.ann, name) == {"description": "", "size": {"height": rec.height,
                                                  "width": rec.width}, "tags": [], "objects": []}
        assert s.read_bytes(s.ns.item("demo", "val", "val_002.png").media) == image
        assert compute_stats(s)["items"] == 8


# -- errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["--bogus", "ls"],                  # unknown global option
    ["ls", "--bogus"],                  # unknown command option
    ["nosuchcommand"],
    ["get"],                            # missing argument
    ["put"],
    ["import", "."],                    # missing required --project
    ["put", "does-not-exist.bin"],      # click checks the path
    ["import", ".", "--project", "p", "--workers", "0"],
], ids=lambda a: " ".join(a))
def test_usage_errors_exit_2_without_traceback(args, tmp_path):
    proc = run_cas(tmp_path / "store", *args, check=False)
    stderr = proc.stderr.decode()
    assert proc.returncode == 2, stderr
    assert "Traceback" not in stderr and "Usage:" in stderr and "Error:" in stderr


def test_unknown_import_format_is_a_usage_error_that_lists_the_formats(sample, tmp_path):
    run_cas(tmp_path / "store", "init")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "cas", "--store", str(tmp_path / "store"), "import", str(sample),
                           "--project", "p", "--format", "tfrecord"], capture_output=True, env=env, timeout=120)
    stderr = proc.stderr.decode()
    assert proc.returncode == 2 and "Traceback" not in stderr, stderr
    assert "'tfrecord' is not one of" in stderr and "'cityscapes'" in stderr and "'videos'" in stderr


def test_invalid_names_are_one_line_errors(sample, tmp_path):
    store = tmp_path / "store"
    assert_user_error(run_cas(store, "import", str(sample), "--project", "a/b", check=False),
                      "project name may not contain a slash")
    assert_user_error(run_cas(store, "import", str(sample), "--project", "p", "--dataset", "x//y", check=False),
                      "empty dataset name")
    assert_user_error(run_cas(store, "rm", "nope", check=False), "no project named 'nope'")
    assert lines(run_cas(store, "ls")) == []


# -- where the store is --------------------------------------------------------------------------
def run_plain(args: list[str], **env: str) -> subprocess.CompletedProcess:
    """`python -m cas` without the --store that run_cas adds, with exactly these store variables."""
    clean = {k: v for k, v in os.environ.items() if k not in ("CAS_STORE", "XDG_DATA_HOME")}
    proc = subprocess.run([sys.executable, "-m", "cas", "--quiet", *args], capture_output=True,
                          env={**clean, "PYTHONPATH": str(ROOT), **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc


def made_stores(*roots: Path) -> list[Path]:
    return [root for root in roots if (root / "index" / "data.mdb").exists()]


def test_store_option_beats_cas_store_beats_xdg_data_home(tmp_path):
    flag, env_store, xdg, home = (tmp_path / n for n in ("flag", "env", "xdg", "home"))
    candidates = (flag, env_store, xdg / "cas", home / ".local" / "share" / "cas")
    run_plain(["--store", str(flag), "init"], CAS_STORE=str(env_store), XDG_DATA_HOME=str(xdg), HOME=str(home))
    assert made_stores(*candidates) == [flag]
    run_plain(["init"], CAS_STORE=str(env_store), XDG_DATA_HOME=str(xdg), HOME=str(home))
    assert made_stores(*candidates) == [flag, env_store]
    out = run_plain(["init"], XDG_DATA_HOME=str(xdg), HOME=str(home)).stdout.decode()
    assert made_stores(*candidates) == [flag, env_store, xdg / "cas"]
    assert out.strip() == f"initialized store at {xdg / 'cas'}"
    run_plain(["init"], HOME=str(home))
    assert made_stores(*candidates) == list(candidates)


def test_init_cache_size_takes_units_and_refuses_bare_small_numbers(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert_user_error(run_cas(store, "init", "--cache-size", "50", check=False), "--cache-size", "16777216 bytes")
    assert not store.exists(), "a refused option leaves no store behind"
    out = run_cas(store, "init", "--cache-size", "1.5G").stdout.decode()
    assert json.loads((store / "config.json").read_text())["cache_size"] == 3 << 29, out


# -- remote bytes: S3 remote, links, pull and push -------------------------------------------------
@pytest.mark.parametrize("fault", ["missing bucket", "denied", "unreachable"])
def test_init_s3_that_fails_its_check_is_one_line_and_leaves_no_store(tmp_path: Path, s3_endpoint: str, http_server,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      fault: str) -> None:
    import socket
    import time

    from tests.conftest import FAST_NET
    for name, value in FAST_NET.items():
        monkeypatch.setenv(name, value)
    if fault == "missing bucket":
        endpoint, said = s3_endpoint, f'S3 bucket "the-bucket" does not exist at {s3_endpoint} (HTTP 404 Not Found)'
    elif fault == "denied":  # what S3 answers wrong credentials
        http_server.faults.status["/the-bucket"] = [403] * 10
        endpoint = http_server.url("")
        said = f"s3://the-bucket at {endpoint}: access denied (HTTP 403 Forbidden): check the S3 credentials"
    else:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once closed
        said = f"s3://the-bucket: cannot connect to the S3 endpoint {endpoint}"
    started = time.monotonic()
    proc = run_cas(tmp_path / "store", "init", "--s3", "s3://the-bucket/x", "--endpoint-url", endpoint, check=False)
    assert time.monotonic() - started < 60
    line = assert_user_error(proc, said)
    assert "404 404" not in line
    assert not (tmp_path / "store").exists()


def test_clone_makes_a_new_store_at_path_as_git_clone(tmp_path: Path, s3_endpoint: str, bucket: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import FAST_NET
    for key, value in FAST_NET.items():
        monkeypatch.setenv(key, value)
    write_images(tmp_path / "src" / "train", 3)
    origin, url = tmp_path / "origin", f"s3://{bucket}/team"
    run_cas(origin, "init", "--s3", url, "--endpoint-url", s3_endpoint)
    for project in ("p", "q"):
        run_cas(origin, "import", str(tmp_path / "src"), "--project", project)
        run_cas(origin, "push", project)
    fresh = tmp_path / "fresh" / "store"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "cas", "clone", url, str(fresh), "--endpoint-url", s3_endpoint],
                          capture_output=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert [line.split(" at ")[0] for line in lines[:2]] == ["cloned p", "cloned q"] and "3 items" in lines[0]
    assert lines[2] == f"new store at {fresh} with remote {url}; use it with --store {fresh} or CAS_STORE={fresh}"
    assert lines[3:] == []
    assert run_cas(fresh, "ls").stdout.decode().splitlines() == ["p\timages\t1 dataset\t3 items",
                                                                 "q\timages\t1 dataset\t3 items"]
    assert_user_error(run_cas(fresh, "clone", url, str(fresh), "--endpoint-url", s3_endpoint, check=False),
                      f"{fresh} exists and is not an empty directory")
    only = tmp_path / "only"
    run_cas(only, "clone", url, str(only), "-p", "q", "--endpoint-url", s3_endpoint, init=False)
    assert run_cas(only, "ls").stdout.decode().splitlines() == ["q\timages\t1 dataset\t3 items"]
    assert_user_error(run_cas(tmp_path / "none", "clone", url, str(tmp_path / "none"), "-p", "nope",
                              "--endpoint-url", s3_endpoint, check=False, init=False), "shares no project nope")
    assert not (tmp_path / "none").exists()


def test_links_pull_push_and_stats(tmp_path: Path, http_server, s3_endpoint: str, bucket: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import FAST_NET, jpeg_bytes
    for key, value in FAST_NET.items():
        monkeypatch.setenv(key, value)
    store = tmp_path / "store"
    images = {f"/{i}.jpg": jpeg_bytes(30, 20 + i) for i in range(4)}
    http_server.files.update(images)
    (tmp_path / "urls.csv").write_text("url,name\n" + "".join(f"{http_server.url(p)},n{p[1:]}\n" for p in images))
    out = run_cas(store, "import", str(tmp_path / "urls.csv"), "--project", "web", "--dataset", "d")
    assert "4 links" in out.stdout.decode()
    stats = json.loads(run_cas(store, "stats", "--json").stdout)
    assert stats["locations"]["link"]["blobs"] == 4 and stats["locations"]["link"]["unknown_size"] == 0
    assert run_cas(store, "get", "web/d/n0.jpg").stdout == images["/0.jpg"]
    out = run_cas(store, "pull", "web/d").stdout.decode()
    assert "pulled 4 link items" in out
    run_cas(store, "init", "--s3", f"s3://{bucket}/p", "--endpoint-url", s3_endpoint)
    out = run_cas(store, "push").stdout.decode()
    assert "pushed" in out and f"s3://{bucket}/p" in out
    text = run_cas(store, "stats").stdout.decode()
    assert "s3pack blobs" in text and "local blobs" not in text and "hit rate" in text
    assert run_cas(store, "get", "web/d/n3.jpg").stdout == images["/3.jpg"]
    assert "clean" in run_cas(store, "fsck").stdout.decode()


def test_link_with_bad_scheme_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "urls.txt").write_text("gopher://127.0.0.1/a.jpg\n")
    proc = run_cas(tmp_path / "store", "import", str(tmp_path / "urls.txt"), "--project", "p", "--format", "links",
                   check=False)
    assert_user_error(proc, "urls.txt:1", "gopher")


def test_every_command_works_under_an_address_space_limit(tmp_path, sample):
    """`ulimit -v 4000000` (shared clusters set one): the index maps what the limit allows, not 1 TiB."""
    import resource

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4_000_000 << 10, resource.getrlimit(resource.RLIMIT_AS)[1]))

    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for args in (["init"], ["import", str(sample), "--project", "demo"], ["ls"], ["ls", "demo/train"],
                 ["stats"], ["fsck"], ["export", "demo", str(tmp_path / "out")], ["gc"]):
        proc = subprocess.run([sys.executable, "-m", "cas", "--store", str(store), "--quiet", *args],
                              capture_output=True, env=env, preexec_fn=limited, timeout=300)
        assert proc.returncode == 0, f"cas {args[0]} under ulimit -v: {proc.stderr.decode()[-500:]}"
    assert stats(store)["items"] == 8


def test_read_commands_work_on_a_store_on_a_read_only_file_system(tmp_path, sample, http_server):
    """Read commands open the index read-only and take no lock; a change is one clear line.
    A link read for the first time there is fetched and checked, its digest not recorded."""
    import ctypes
    import errno as errno_codes
    libc = ctypes.CDLL(None, use_errno=True)
    disk = tmp_path / "disk"
    disk.mkdir()
    if libc.mount(b"tmpfs", str(disk).encode(), b"tmpfs", 0, b"size=64m") != 0:
        if ctypes.get_errno() == errno_codes.EPERM:
            pytest.skip("cannot mount a tmpfs here (EPERM: not root), needed for a read-only file system")
        raise OSError(ctypes.get_errno(), "mount -t tmpfs")
    try:
        store = disk / "store"
        run_cas(store, "import", str(sample), "--project", "demo")
        http_server.files["/far.jpg"] = far = (sample / "train/img/street_001.jpg").read_bytes()[::-1]
        (tmp_path / "urls.txt").write_text(http_server.url("/far.jpg") + "\n")
        run_cas(store, "import", str(tmp_path / "urls.txt"), "--project", "web", "--dataset", "d", "--format", "links")
        ms_rdonly, ms_remount = 1, 32
        assert libc.mount(b"tmpfs", str(disk).encode(), b"tmpfs", ms_remount | ms_rdonly, None) == 0
        assert lines(run_cas(store, "ls"))[0] == "demo\timages\t3 datasets\t8 items"
        for _ in range(2):
            assert run_cas(store, "get", "web/d/far.jpg").stdout == far
        assert len(lines(run_cas(store, "ls", "demo/train"))) == 4
        assert stats(store)["items"] == 9
        assert lines(run_cas(store, "fsck"))[-1].endswith("9 items: clean")
        run_cas(store, "export", "demo", str(tmp_path / "out"))
        assert (tmp_path / "out/train/img/street_001.jpg").read_bytes() == \
            (sample / "train/img/street_001.jpg").read_bytes()
        assert run_cas(store, "get", "demo/train/street_001.jpg").stdout == \
            (sample / "train/img/street_001.jpg").read_bytes()
        assert_user_error(run_cas(store, "gc", check=False), "read-only file system")
        assert_user_error(run_cas(store, "import", str(sample), "--project", "x", check=False), "Read-only file system")
    finally:
        libc.umount2(str(disk).encode(), 2)


def _group_members(pgid: int) -> int:
    """Processes of process group `pgid` other than its leader (the forkserver, workers)."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != pgid:
            try:
                count += os.getpgid(int(entry)) == pgid
            except OSError:
                pass
    return count


def test_ctrl_c_during_an_import_is_one_line_and_exit_130(tmp_path):
    """Ctrl-C reaches the whole process group (client, forkserver, workers): one line, 130."""
    src = tmp_path / "src"
    write_images(src, 4000)  # past PROCESS_THRESHOLD: worker processes run
    provoked = 0
    for trial in range(3):
        store = tmp_path / f"store{trial}"
        run_cas(store, "init")
        proc = subprocess.Popen([sys.executable, "-m", "cas", "--store", str(store), "-q", "import", str(src),
                                 "-p", "p"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        while _group_members(proc.pid) < 2 + trial and proc.poll() is None:  # forkserver + workers up
            time.sleep(0.01)
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:  # the whole group has exited already
            pass
        _out, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            continue  # it finished first: nothing to interrupt
        provoked += 1
        stderr = err.decode()
        assert proc.returncode == 130 and "Traceback" not in stderr, stderr
        assert [ln for ln in stderr.splitlines() if ln.strip()] == [
            "interrupted: nothing of an unfinished command is visible; `cas gc` reclaims its blobs"], stderr
        with Store(store) as opened:
            assert opened.ns.projects() == []
    assert provoked, "no trial was interrupted mid-import"
