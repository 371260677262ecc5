"""The lake under an S3 prefix (``s3://bucket/prefix``).

S3 makes each PUT visible whole or not at all, so objects are written directly. Credentials come
from boto3's usual chain (environment, profile, instance role); only the endpoint (a moto server
or another S3-compatible store) and the region come from retain's settings.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from retain.handover import before_waiting
from retain.lake.base import Lake, LakeError, MissingObject, clean_path, clean_prefix

_MISSING = ("404", "NoSuchKey", "NotFound")


def _before_send(**_: Any) -> None:
    before_waiting()  # returns None: botocore sends the request itself


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Lake(Lake):
    page_size = 1000  # keys per listing request (S3's maximum)

    def __init__(self, url: str, endpoint_url: str | None = None, region: str = "us-east-1",
                 client: Any = None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise LakeError(f"not an s3://bucket/prefix URL: {url!r}")
        self.url = url
        self.bucket = parts.netloc
        prefix = parts.path.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region)
        # Each request waits tens of milliseconds: in the API, another thread serves meanwhile.
        self.client.meta.events.register("before-send.s3", _before_send, unique_id="retain-handover")

    def _key(self, path: str) -> str:
        return self.prefix + clean_path(path)

    def _fail(self, action: str, path: str, exc: Exception) -> LakeError:
        return LakeError(f"cannot {action} {path!r} in {self.url}: {exc}")

    def put(self, path: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(path), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("write", path, exc) from exc

    def get(self, path: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(path))["Body"].read()
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise MissingObject(f"no {path} in {self.url}") from None
            raise self._fail("read", path, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("read", path, exc) from exc

    def exists(self, path: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(path))
            return True
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise self._fail("check", path, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("check", path, exc) from exc

    def list(self, prefix: str = "") -> list[str]:
        clean_prefix(prefix)
        found = []
        try:
            # A listing page holds at most 1000 keys; a lake holds many more.
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix, PaginationConfig={"PageSize": self.page_size})
            for page in pages:
                found.extend(item["Key"][len(self.prefix):] for item in page.get("Contents", ()))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("list", prefix, exc) from exc
        return sorted(found)

    def delete(self, path: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(path))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("delete", path, exc) from exc
