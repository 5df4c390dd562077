"""Blobs as S3 objects at `<prefix>/blobs/<hex>` (boto3; credentials from boto3's standard
chain, never stored by cas). An upload returns once S3 acknowledged it, so a blob is
durable when `install` returns and `sync` has nothing left to do."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from cas.blobs.backends.fetch import RemoteError, S3Fetcher, describe_s3_error, s3_error_code, s3_not_found
from cas.blobs.backends.refs import RemoteRefs
from cas.blobs.backends.s3packs import (
    FOOTER,
    INDEX_READ,
    PACKS_DIR,
    SUFFIX,
    PackEntry,
    PackFile,
    decode_trailer,
    pack_key_name,
    trailer_offset,
)
from cas.blobs.cache import discard
from cas.blobs.spool import Spooled
from cas.config import NetOptions, S3Remote
from cas.errors import CasError, NotFound
from cas.ids import BlobId

MULTIPART_THRESHOLD = 16 << 20  # larger blobs go up in parts, several at once
MULTIPART_CHUNK = 8 << 20

_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()
_session: Any = None  # boto3's, kept for its loaded service models: a forked child makes clients in ~10 ms, not ~70


def _after_fork_in_child() -> None:
    """A child starts with no clients: the parent's connection pools (sockets shared with it)
    are never used here. The session is kept: it holds no connection."""
    global _clients, _clients_lock
    _clients, _clients_lock = {}, threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def s3_client(endpoint_url: str | None, region: str | None, net: NetOptions) -> Any:
    """One boto3 client per process and settings (clients are thread-safe; making one is not)."""
    global _session
    key = (endpoint_url, region, net)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            import boto3
            from botocore.config import Config
            config = Config(connect_timeout=net.connect_timeout, read_timeout=net.read_timeout,
                            retries={"total_max_attempts": net.retries + 1, "mode": "standard"},
                            max_pool_connections=32)
            if _session is None:
                _session = boto3.session.Session()
            client = _clients[key] = _session.client("s3", endpoint_url=endpoint_url, region_name=region,
                                                     config=config)
        return client


def _object_size(resp: dict[str, Any], received: int) -> int:
    """The whole object's size from a ranged GET's response."""
    match = resp.get("ContentRange", "").rpartition("/")[2]
    return int(match) if match.isdigit() else received


class S3Backend:
    location = "s3"

    def __init__(self, remote: S3Remote, net: NetOptions) -> None:
        self.remote = remote
        self.net = net
        self._pack_indexes: dict[str, list[PackEntry]] = {}  # pack name -> its index, as read or written
        self._listed_packs: set[str] = set()  # packs whose entries are in _packed_ids
        self._packed_ids: dict[BlobId, tuple[str, PackEntry]] = {}  # blob -> (pack, entry) of those packs
        self._packs_lock = threading.Lock()

    @property
    def client(self) -> Any:
        return s3_client(self.remote.endpoint_url, self.remote.region, self.net)

    def check(self) -> None:
        """A clear error now rather than at the first upload: the bucket must be reachable."""
        try:
            self.client.head_bucket(Bucket=self.remote.bucket)
        except Exception as e:  # noqa: BLE001 - botocore's errors, described
            raise describe_s3_error(f"s3://{self.remote.bucket}", e, self.client.meta.endpoint_url) from None

    def key(self, blob_id: BlobId) -> str:
        return self.remote.key(f"blobs/{blob_id.hex()}")

    def url(self, blob_id: BlobId) -> str:
        return f"s3://{self.remote.bucket}/{self.key(blob_id)}"

    def install(self, sp: Spooled, tmp_dir: str) -> None:
        """Upload a spooled blob; returns once S3 has it. Small blobs in one PUT from memory,
        large ones as a multipart upload of parallel parts."""
        if sp.data is not None and sp.size <= MULTIPART_THRESHOLD:
            try:
                self.client.put_object(Bucket=self.remote.bucket, Key=self.key(sp.id), Body=sp.data)
            except Exception as e:  # noqa: BLE001 - botocore's errors, described
                raise describe_s3_error(f"upload of blob {sp.id} to {self.url(sp.id)}", e) from None
        else:
            self.upload_file(sp.write_temp(tmp_dir), sp.id)
        sp.discard()

    def upload_file(self, path: str, blob_id: BlobId) -> None:
        """Upload a file (in parallel parts when large); returns once S3 has it."""
        from boto3.s3.transfer import TransferConfig
        config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_CHUNK,
                                max_concurrency=4)
        try:
            self.client.upload_file(path, self.remote.bucket, self.key(blob_id), Config=config)
        except Exception as e:  # noqa: BLE001 - botocore/s3transfer errors, described
            raise describe_s3_error(f"upload of blob {blob_id} to {self.url(blob_id)}", e) from None

    def sync(self) -> None:
        """Nothing to do: every upload was acknowledged before `install` returned."""

    def size_of(self, blob_id: BlobId) -> int | None:
        """The object's size, or None when there is no such object."""
        try:
            return int(self.client.head_object(Bucket=self.remote.bucket, Key=self.key(blob_id))["ContentLength"])
        except Exception as e:  # noqa: BLE001 - botocore's errors, described
            if s3_not_found(e):
                return None
            raise describe_s3_error(self.url(blob_id), e) from None

    def age_seconds(self, blob_id: BlobId) -> float | None:
        """Seconds since the object was last written (None: no such object)."""
        import datetime
        try:
            modified = self.client.head_object(Bucket=self.remote.bucket, Key=self.key(blob_id))["LastModified"]
        except Exception as e:  # noqa: BLE001 - botocore's errors, described
            if s3_not_found(e):
                return None
            raise describe_s3_error(self.url(blob_id), e) from None
        return (datetime.datetime.now(datetime.UTC) - modified).total_seconds()

    def fetcher(self, blob_id: BlobId) -> S3Fetcher:
        return S3Fetcher(self.client, self.remote.bucket, self.key(blob_id))

    def read_range(self, blob_id: BlobId, offset: int, length: int) -> bytes:
        return self.get_range(self.key(blob_id), offset, length, f"blob {blob_id}")

    def get_range(self, key: str, offset: int, length: int, what: str) -> bytes:
        """Up to `length` bytes of an object from `offset` (fewer only at its end; NotFound,
        naming `what`, when there is no such object)."""
        if length <= 0:
            return b""
        url = f"s3://{self.remote.bucket}/{key}"
        try:
            resp = self.client.get_object(Bucket=self.remote.bucket, Key=key,
                                          Range=f"bytes={offset}-{offset + length - 1}")
            return resp["Body"].read()[:length]
        except Exception as e:  # noqa: BLE001 - botocore's errors: the absent and past-the-end ones, or described
            if s3_not_found(e):
                raise NotFound(f"{what} is not at {url}") from None
            if s3_error_code(e) == "InvalidRange":  # from at or past the end
                return b""
            raise describe_s3_error(url, e) from None

    # -- pack objects (layout: cas.blobs.backends.s3packs) ---------------------------------------
    def read_entries(self, name: str, entries: Iterable[tuple[BlobId, int, int]]) -> list[tuple[BlobId, int, bytes]]:
        """(id, offset, bytes) of entries (id, offset, size) of pack object `name`, read in one
        ranged GET from the first to the end of the last (an entry the object ends before comes
        back short). Not verified: the caller hashes what it needs to."""
        wanted = list(entries)
        if not wanted:
            return []
        first = min(offset for _id, offset, _n in wanted)
        end = max(offset + n for _id, offset, n in wanted)
        data = self.get_range(self.pack_key(name), first, end - first, f"pack {name}")
        return [(blob_id, offset, data[offset - first:offset - first + n]) for blob_id, offset, n in wanted]

    def pack_key(self, name: str) -> str:
        return self.remote.key(f"{PACKS_DIR}{name}{SUFFIX}")

    def pack_url(self, name: str) -> str:
        return f"s3://{self.remote.bucket}/{self.pack_key(name)}"

    def put_pack(self, path: str, name: str, entries: list[PackEntry]) -> None:
        """Upload a finished pack file in one PUT (streamed from the file); returns once S3 has
        it. Its index is remembered: this process reads it back without a GET."""
        try:
            with open(path, "rb") as body:
                self.client.put_object(Bucket=self.remote.bucket, Key=self.pack_key(name), Body=body)
        except Exception as e:  # noqa: BLE001 - botocore's errors, described
            raise describe_s3_error(f"upload of pack {name} to {self.pack_url(name)}", e) from None
        with self._packs_lock:
            self._pack_indexes[name] = entries

    def pack_entries(self, name: str, size: int | None = None) -> list[PackEntry]:
        """The index of a pack object (one suffix GET, a second one for a long index; the object
        size, when the listing gave it, saves nothing but is checked); remembered per process:
        a pack object never changes."""
        with self._packs_lock:
            known = self._pack_indexes.get(name)
        if known is not None:
            return known
        url = self.pack_url(name)
        try:
            resp = self.client.get_object(Bucket=self.remote.bucket, Key=self.pack_key(name),
                                          Range=f"bytes=-{INDEX_READ}")
            tail = resp["Body"].read()
            total = _object_size(resp, len(tail))
            start = trailer_offset(tail[-FOOTER.size:], total, url)
            if start < total - len(tail):  # a long index: the rest of it
                tail = self.get_range(self.pack_key(name), start, total - len(tail) - start, f"pack {name}") + tail
            entries = decode_trailer(tail[len(tail) - (total - start):], url)
        except CasError:
            raise
        except Exception as e:  # noqa: BLE001 - botocore's errors: absent, or described
            if s3_not_found(e):
                raise NotFound(f"pack {name} is not at {url}") from None
            raise describe_s3_error(url, e) from None
        if size is not None and size != total:
            raise CasError(f"{url}: {total} bytes, listed as {size}")
        with self._packs_lock:
            self._pack_indexes[name] = entries
        return entries

    def _pack_objects(self) -> Iterator[dict[str, Any]]:
        """The listing of every object under packs/, as S3 gives it."""
        prefix = self.remote.key(PACKS_DIR)
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.remote.bucket,
                                                                              Prefix=prefix):
                yield from page.get("Contents", [])
        except Exception as e:  # noqa: BLE001 - botocore's errors, described
            raise describe_s3_error(f"s3://{self.remote.bucket}/{prefix}", e) from None

    def list_packs(self) -> Iterator[tuple[str | None, str, int]]:
        """(pack name or None if the object is not a pack, url, size) of every object under packs/."""
        skip = len(self.remote.key(PACKS_DIR))
        for obj in self._pack_objects():
            yield pack_key_name(obj["Key"][skip:]), f"s3://{self.remote.bucket}/{obj['Key']}", int(obj["Size"])

    def pack_ages(self) -> dict[str, tuple[int, float]]:
        """Every pack object's name -> (size, seconds since it was written), from one listing."""
        import datetime
        now, skip = datetime.datetime.now(datetime.UTC), len(self.remote.key(PACKS_DIR))
        return {name: (int(obj["Size"]), (now - obj["LastModified"]).total_seconds())
                for obj in self._pack_objects() if (name := pack_key_name(obj["Key"][skip:])) is not None}

    def upload_pack(self, name: str, blobs: Iterable[tuple[BlobId, bytes]], tmp_dir: str) -> list[PackEntry]:
        """Write `blobs` into the pack object `name` (built in a file of `tmp_dir`, sent in one
        PUT); returns its entries once S3 has it (no PUT, and no entry, when `blobs` is empty)."""
        pack = PackFile(os.path.join(tmp_dir, f"s3pack-{os.getpid()}-{name}"))
        try:
            for blob_id, data in blobs:
                pack.add(blob_id, data)
            pack.finish()
            if pack.entries:
                self.put_pack(pack.path, name, pack.entries)
        finally:
            pack.close()
            discard(pack.path)
        return pack.entries

    def delete_pack(self, name: str) -> None:
        """Delete a pack object (an absent one is no error) and forget its index."""
        try:
            self.client.delete_object(Bucket=self.remote.bucket, Key=self.pack_key(name))
        except Exception as e:  # noqa: BLE001 - botocore's errors, described
            raise describe_s3_error(self.pack_url(name), e) from None
        with self._packs_lock:
            self._listed_packs.discard(name)
            for entry in self._pack_indexes.pop(name, []):
                if self._packed_ids.get(entry.blob_id, ("",))[0] == name:
                    del self._packed_ids[entry.blob_id]

    def find_packed(self, blob_ids: set[BlobId], refresh: bool = True) -> dict[BlobId, tuple[str, PackEntry]]:
        """Which of `blob_ids` the remote's pack objects hold: id -> (pack name, entry). From the
        indexes this process read already; for the rest (with `refresh`), one listing, then the
        index of each pack not read yet (several at once)."""
        with self._packs_lock:
            found = {b: self._packed_ids[b] for b in blob_ids if b in self._packed_ids}
        if len(found) == len(blob_ids) or not refresh:
            return found
        from concurrent.futures import ThreadPoolExecutor
        listed = [(name, size) for name, _url, size in self.list_packs() if name is not None]
        with self._packs_lock:
            new = [(name, size) for name, size in listed if name not in self._listed_packs]
        with ThreadPoolExecutor(8) as pool:
            indexes = list(pool.map(lambda p: (p[0], self.pack_entries(*p)), new))
        with self._packs_lock:
            for name, entries in indexes:
                self._listed_packs.add(name)
                for entry in entries:
                    self._packed_ids.setdefault(entry.blob_id, (name, entry))
            return {b: self._packed_ids[b] for b in blob_ids if b in self._packed_ids}

    def delete(self, blob_id: BlobId) -> None:
        try:
            self.client.delete_object(Bucket=self.remote.bucket, Key=self.key(blob_id))
        except Exception as e:  # noqa: BLE001 - botocore's errors, described
            raise describe_s3_error(self.url(blob_id), e) from None

    @property
    def refs(self) -> RemoteRefs:
        """The remote's version heads (cas.blobs.backends.refs)."""
        return RemoteRefs(self.client, self.remote)

    def list_ids(self) -> Iterator[tuple[BlobId | None, str, int]]:
        """Every object under `<prefix>/blobs/` as (id or None, url, size)."""
        prefix = self.remote.key("blobs/")
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.remote.bucket,
                                                                              Prefix=prefix):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(prefix):]
                    try:
                        blob_id: BlobId | None = BlobId.from_hex(name)
                    except Exception:  # noqa: BLE001 - a foreign object under our prefix
                        blob_id = None
                    yield blob_id, f"s3://{self.remote.bucket}/{obj['Key']}", int(obj["Size"])
        except RemoteError:
            raise
        except Exception as e:  # noqa: BLE001 - botocore's errors, described
            raise describe_s3_error(f"s3://{self.remote.bucket}/{prefix}", e) from None
