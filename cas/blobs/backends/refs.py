"""The remote's version heads ("refs": shared versions' names, not reference counts): one small
object per project at `<prefix>/refs/<project>` holding `{"version": hex}`. This module alone
reads, lists and writes them; a ref moves only by S3 conditional writes (created with
If-None-Match, moved with If-Match on the ETag read before)."""

from __future__ import annotations

import json
from typing import Any

from cas.blobs.backends.fetch import describe_s3_error, s3_error_code, s3_not_found
from cas.config import S3Remote
from cas.errors import CasError, Conflict
from cas.ids import BlobId

REFS_DIR = "refs/"
CONDITION_FAILED = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})  # another writer won


class RemoteRefs:
    """The refs of one S3 remote, through a boto3 client."""

    def __init__(self, client: Any, remote: S3Remote) -> None:
        self.client = client
        self.remote = remote

    def key(self, project: str) -> str:
        return self.remote.key(REFS_DIR + project)

    def _url(self, key: str) -> str:
        return f"s3://{self.remote.bucket}/{key}"

    def read(self, project: str) -> tuple[BlobId | None, str | None]:
        """(version, ETag) of the project's head on the remote; (None, None) if it has none."""
        key = self.key(project)
        try:
            obj = self.client.get_object(Bucket=self.remote.bucket, Key=key)
            body = obj["Body"].read()
        except Exception as e:  # noqa: BLE001 - botocore's errors, described
            if s3_not_found(e):
                return None, None
            raise describe_s3_error(self._url(key), e) from None
        try:
            version = BlobId.from_hex(json.loads(body)["version"])
        except (ValueError, KeyError, TypeError):
            raise CasError(f"the remote ref of {project} ({self._url(key)}) is unreadable") from None
        return version, obj["ETag"]

    def write(self, project: str, version: BlobId, etag: str | None) -> None:
        """Point the project's ref at `version` if it is still as read (`etag`; None: it had no
        ref); else `Conflict`."""
        key = self.key(project)
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        body = json.dumps({"version": version.hex()}).encode()
        try:
            self.client.put_object(Bucket=self.remote.bucket, Key=key, Body=body, **condition)
        except Exception as e:  # noqa: BLE001 - botocore's errors, described
            if s3_error_code(e) in CONDITION_FAILED:
                raise Conflict(f"{project} was pushed from elsewhere meanwhile; run `cas pull {project}`, "
                               "then push again") from None
            raise describe_s3_error(self._url(key), e) from None

    def list(self) -> dict[str, BlobId]:
        """Every project's head on the remote."""
        prefix, heads = self.remote.key(REFS_DIR), {}
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.remote.bucket, Prefix=prefix)
            names = [obj["Key"][len(prefix):] for page in pages for obj in page.get("Contents", [])]
        except Exception as e:  # noqa: BLE001 - botocore's errors, described
            raise describe_s3_error(self._url(prefix), e) from None
        for name in names:
            version, _etag = self.read(name)
            if version is not None:
                heads[name] = version
        return heads
