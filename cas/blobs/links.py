"""Link entries: items whose bytes stay at a URL. URL checks, link ids, fetchers."""

from __future__ import annotations

import functools
import os
import re
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, unquote, urlsplit

import xxhash

from cas.blobs.backends.addresses import check_host_literal
from cas.config import NetOptions, S3Remote
from cas.errors import InvalidInput
from cas.ids import BlobId

if TYPE_CHECKING:
    from cas.blobs.backends.fetch import Fetcher

SCHEMES = ("http", "https", "s3", "file")
MAX_URL = 4096
_LINK_SEED = 0x6C696E6B  # "link": link ids are digests of the URL, kept apart from content digests
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# scheme://host[:port]/path with nothing urlsplit treats specially (query, fragment, user info,
# IPv6 brackets, whitespace it strips): split by this match, with urlsplit's result
_PLAIN_URL = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*)://([^/?#@\[\]\s\\]*)(/[^?#\s\\]*)?\Z")
# A URL whose checks depend on its scheme and host alone (see UrlChecker): lower-case http,
# https or s3, a host, a path without control characters, spaces, query or fragment
_CHECKED_ONCE = re.compile(r"(https?|s3)://([^/?#@\[\]\x00-\x20\x7f\\]+)(/[^?#\x00-\x20\x7f\\]*)?\Z")
MAX_ORIGINS = 4096


@functools.lru_cache(maxsize=64)  # a link's name and its check split the same URL one after the other
def split_url(url: str) -> SplitResult:
    """`urllib.parse.urlsplit(url)`, twice as fast for a plain URL (an import of a million
    links splits a million); anything else goes to urlsplit."""
    plain = _PLAIN_URL.match(url)
    if plain is None:
        return urlsplit(url)
    return SplitResult(plain[1].lower(), plain[2], plain[3] or "", "", "")


@functools.lru_cache(maxsize=4096)  # a list of a million URLs usually names a handful of hosts
def _host_of(netloc: str) -> str:
    """The host of a URL's netloc, as `SplitResult.hostname` gives it ('' for none)."""
    return SplitResult("", netloc, "", "", "").hostname or ""


def link_id(url: str) -> BlobId:
    """The id of a link entry: one per URL, so the same URL imported twice is one entry."""
    return bytes.__new__(BlobId, xxhash.xxh3_128_digest(url.encode(), seed=_LINK_SEED))  # 16 bytes: no check


def check_url(url: str, allow_roots: list[str], label: str = "url", public_only: bool = False) -> str:
    """A link URL from outside: allowed scheme, sane length, no control characters, a host
    that is not a refused address (backends/addresses.py), and file:// only inside one of
    `allow_roots`. Returns it unchanged."""
    if not url or len(url) > MAX_URL:
        raise InvalidInput(label, f"URL must be 1 to {MAX_URL} characters")
    if _CONTROL.search(url):
        raise InvalidInput(label, f"control character in URL {url[:80]!r}")
    parts = split_url(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidInput(label, f"URL scheme {scheme or '(none)'!r} is not allowed (allowed: {', '.join(SCHEMES)}): "
                                  f"{url[:200]}")
    if scheme in ("http", "https", "s3") and not parts.netloc:
        raise InvalidInput(label, f"no host in URL {url[:200]}")
    if scheme in ("http", "https"):
        check_host_literal(_host_of(parts.netloc), public_only, label, url)
    if scheme == "file":
        file_path(url, allow_roots, label)
    return url


class UrlChecker:
    """`check_url` for the URLs of one import, which usually name a handful of hosts: an
    http(s) or s3 URL with nothing special in it (no query, fragment, user info, spaces or
    control characters) is checked in full once per scheme and host, after that by one match."""

    def __init__(self, allow_roots: list[str], public_only: bool = False) -> None:
        self.allow_roots, self.public_only = allow_roots, public_only
        self._origins: set[str] = set()  # 'scheme://host' of URLs that passed

    def __call__(self, url: str, label: str = "url") -> str:
        plain = _CHECKED_ONCE.match(url)
        if plain is not None and len(url) <= MAX_URL and url[:plain.end(2)] in self._origins:
            return url
        check_url(url, self.allow_roots, label, self.public_only)
        if plain is not None and len(self._origins) < MAX_ORIGINS:
            self._origins.add(url[:plain.end(2)])
        return url


def file_path(url: str, allow_roots: list[str], label: str = "url") -> str:
    """The local path of a file:// URL, refused unless it lies under an allowed root."""
    parts = split_url(url)
    if parts.netloc not in ("", "localhost"):
        raise InvalidInput(label, f"file URL names a remote host: {url[:200]}")
    path = os.path.realpath(unquote(parts.path))
    for root in allow_roots:
        root = os.path.realpath(root)
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return path
    where = ", ".join(allow_roots) if allow_roots else "none given"
    raise InvalidInput(label, f"file URL outside the allowed roots ({where}; add one with --allow-root): {url[:200]}")


def fetcher_for(url: str, net: NetOptions, allow_roots: list[str], s3: S3Remote | None = None) -> Fetcher:
    """The fetcher of a link URL (checked again here: the allow-list applies at every read)."""
    from cas.blobs.backends.fetch import FileFetcher, HttpFetcher, S3Fetcher  # urllib3 and boto3: only to read links
    from cas.blobs.backends.s3 import s3_client

    check_url(url, allow_roots, public_only=net.public_links_only)
    parts = split_url(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return HttpFetcher(url, net)
    if scheme == "file":
        return FileFetcher(url, file_path(url, allow_roots))
    # s3://bucket/key links go through the store's S3 endpoint settings when it has them
    client = s3_client(s3.endpoint_url if s3 else None, s3.region if s3 else None, net)
    return S3Fetcher(client, parts.netloc, unquote(parts.path.lstrip("/")))
