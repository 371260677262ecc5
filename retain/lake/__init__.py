"""The Parquet lake: staged event rows in Redis, flushed to Parquet files on a local disk or S3."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from retain.errors import ConfigError
from retain.lake.base import Lake, LakeError, MissingObject

if TYPE_CHECKING:
    from retain.config import Settings

__all__ = ["Lake", "LakeError", "MissingObject", "open_lake", "open_store"]


def open_lake(settings: "Settings") -> Lake:
    """The lake at ``settings.lake_root``, on the backend its URL scheme names."""
    return open_store(settings.lake_root, settings, "RETAIN_LAKE_URL")


def open_store(url: str, settings: "Settings", variable: str) -> Lake:
    """Object storage at ``url`` (file:// or s3://): the lake, and the model store, use it."""
    scheme = urlsplit(url).scheme
    try:
        if scheme == "file":
            from retain.lake.local import LocalLake

            return LocalLake(url)
        if scheme == "s3":
            # Imported here: boto3 is slow to import and only S3 stores need it.
            from retain.lake.s3 import S3Lake

            return S3Lake(url, endpoint_url=settings.aws_endpoint_url or None, region=settings.aws_region)
    except LakeError as exc:
        raise ConfigError(f"{variable}: {exc}") from None
    raise ConfigError(f"{variable}: unsupported URL {url!r}; use file:///path or s3://bucket/prefix")
