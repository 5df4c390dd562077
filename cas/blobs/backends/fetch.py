"""Ranged reads of remote bytes: HTTP(S) with urllib3, S3 with boto3, and local files.

A fetcher streams an object's bytes from an offset to its end in one request; the reader
(`cas.blobs.remote_reader`) decides how far to read, and reopens at the offset it reached when a
stream breaks. Every failure becomes a `RemoteError` naming the URL and the cause.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol

from cas import errors
from cas.blobs.backends.addresses import resolved_refusal
from cas.config import NetOptions
from cas.errors import CasError

if TYPE_CHECKING:  # urllib3 (30 ms to load) only when a link is read over HTTP
    import urllib3

CHUNK = 4 << 20
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class RemoteError(CasError):
    """A remote read failed: names the URL and the status or cause."""


class RemoteChanged(RemoteError):
    """The remote object is not the one recorded (ETag or size differ)."""


class StreamBroken(RemoteError):
    """A transfer broke after it started; the reader may reopen at the byte it reached.
    (Failures to start one were already retried by urllib3 or botocore.)"""


@dataclass
class Stream:
    """Bytes of a remote object from `start` to its end."""

    total: int  # size of the whole object
    etag: str | None
    chunks: Iterator[bytes]
    close: Any


class Fetcher(Protocol):
    url: str

    def head(self) -> tuple[int, str | None]:
        """Size and ETag, without the content."""

    def open(self, start: int, end: int | None = None) -> Stream:
        """Stream the bytes from `start` to `end` (default: the end of the object)."""


def _total_from_range(content_range: str | None) -> int | None:
    match = re.search(r"/(\d+)\s*$", content_range or "")
    return int(match.group(1)) if match else None


def _range(start: int, end: int | None) -> str:
    return f"bytes={start}-{end - 1 if end is not None else ''}"


def _limit(chunks: Iterator[bytes], start: int, end: int | None) -> Iterator[bytes]:
    """At most `end - start` bytes of `chunks` (a server may send more than the range)."""
    if end is None:
        yield from chunks
        return
    left = end - start
    for data in chunks:
        if len(data) >= left:
            yield data[:left]
            return
        left -= len(data)
        yield data


# -- HTTP(S) -------------------------------------------------------------------------------------
_pools: dict[NetOptions, urllib3.PoolManager] = {}
_pools_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """A child starts with no pools: the parent's connections (sockets shared with it) are
    never used here."""
    global _pools, _pools_lock
    _pools, _pools_lock = {}, threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def http_pool(net: NetOptions) -> urllib3.PoolManager:
    """One connection pool per process and options (keep-alive across small reads)."""
    import urllib3
    with _pools_lock:
        pool = _pools.get(net)
        if pool is None:
            retry = urllib3.Retry(total=net.retries, connect=net.retries, read=net.retries, status=net.retries,
                                  backoff_factor=net.backoff, status_forcelist=RETRY_STATUS,
                                  allowed_methods=frozenset({"GET", "HEAD"}), raise_on_status=False)
            pool = _pools[net] = urllib3.PoolManager(
                num_pools=64, maxsize=32, retries=retry,
                timeout=urllib3.Timeout(connect=net.connect_timeout, read=net.read_timeout))
        return pool


def describe_http_error(url: str, e: BaseException, net: NetOptions) -> RemoteError:
    from urllib3.exceptions import (
        ConnectTimeoutError,
        MaxRetryError,
        NameResolutionError,
        NewConnectionError,
        ProtocolError,
        ReadTimeoutError,
        ResponseError,
    )
    reason = e.reason if isinstance(e, MaxRetryError) and e.reason is not None else e
    if isinstance(reason, NameResolutionError):
        why = "host name did not resolve (DNS)"
    elif isinstance(reason, NewConnectionError):  # before ConnectTimeoutError, its base class
        why = "connection refused" if "refused" in str(reason).lower() else f"cannot connect ({errors.reason(reason)})"
    elif isinstance(reason, ConnectTimeoutError):
        why = f"connect timed out after {net.connect_timeout:g} s"
    elif isinstance(reason, ReadTimeoutError):
        why = f"read timed out after {net.read_timeout:g} s"
    elif isinstance(reason, ResponseError):
        why = f"gave up after {net.retries} retries ({errors.reason(reason)})"
    elif isinstance(reason, ProtocolError):
        why = "connection broken during the transfer"
    else:
        why = errors.reason(reason)
    retried = f" (after {net.retries} retries)" if isinstance(e, MaxRetryError) and net.retries else ""
    return RemoteError(f"{url}: {why}{retried}")


class HttpFetcher:
    def __init__(self, url: str, net: NetOptions) -> None:
        self.url = url
        self.net = net
        self.pool = http_pool(net)

    def _request(self, method: str, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
        from urllib3.exceptions import HTTPError
        from urllib3.util import parse_url
        parts = parse_url(self.url)
        why = resolved_refusal(parts.host or "", parts.port or (443 if parts.scheme == "https" else 80),
                               self.net.public_links_only)
        if why:
            raise RemoteError(f"{self.url}: {why}; refused (see README, Link addresses)")
        try:
            resp = self.pool.request(method, self.url, headers=headers, preload_content=False)
        except HTTPError as e:
            raise describe_http_error(self.url, e, self.net) from None
        if resp.status >= 400 and resp.status != 416:
            resp.release_conn()
            raise RemoteError(f"{self.url}: HTTP {resp.status} {resp.reason or ''}".rstrip())
        return resp

    def head(self) -> tuple[int, str | None]:
        resp = self._request("HEAD", {})
        resp.release_conn()
        length = resp.headers.get("Content-Length")
        if length is None:
            raise RemoteError(f"{self.url}: the server gives no Content-Length (import with --no-head)")
        return int(length), resp.headers.get("ETag")

    def open(self, start: int, end: int | None = None) -> Stream:
        resp = self._request("GET", {"Range": _range(start, end)})
        etag = resp.headers.get("ETag")
        if resp.status == 416:  # start at or past the end (an empty object)
            resp.release_conn()
            total = _total_from_range(resp.headers.get("Content-Range"))
            return Stream(total if total is not None else start, etag, iter(()), lambda: None)
        if resp.status == 206:
            total = _total_from_range(resp.headers.get("Content-Range"))
        else:  # 200: the server ignored Range; skip to `start`
            total = int(resp.headers["Content-Length"]) if "Content-Length" in resp.headers else None
        if total is None:
            resp.release_conn()
            raise RemoteError(f"{self.url}: the server gives no object size (Content-Range/Content-Length)")
        skip = start if resp.status == 200 else 0
        return Stream(total, etag, _limit(self._chunks(resp, skip), start, end), resp.release_conn)

    def _chunks(self, resp: urllib3.BaseHTTPResponse, skip: int) -> Iterator[bytes]:
        from urllib3.exceptions import HTTPError
        try:
            while True:
                data = resp.read(CHUNK)
                if not data:
                    return
                if skip:
                    cut = min(skip, len(data))
                    data, skip = data[cut:], skip - cut
                if data:
                    yield data
        except (HTTPError, OSError) as e:
            raise StreamBroken(str(describe_http_error(self.url, e, self.net))) from None


# -- S3 -----------------------------------------------------------------------------------------
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})  # what S3 says of an absent object


def s3_error_code(e: BaseException) -> str | None:
    """The error code of a botocore ClientError ("404", "NoSuchKey", "AccessDenied"...), else None."""
    return getattr(e, "response", {}).get("Error", {}).get("Code")


def s3_not_found(e: BaseException) -> bool:
    """Whether S3 answered that the object does not exist (the one place that decides it)."""
    return s3_error_code(e) in NOT_FOUND_CODES


def _status_words(status: object, code: str) -> str:
    """'HTTP 404 Not Found', with S3's code when it says more ('HTTP 404 Not Found (NoSuchKey)')."""
    try:
        phrase = HTTPStatus(int(status)).phrase  # type: ignore[call-overload]
    except (TypeError, ValueError):
        phrase = ""
    words = f"HTTP {status} {phrase}".rstrip()
    return words + (f" ({code})" if code and code != str(status) else "")


def describe_s3_error(url: str, e: BaseException, endpoint: str | None = None) -> RemoteError:
    """A botocore error as one line naming the bucket or key (`url`), the status in words and,
    when given, the endpoint."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
    from botocore.exceptions import ReadTimeoutError as BotoReadTimeout
    bucket = url[5:].split("/", 1)[0] if url.startswith("s3://") else url
    at = f" at {endpoint}" if endpoint else ""
    if isinstance(e, ClientError):
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        code = e.response.get("Error", {}).get("Code", "")
        words = _status_words(status, code)
        if code == "NoSuchBucket" or (url == f"s3://{bucket}" and status == 404):
            return RemoteError(f'S3 bucket "{bucket}" does not exist{at} ({words})')
        if status == 403:
            return RemoteError(f"{url}{at}: access denied ({words}): check the S3 credentials "
                               "(boto3's chain: environment, profile, instance role) and the bucket's policy")
        return RemoteError(f"{url}{at}: {words}")
    if isinstance(e, NoCredentialsError):
        return RemoteError(f"{url}{at}: no S3 credentials found (boto3's chain: environment, profile, instance role)")
    if isinstance(e, EndpointConnectionError):
        return RemoteError(f"{url}: cannot connect to the S3 endpoint {endpoint or e.kwargs.get('endpoint_url', '')}"
                           .rstrip())
    if isinstance(e, BotoReadTimeout):
        return RemoteError(f"{url}{at}: read timed out")
    return RemoteError(f"{url}{at}: {errors.reason(e)}")


class S3Fetcher:
    """One object of a bucket, through a boto3 client (standard credential chain)."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.url = f"s3://{bucket}/{key}"

    def head(self) -> tuple[int, str | None]:
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self.key)
        except Exception as e:  # noqa: BLE001 - botocore's tree; described below
            raise describe_s3_error(self.url, e) from None
        return int(resp["ContentLength"]), resp.get("ETag")

    def open(self, start: int, end: int | None = None) -> Stream:
        from botocore.exceptions import ClientError
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self.key, Range=_range(start, end))
        except ClientError as e:
            if s3_error_code(e) == "InvalidRange":
                size = e.response.get("Error", {}).get("ActualObjectSize")
                return Stream(int(size) if size is not None else start, None, iter(()), lambda: None)
            raise describe_s3_error(self.url, e) from None
        except Exception as e:  # noqa: BLE001 - botocore's other errors, described
            raise describe_s3_error(self.url, e) from None
        total = _total_from_range(resp.get("ContentRange"))
        if total is None:
            total = start + int(resp["ContentLength"])
        body = resp["Body"]
        return Stream(total, resp.get("ETag"), self._chunks(body), body.close)

    def _chunks(self, body: Any) -> Iterator[bytes]:
        try:
            while data := body.read(CHUNK):
                yield data
        except Exception as e:  # noqa: BLE001 - a broken body stream (urllib3, botocore), described
            raise StreamBroken(str(describe_s3_error(self.url, e))) from None


# -- local files (file:// links) ------------------------------------------------------------------
class FileFetcher:
    def __init__(self, url: str, path: str) -> None:
        self.url = url
        self.path = path

    def _stat(self) -> os.stat_result:
        try:
            return os.stat(self.path)
        except OSError as e:
            raise RemoteError(f"{self.url}: {e.strerror}") from None

    def head(self) -> tuple[int, str | None]:
        st = self._stat()
        return st.st_size, f"{st.st_mtime_ns:x}-{st.st_size:x}"

    def open(self, start: int, end: int | None = None) -> Stream:
        try:
            f = open(self.path, "rb")
        except OSError as e:
            raise RemoteError(f"{self.url}: {e.strerror}") from None
        st = os.fstat(f.fileno())
        f.seek(start)
        chunks = _limit(iter(lambda: f.read(CHUNK), b""), start, end)
        return Stream(st.st_size, f"{st.st_mtime_ns:x}-{st.st_size:x}", chunks, f.close)
