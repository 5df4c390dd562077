"""Mutated samples of every import format: an import either succeeds or fails with one
InvalidInput line naming the file; it never raises anything else, never leaves part of a
project behind, and the store stays fsck-clean.

The seed comes from $CAS_FUZZ_SEED (default: a fixed one, so a failure replays); the number
of mutants per format from $CAS_FUZZ_MUTANTS. Every failure message carries the seed, the
mutant's number, the file and the mutation.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from bench.datagen import make_sample_project
from cas import Store
from cas.errors import CasError
from cas.maintenance import fsck
from converters.ingest import detect_format, import_source
from tests.conftest import png_bytes
from tests.converters import samples

SEED = int(os.environ.get("CAS_FUZZ_SEED", "20261202"))
MUTANTS = int(os.environ.get("CAS_FUZZ_MUTANTS", "110"))  # per format; 10 formats: 1,100 a run

# Values a hostile or broken writer puts where a number, string, list or object belongs.
RAW_VALUES = ["null", "true", "-1", "0", "2147483648", "-1e308", "1e400", "-1e400", "NaN", "Infinity",
              "-Infinity", '""', '"x"', '"\\ud800"', '"../../../../etc/passwd"', "[]", "{}", "[[]]",
              '{"a": 1}', '[1, "a", null]', "9" * 5000, "[" * 3000 + "]" * 3000, '"' + "a" * 100_000 + '"',
              "0.5", '"0"', "[0, 0, 0, 0]"]
TOKENS = ["nan", "inf", "-inf", "-1", "1e400", "9" * 5000, "", "0x10", "\xff", "1,5", "\x00", "-0", "1e-400",
          "../../x.jpg", "/etc/passwd", "9999999999"]


def _raw_json_mutant(rng: random.Random, data: bytes) -> bytes:
    """Replace one value (or delete one key) of a JSON document, keeping the rest intact."""
    doc = json.loads(data)
    slots: list[tuple[object, object]] = []

    def visit(node: object, depth: int) -> None:
        if depth > 12 or len(slots) > 5000:
            return
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            slots.append((node, key))
            visit(child, depth + 1)

    visit(doc, 0)
    if not slots:
        return rng.choice(RAW_VALUES).encode()
    parent, key = rng.choice(slots)
    if isinstance(parent, dict) and rng.random() < 0.25:
        del parent[key]
        return json.dumps(doc).encode()
    parent[key] = "\x00RAW\x00"  # type: ignore[index]
    return json.dumps(doc).replace('"\\u0000RAW\\u0000"', rng.choice(RAW_VALUES), 1).encode()


def _text_mutant(rng: random.Random, data: bytes) -> bytes:
    """Swap one whitespace-separated token for a bad one, or break a line."""
    text = data.decode("utf-8", "replace")
    tokens = re.split(r"(\s+|[<>])", text)
    spots = [i for i, t in enumerate(tokens) if t.strip() and t not in "<>"]
    if not spots:
        return data + rng.choice(TOKENS).encode("utf-8", "surrogateescape")
    i = rng.choice(spots)
    choice = rng.random()
    if choice < 0.7:
        tokens[i] = rng.choice(TOKENS)
    elif choice < 0.85:
        del tokens[i]
    else:
        tokens[i] = tokens[i] * rng.randint(2, 50)
    return "".join(tokens).encode("utf-8", "surrogateescape")


def _byte_mutant(rng: random.Random, data: bytes) -> bytes:
    """Truncate, flip bytes, insert invalid UTF-8 or a NUL, or nest 2,000 deep."""
    choice = rng.randrange(6)
    at = rng.randrange(len(data) + 1)
    if choice == 0:
        return data[:at]
    if choice == 1:
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            if out:
                out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    if choice == 2:
        return data[:at] + b"\xff\xfe\xc0" + data[at:]
    if choice == 3:
        return data[:at] + b"\x00" + data[at:]
    if choice == 4:
        return data[:at] + b"[" * 2000 + b"<a>" * 2000 + data[at:]
    return b""


def _png_mutant(rng: random.Random, data: bytes) -> bytes:
    """A mask replaced by another image: wrong size, wrong mode, or garbage."""
    choice = rng.randrange(4)
    if choice == 0:
        return png_bytes(rng.randint(1, 90), rng.randint(1, 90))
    if choice == 1:
        buf = io.BytesIO()
        mode = rng.choice(["1", "I", "F", "RGBA", "LA", "I;16", "P", "CMYK"])
        Image.new(mode, (40, 30)).save(buf, "TIFF" if mode in ("I", "F", "CMYK") else "PNG")
        return buf.getvalue()
    return _byte_mutant(rng, data)


def mutate(rng: random.Random, path: Path) -> str:
    """Mutate one file in place; returns what was done."""
    data = path.read_bytes()
    if path.suffix == ".json" and rng.random() < 0.75:
        try:
            path.write_bytes(_raw_json_mutant(rng, data))
            return "json value"
        except ValueError:
            pass
    if path.suffix in (".txt", ".xml", ".yaml", ".csv", ".json") and rng.random() < 0.6:
        path.write_bytes(_text_mutant(rng, data))
        return "text token"
    if path.suffix == ".png" and rng.random() < 0.5:
        path.write_bytes(_png_mutant(rng, data))
        return "png image"
    path.write_bytes(_byte_mutant(rng, data))
    return "bytes"


def _links_sample(root: Path) -> Path:
    images = samples.labelme_sample(root / "files")
    lines = [f"file://{p}" for p in sorted(images.glob("*.jpg"))]
    (root / "list.csv").write_text("url,name\n" + "".join(f"{u},n{i}.jpg\n" for i, u in enumerate(lines)))
    return root / "list.csv"


def _images_sample(root: Path) -> Path:
    (root / "night").mkdir(parents=True)
    (root / "a.png").write_bytes(png_bytes(20, 10))
    (root / "night" / "b.png").write_bytes(png_bytes(30, 12))
    return root


def _videos_sample(root: Path) -> Path:
    from tests.converters.test_videos import write_video
    write_video(root / "clips" / "a.mp4", 4)
    write_video(root / "clips" / "night" / "b.mkv", 3, size=(32, 24))
    return root / "clips"


def _exported(fmt: str) -> Callable[[Path], Path]:
    """The sample project as our exporter of `fmt` writes it (with its cas_names.json)."""
    def sample(root: Path) -> Path:
        from converters import FORMATS
        with Store.init(root / "store") as store:
            import_source(store, make_sample_project(root / "sly"), "p", "sly")
            FORMATS[fmt].write(store, "p", root / "p")
        return root / "p"
    return sample


# format -> (write the sample under a folder and return what to import, names of files to mutate)
SAMPLES: dict[str, Callable[[Path], Path]] = {
    "sly": lambda root: make_sample_project(root / "p"),
    "coco": lambda root: samples.coco_sample(root / "p", n=2),
    "yolo": lambda root: samples.yolo_sample(root / "p", random.Random(SEED).choice(["detect", "segment", "pose"])),
    "voc": lambda root: samples.voc_sample(root / "p"),
    "labelme": lambda root: samples.labelme_sample(root / "p"),
    "cityscapes": lambda root: samples.cityscapes_sample(root / "p"),
    "masks": lambda root: samples.masks_sample(root / "p", machine=random.Random(SEED).random() < 0.5),
    "images": _images_sample,
    "links": _links_sample,
    "videos": _videos_sample,
    "kitti": _exported("kitti"),
    "cvat": _exported("cvat"),
    "labelstudio": _exported("labelstudio"),
    "imagenet": _exported("imagenet"),
}


def _targets(src: Path) -> list[Path]:
    """Annotation and config files first; images (mutated less often) only where they are data."""
    if src.is_file():
        return [src]
    files = sorted(p for p in src.rglob("*") if p.is_file())
    text = [p for p in files if p.suffix in (".json", ".txt", ".xml", ".yaml", ".csv")]
    masks = [p for p in files if p.suffix == ".png" and ("mask" in str(p) or "Segmentation" in str(p))]
    return text + masks or files  # images and videos: their media are the data


def _partial(store: Store, project: str) -> bool:
    return project in store.ns.projects()


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_mutants_fail_cleanly_or_import_whole(fmt: str, tmp_path: Path) -> None:
    rng = random.Random(f"{SEED}-{fmt}")
    template = SAMPLES[fmt](tmp_path / "template")
    store = Store.init(tmp_path / "store")
    store.config.allow_roots = [str(tmp_path)]  # file:// links may point into the samples
    failures: list[str] = []
    outcomes = {"imported": 0, "refused": 0}
    try:
        for n in range(MUTANTS):
            work = tmp_path / f"m{n}"
            if template.is_dir():
                shutil.copytree(template, work / template.name)
            else:  # a link list: its URLs point into the template's folder
                work.mkdir()
                shutil.copy(template, work / template.name)
            src = work / template.name
            targets = _targets(src)
            victims = rng.sample(targets, k=min(len(targets), rng.choice([1, 1, 1, 2])))
            what = [f"{v.relative_to(work)} ({mutate(rng, v)})" for v in victims]
            project = f"p{n}"
            try:
                if rng.random() < 0.2:
                    detect_format(src)
                import_source(store, src, project, fmt, skip_invalid=rng.random() < 0.3,
                              reader_options={"head": True} if fmt == "links" else None)
                outcomes["imported"] += 1
            except CasError as e:
                outcomes["refused"] += 1
                if "\n" in str(e) or not str(e).strip():
                    failures.append(f"mutant {n} {what}: not one line: {str(e)[:300]!r}")
                if _partial(store, project):
                    failures.append(f"mutant {n} {what}: failed import left project {project}")
            except Exception as e:  # noqa: BLE001 - the point: nothing else may escape
                frames = [f for f in traceback.extract_tb(e.__traceback__) if "/site-packages/" not in f.filename]
                where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
                failures.append(f"{type(e).__name__} at {where}: mutant {n} {what}: {str(e)[:200]}")
            shutil.rmtree(work)
        report = fsck.check(store, verify=False)
        assert not report.problems, [str(p) for p in report.problems][:5]
    finally:
        store.close()
    kinds = {f.split(": mutant")[0]: f for f in failures}  # one example per exception and place
    assert not failures, f"seed {SEED}, {fmt}, {len(failures)} of {MUTANTS}:\n" + "\n".join(kinds.values())
    assert outcomes["refused"] > 0 and outcomes["imported"] > 0, outcomes  # the mutants bite, and not all
