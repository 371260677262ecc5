"""New objects under s3://bucket/prefix: NDJSON, CSV or Parquet, optionally gzipped.

An object is submitted whole (in as many batches as it takes) and only then recorded with its
ETag, so a crash part-way re-reads it from the start, and the worker's message-id dedupe drops
what was already taken. An object overwritten later has a new ETag and is read again; its
unchanged messages keep their ids (their own, or one derived from their content), so only what
changed has an effect.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import shutil
import tempfile
import zlib
from typing import IO, Any, ClassVar, Iterator

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from retain.sources.base import (DEFAULT_MAX_RECORDS, REQUIRED, PollReport, Source, SourceError,
                                 SourceOptionError, row_to_message)

log = logging.getLogger("retain.sources.s3")

FORMATS = ("auto", "ndjson", "csv", "parquet")
_EXTENSIONS = {".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "ndjson", ".csv": "csv", ".parquet": "parquet"}
_SPOOL_BYTES = 32 * 1024 * 1024  # objects beyond this go to a temporary file, not memory
_UNREADABLE = (OSError, EOFError, zlib.error, ValueError, csv.Error)


def object_format(key: str, configured: str) -> str | None:
    """The format of an object, or None when it is not data (a folder marker, an unknown extension)."""
    if key.endswith("/"):
        return None
    if configured != "auto":
        return configured
    name = key.lower().removesuffix(".gz")
    return next((fmt for ext, fmt in _EXTENSIONS.items() if name.endswith(ext)), None)


def ndjson_messages(text: IO[str]) -> Iterator[Any]:
    for line in text:
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError:
                yield line.rstrip("\r\n")  # submitted as raw text: rejected and dead-lettered


def csv_messages(text: IO[str]) -> Iterator[Any]:
    reader = csv.DictReader(text)
    for row in reader:
        if None in row:
            # More cells than the header has names: no mapping is right, so it goes to the dead letters.
            yield ",".join(str(v) for k, v in row.items() if k is not None) + "," + ",".join(row[None])
            continue
        yield row_to_message(row, from_text=True)


def parquet_messages(binary: IO[bytes]) -> Iterator[Any]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(binary).iter_batches(batch_size=1000):
        for row in batch.to_pylist():
            yield row_to_message(row)


class S3Source(Source):
    kind: ClassVar[str] = "s3"
    OPTIONS: ClassVar[dict[str, Any]] = {"bucket": REQUIRED, "prefix": "", "format": "auto"}
    _client: Any = None
    _warned: set[tuple[str, str]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._warned = set()

    @classmethod
    def check_options(cls, values: dict[str, Any]) -> dict[str, Any]:
        fmt = str(values["format"]).lower()
        if fmt not in FORMATS:
            raise SourceOptionError("format", f"must be one of {', '.join(FORMATS)}")
        bucket = str(values["bucket"])
        if bucket.startswith("s3://") or "/" in bucket:
            raise SourceOptionError("bucket", "a bucket name only; put the path in the 'prefix' option")
        return {"bucket": bucket, "prefix": str(values["prefix"] or "").lstrip("/"), "format": fmt}

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.session.Session().client(
                "s3", endpoint_url=self.settings.aws_endpoint_url or None, region_name=self.settings.aws_region,
                config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=60))
        return self._client

    @client.setter
    def client(self, value: Any) -> None:
        self._client = value

    def _where(self) -> str:
        return f"s3://{self.options['bucket']}/{self.options['prefix']}"

    def listing(self) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.options["bucket"], Prefix=self.options["prefix"]):
                yield from page.get("Contents", [])
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(f"s3 source {self.name}: listing {self._where()} failed: {exc}") from exc

    def poll_once(self, max_records: int = DEFAULT_MAX_RECORDS) -> PollReport:
        report = self.new_report()
        done = self.checkpoints.objects()
        for item in self.listing():
            key, etag = item["Key"], item["ETag"].strip('"')
            if etag in done.get(key, ()):
                continue
            fmt = object_format(key, self.options["format"])
            if fmt is None:
                if not key.endswith("/"):
                    report.skipped.append({"key": key, "reason": "unknown format (set the 'format' option)"})
                continue
            if report.records >= max_records:
                report.more = True  # objects are never split across rounds: stop before the next one
                break
            rows = self._submit_object(key, etag, fmt, report)
            if rows is not None:
                self.checkpoints.mark_object(key, etag, rows)
                report.objects += 1
                report.checkpoints += 1
        for skipped in report.skipped:
            # Once per process: the same object is skipped again every round until it is fixed.
            if (skipped["key"], skipped["reason"]) not in self._warned:
                self._warned.add((skipped["key"], skipped["reason"]))
                log.warning("s3 source %s: skipped s3://%s/%s: %s", self.name, self.options["bucket"],
                            skipped["key"], skipped["reason"])
        return report

    def _download(self, key: str, etag: str) -> IO[bytes] | None:
        """The object's bytes (un-gzipped), if it still has the listed ETag."""
        try:
            # IfMatch: read exactly the version listed; if it changed since, the next listing has it.
            body = self.client.get_object(Bucket=self.options["bucket"], Key=key, IfMatch=etag)["Body"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "412", "NoSuchKey", "404"):
                return None
            raise SourceError(f"s3 source {self.name}: reading s3://{self.options['bucket']}/{key} failed: {exc}") from exc
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)
        try:
            source: IO[bytes] = gzip.GzipFile(fileobj=body) if key.lower().endswith(".gz") else body
            shutil.copyfileobj(source, spool, 1024 * 1024)
        except BaseException:
            spool.close()
            raise
        finally:
            body.close()
        spool.seek(0)
        return spool

    def _submit_object(self, key: str, etag: str, fmt: str, report: PollReport) -> int | None:
        """Submit one object; its row count, or None if it was not (changed, unreadable)."""
        try:
            data = self._download(key, etag)
        except _UNREADABLE as exc:
            report.skipped.append({"key": key, "reason": f"unreadable: {exc}"})
            return None
        except BotoCoreError as exc:
            raise SourceError(f"s3 source {self.name}: reading s3://{self.options['bucket']}/{key} failed: {exc}") from exc
        if data is None:
            return None
        counted = _Counter()
        with data:
            try:
                if fmt == "parquet":
                    messages = parquet_messages(data)
                else:
                    # utf-8-sig: spreadsheets export CSV with a byte-order mark before the header.
                    text = io.TextIOWrapper(data, encoding="utf-8-sig", errors="replace", newline="")
                    messages = csv_messages(text) if fmt == "csv" else ndjson_messages(text)
                self.submit_messages(counted.count(messages), report)
            except _UNREADABLE as exc:
                # Batches already submitted stay submitted: the object is re-read once it is fixed,
                # and dedupe drops what was taken.
                report.skipped.append({"key": key, "reason": f"unreadable {fmt}: {exc}"})
                return None
            except ImportError as exc:
                raise SourceError(f"s3 source {self.name}: reading Parquet needs pyarrow ({exc})") from exc
        report.records += counted.n
        return counted.n


class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def count(self, items: Iterator[Any]) -> Iterator[Any]:
        for item in items:
            self.n += 1
            yield item
