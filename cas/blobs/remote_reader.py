"""Reads of a remote blob (S3 object or link URL) with read-ahead into the local cache.

Sequential reads are served by one fill: a streamed GET from the current offset whose
chunks are hashed in order and held in memory for the readers, while a writer thread
puts them into a fill file in the cache (so disk writes are off the read path). The
fill stays at most a window ahead of the highest byte asked for, and the window
doubles each time the reader catches up with it (read-ahead grows on sequential
access; a reader that only wanted the header does not pull the whole object). A
broken stream is reopened at the byte it reached, up to the retry count, so a fault
never hangs a read and never mixes bytes. When the last byte is in, the digest is
checked *before* the final part is served; a verified, fully written fill becomes a
cache entry, a mismatch is an error and is never cached. Reads far ahead of the fill
are single ranged GETs. A blob larger than the whole cache has no fill file: chunks are
dropped once readers are past them, and a read further back is a ranged GET.

Blobs up to SMALL bytes are fetched whole by the first read, in the caller's thread.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from collections.abc import Callable

from cas.blobs.backends.fetch import Fetcher, RemoteChanged, RemoteError, StreamBroken
from cas.blobs.cache import BlobCache, discard
from cas.blobs.hashing import Hasher, hash_bytes
from cas.config import NetOptions
from cas.errors import CorruptBlob
from cas.ids import BlobId

log = logging.getLogger("cas")

SMALL = 4 << 20
FIRST_WINDOW = 4 << 20
MAX_WINDOW = 64 << 20
MAX_UNWRITTEN = 256 << 20  # received bytes held in memory, not yet written (per reader)
KEEP_BEHIND = 4 << 20  # uncached blobs: bytes kept behind the furthest read, for re-reads
WAIT_SLICE = 0.5  # seconds between checks that the fill is still alive

Learn = Callable[[int, str | None, BlobId], None]  # size, etag, digest of a link after a full read


class RemoteReader:
    """The `BlobReader` interface over a fetcher (see module docstring).

    `key` names the cache entry; `expect` is the content digest when known (always for
    S3 blobs; for a link, once a full read recorded it). `size` may be negative for a
    link imported without a HEAD. `etag`, when known, must match every response.
    """

    def __init__(self, fetcher: Fetcher, key: BlobId, size: int, expect: BlobId | None, etag: str | None,
                 cache: BlobCache, net: NetOptions, learn: Learn | None = None) -> None:
        self.fetcher = fetcher
        self.id = key
        self.size = size
        self.expect = expect
        self.etag = etag
        self.cache = cache
        self.net = net
        self.learn = learn
        self.corrupt: str | None = None
        self._cond = threading.Condition()
        self._fd = -1
        self._fill_path = ""
        self._filled = 0  # bytes [0, filled) were received and hashed, in order
        self._written = 0  # bytes [0, written) are in the fill file; the rest of them in _held
        self._held: list[tuple[int, bytes]] = []  # (start, chunk) received and not yet let go, in order
        self._live = 0  # fill and writer threads still running
        # A blob larger than the whole cache is streamed through, never written to disk.
        self._caching = size <= cache.max_bytes
        self._verified = False  # the whole blob is in and matches its digest
        self._want = 0  # highest byte a reader asked for
        self._window = FIRST_WINDOW
        self._error: BaseException | None = None
        self._closed = False
        self._small: bytes | None = None
        self._pos = 0

    # -- the BlobReader interface ------------------------------------------------------------
    @property
    def verifying(self) -> bool:
        return True

    def read_at(self, length: int, offset: int) -> bytes:
        return self.pread(length, offset)

    def pread(self, length: int, offset: int) -> bytes:
        if self.corrupt is not None:
            raise CorruptBlob(self.corrupt)
        if self._small is not None:
            return self._small[offset:offset + length]
        if self._verified and self._written == self.size:  # all of it verified and in the fill file
            return os.pread(self._fd, length, offset)
        if 0 <= self.size <= SMALL:
            self._fetch_small()
            assert self._small is not None  # filled by _fetch_small, or it raised
            return self._small[offset:offset + length]
        return self._read_through_fill(length, offset)

    def read(self, length: int = -1) -> bytes:
        if length < 0:
            length = max(self.size - self._pos, 0) if self.size >= 0 else 1 << 62
        data = self.pread(length, self._pos)
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        chunks = []
        self._pos = 0
        while chunk := self.read(1 << 24):
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            if self._live:  # the last of the fill and writer threads cleans up
                # A finished fill: let the writer land the cache entry (or drop a bad fill) now.
                while self._live and (self._verified or self._error is not None):
                    self._cond.wait()
                return
        self._cleanup()

    def __enter__(self) -> RemoteReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- small blobs: one GET, verify, cache -------------------------------------------------------
    def _fetch_small(self) -> None:
        with self._cond:
            if self._small is not None:
                return
            data, etag = self._get_all()
            self._check_size_etag(len(data) if self.size < 0 else self.size, etag)
            digest = hash_bytes(data)
            self._accept(len(data), etag, digest)
            fd, path = self.cache.new_fill()
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            self.cache.commit(path, self.id, len(data))
            self._small = data
            self._verified = True

    def _get_all(self) -> tuple[bytes, str | None]:
        give_up = time.monotonic() + self.net.deadline
        for attempt in range(self.net.retries + 1):
            try:
                stream = self.fetcher.open(0)
                try:
                    self._check_size_etag(stream.total, stream.etag)
                    data = b"".join(stream.chunks)
                finally:
                    stream.close()
                if len(data) == stream.total:
                    return data, stream.etag
                error = StreamBroken(f"{self.fetcher.url}: connection closed after {len(data)} of "
                                     f"{stream.total} bytes")
            except StreamBroken as e:
                error = e
            pause = self.net.backoff * 2 ** attempt
            if attempt == self.net.retries or time.monotonic() + pause > give_up:
                break
            time.sleep(pause)
        raise error

    # -- large blobs: the fill and the cache writer ---------------------------------------------
    def _read_through_fill(self, length: int, offset: int) -> bytes:
        with self._cond:
            end = offset + length
            if self.size >= 0:
                end = min(end, self.size)
                if offset >= self.size:
                    return b""
            if offset > self._filled + self._window:
                far = True  # far ahead of the fill: a ranged GET of its own
            else:
                far = False
                if end > self._want:
                    self._want = end
                    if self._filled - end < self._window // 2:  # caught up: read further ahead
                        self._window = min(self._window * 2, MAX_WINDOW)
                    self._cond.notify_all()
                if not self._live and self._filled == 0:
                    self._start_fill()
                while not self._ready(end):
                    if self._error is not None:
                        raise self._error
                    if not self._live:
                        raise RemoteError(f"{self.fetcher.url}: read stopped unexpectedly")
                    self._cond.wait(WAIT_SLICE)
                if self.size >= 0:
                    end = min(end, self.size)
                # [offset, on_disk) from the fill file, the rest from memory; without a fill file,
                # bytes read long ago are no longer held and come again by range
                far = not self._caching and offset < self._held_from()
                if not far:
                    on_disk = min(end, self._written)
                    tail = self._from_memory(max(offset, on_disk), end) if end > on_disk else b""
        if far:
            return self._ranged(offset, end)
        head = os.pread(self._fd, on_disk - offset, offset) if on_disk > offset else b""
        return head + tail if head and tail else head or tail

    def _start_fill(self) -> None:
        self._live = 1
        threading.Thread(target=self._fill, name="cas-fill", daemon=True).start()
        if self._caching:
            self._fd, self._fill_path = self.cache.new_fill()
            self._live = 2
            threading.Thread(target=self._write, name="cas-cache-write", daemon=True).start()

    def _held_from(self) -> int:
        """(Under the lock.) The first byte still held in memory."""
        return self._held[0][0] if self._held else self._filled

    def _drop_passed(self) -> None:
        """(Under the lock; only without a fill file.) Let go of chunks readers are well past."""
        while self._held and self._held[0][0] + len(self._held[0][1]) <= self._want - KEEP_BEHIND:
            self._held.pop(0)

    def _ready(self, end: int) -> bool:
        if self._verified:
            return True
        # the final part is served only once the whole blob is verified
        return self._filled >= end and (self.size < 0 or self._filled < self.size)

    def _from_memory(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of the chunks received but not yet written (under the lock)."""
        parts = []
        i = bisect.bisect_right(self._held, start, key=lambda held: held[0]) - 1
        pos = start
        while pos < end:
            chunk_start, chunk = self._held[i]
            parts.append(chunk[pos - chunk_start:end - chunk_start])
            pos = chunk_start + len(chunk)
            i += 1
        return b"".join(parts)

    def _ranged(self, offset: int, end: int) -> bytes:
        stream = self.fetcher.open(offset, end)
        try:
            self._check_size_etag(stream.total, stream.etag)
            return b"".join(stream.chunks)
        finally:
            stream.close()

    def _fill(self) -> None:
        """Receive the blob in order (reopening a broken stream where it stopped), hash it,
        and hand each chunk to the readers and to the cache writer."""
        attempts = 0
        give_up = time.monotonic() + self.net.deadline  # for resuming a broken stream (progress resets it)
        hasher = Hasher()
        try:
            while not self._closed:
                start = self._filled
                try:
                    stream = self.fetcher.open(start)
                    try:
                        self._check_size_etag(stream.total, stream.etag)
                        if start == 0:
                            self.etag = self.etag or stream.etag
                        for chunk in stream.chunks:
                            hasher.update(chunk)
                            with self._cond:
                                if not self._wait_for_room():
                                    return
                                self._held.append((self._filled, chunk))
                                self._filled += len(chunk)
                                self._cond.notify_all()
                            attempts = 0
                            give_up = time.monotonic() + self.net.deadline
                    finally:
                        stream.close()
                    if self._filled == self.size:
                        self._accept(self.size, self.etag, hasher.digest())
                        with self._cond:
                            self._verified = True
                            self._cond.notify_all()
                        return
                    raise StreamBroken(f"{self.fetcher.url}: connection closed after {self._filled} of "
                                       f"{self.size} bytes")
                except StreamBroken as e:
                    attempts += 1
                    if attempts > self.net.retries or time.monotonic() > give_up:
                        raise
                    log.warning("%s; retrying from byte %d (%d/%d)", e, self._filled, attempts, self.net.retries)
                    time.sleep(self.net.backoff * 2 ** (attempts - 1))
        except BaseException as e:  # noqa: BLE001 - handed to the readers, who raise it
            with self._cond:
                self._error = e
                self._cond.notify_all()
        finally:
            self._thread_done()

    def _wait_for_room(self) -> bool:
        """(Under the lock.) Wait while the fill is a window ahead of what readers asked for, or
        holds too much in memory (the cache writer lags); False once closed."""
        while True:
            if not self._caching:
                self._drop_passed()
            if self._closed or (self._filled < self._want + self._window
                                and self._filled - self._held_from() <= MAX_UNWRITTEN):
                return not self._closed
            self._cond.wait()

    def _write(self) -> None:
        """Write received chunks to the fill file, in order, off the readers' path (a slow disk
        or slow page cache must not slow the read); a verified, fully written fill becomes a
        cache entry."""
        try:
            while True:
                with self._cond:
                    while not self._held and not (self._verified or self._error or self._closed):
                        self._cond.wait()
                    if self._error is not None or (self._closed and not self._verified):
                        break  # an abandoned fill never becomes an entry
                    if not self._held:  # verified and all written
                        break
                    chunk = self._held[0][1]  # with a fill file, the first held chunk starts at `_written`
                os.pwrite(self._fd, chunk, self._written)
                with self._cond:
                    self._held.pop(0)
                    self._written += len(chunk)
                    self._cond.notify_all()
            if self._verified and self._written == self.size:
                self.cache.commit(self._fill_path, self.id, self.size)
                self._fill_path = ""
        except BaseException as e:  # noqa: BLE001 - a full disk must not fail the read itself
            log.warning("not caching %s: %s", self.fetcher.url, e)
        finally:
            self._thread_done()

    def _thread_done(self) -> None:
        with self._cond:
            self._live -= 1
            if self._live == 0 and self._closed:
                self._cleanup()  # before the notify: a close() waiting for us returns with no fill file left
            self._cond.notify_all()

    # -- checks ----------------------------------------------------------------------------------
    def _check_size_etag(self, total: int, etag: str | None) -> None:
        if self.size >= 0 and total != self.size:
            raise RemoteChanged(f"{self.fetcher.url}: remote content changed (size {total}, recorded {self.size})")
        if self.etag and etag and etag != self.etag:
            raise RemoteChanged(f"{self.fetcher.url}: remote content changed (ETag {etag}, recorded {self.etag})")
        self.size = total

    def _accept(self, size: int, etag: str | None, digest: BlobId) -> None:
        """A complete fetch: its digest must be the expected one; a link learns its own."""
        if self.expect is not None and digest != self.expect:
            self.corrupt = (f"{self.fetcher.url}: content digest {digest} does not match {self.expect}; "
                            "not cached")
            raise CorruptBlob(self.corrupt)
        if self.expect is None and self.learn is not None:
            self.learn(size, etag, digest)
        self.expect = digest

    def _cleanup(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._fill_path:
            discard(self._fill_path)
            self._fill_path = ""
