"""URL lists: a text file with one URL per line, or a CSV with a `url` column (and an
optional `name` column). Each URL becomes a link item; no content is read, at most a HEAD
per URL for its size and ETag (skipped with `head=False`)."""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from cas.blobs.backends.fetch import RemoteError
from cas.blobs.links import fetcher_for, split_url
from cas.errors import InvalidInput
from cas.ingest.session import ImportSession
from cas.records import UNKNOWN_SIZE

from .contract import Detection, fits, no

SUFFIXES = (".txt", ".csv", ".tsv", ".lst")
HEAD_WORKERS = 16
HEAD_CHUNK = 256
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S")  # a URL, with // or not (file:/x, s3:x)

Row = tuple[int, str, str | None]  # line number, url, name given in the file
Named = tuple[int, str, str]  # line number, url, item name


READS = ("media",)
LAYOUTS = "a .txt, .csv, .tsv or .lst list of URLs (http, https, s3, file): link items, fetched on read"


def detect(src: Path) -> Detection:
    if not src.is_file() or src.suffix.lower() not in SUFFIXES:
        return no(f"not a {' / '.join(SUFFIXES)} file of URLs")
    with open(src, encoding="utf-8", errors="replace") as f:
        for line in itertools.islice(f, 50):
            line = line.strip()
            if line and not line.startswith("#"):
                if _URL.match(line) or "url" in [c.strip().lower() for c in re.split(r"[,;\t]", line)]:
                    return fits(f"{src.name} lists URLs")
                break
    return no(f"{src.name} does not start with a URL or a 'url' column")


def count(src: Path) -> int:
    with open(src, "rb") as f:
        return sum(1 for line in f if line.strip() and not line.startswith(b"#"))


def rows(src: Path) -> Iterator[Row]:
    """(line, url, name) of every entry; a CSV needs a header with a `url` column. Bad
    UTF-8 or CSV is one InvalidInput naming the line."""
    line = 0
    try:
        with open(src, encoding="utf-8-sig", newline="") as f:
            first = ""
            for first in f:  # `line` counts on: an error below names it
                line += 1
                if first.strip() and not first.startswith("#"):
                    break
            if _SCHEME.match(first.strip()):  # a plain list (file:/x has a scheme, not a CSV header)
                f.seek(0)
                for line, text in enumerate(f, 1):
                    text = text.strip()
                    if text and not text.startswith("#"):
                        yield line, text, None
                return
            f.seek(0)
            try:
                dialect: Any = csv.Sniffer().sniff(first, delimiters=",;\t") if first.strip() else csv.excel
            except csv.Error:
                dialect = csv.excel
            reader = csv.reader(f, dialect)
            header = [c.strip().lower() for c in next(reader, [])]
            if "url" not in header:
                raise InvalidInput(str(src), "expected one URL per line, or a CSV header with a 'url' column",
                                   "line 1")
            url_col, name_col = header.index("url"), header.index("name") if "name" in header else None
            for record in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in record):
                    continue
                url = record[url_col].strip() if url_col < len(record) else ""
                name = record[name_col].strip() if name_col is not None and name_col < len(record) else None
                yield line, url, name or None
    except UnicodeDecodeError as e:
        raise InvalidInput(str(src), f"not UTF-8 text (byte 0x{e.object[e.start]:02x})", f"after line {line}") from None
    except csv.Error as e:
        raise InvalidInput(str(src), f"unreadable CSV ({e})", f"line {line + 1}") from None


def name_from_url(url: str) -> str:
    return unquote(split_url(url).path.rstrip("/").rsplit("/", 1)[-1])


def read(src: Path, session: ImportSession, dataset: str | None, head: bool = True) -> dict[str, int]:
    """Queue one link item per URL into `dataset` (default: the list's file name)."""
    dataset = dataset or src.stem
    store = session.store
    seen: dict[str, int] = {}  # item name -> line, to refuse two URLs with one name

    def sized(chunk: list[Named]) -> list[tuple[Named, tuple[int, str | None] | InvalidInput]]:
        out: list[tuple[Named, tuple[int, str | None] | InvalidInput]] = []
        for row in chunk:
            try:
                fetcher = fetcher_for(row[1], store.net, store.config.allow_roots, store.config.s3)
                out.append((row, fetcher.head()))
            except (RemoteError, InvalidInput) as e:
                out.append((row, InvalidInput(f"{src}:{row[0]}", str(e))))
        return out

    def checked() -> Iterator[Named]:
        for number, url, name in rows(src):
            name = name or name_from_url(url)
            if not url:
                session.reject(InvalidInput(f"{src}:{number}", "empty url"))
                continue
            if not name:
                session.reject(InvalidInput(f"{src}:{number}",
                                            f"no file name in URL {url[:200]} (add a 'name' column)"))
                continue
            if name in seen:
                session.reject(InvalidInput(f"{src}:{number}", f"item name {name!r} is already used on line "
                                                               f"{seen[name]} (add a 'name' column)"))
                continue
            seen[name] = number
            yield number, url, name

    if not head:
        session.add_links(dataset, ((name, url, UNKNOWN_SIZE, None, number) for number, url, name in checked()),
                          str(src))
        return {}
    pending = checked()
    chunks = iter(lambda: list(itertools.islice(pending, HEAD_CHUNK)), [])
    with ThreadPoolExecutor(HEAD_WORKERS, thread_name_prefix="cas-head") as pool:
        while window := list(itertools.islice(chunks, 4 * HEAD_WORKERS)):  # bounded: memory stays flat
            for results in pool.map(sized, window):
                headed = []
                for (number, url, name), outcome in results:
                    if isinstance(outcome, InvalidInput):
                        session.reject(outcome)
                    else:
                        headed.append((name, url, *outcome, number))
                session.add_links(dataset, headed, str(src))
    return {}
