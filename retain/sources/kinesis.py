"""A Kinesis stream, every shard, resuming after the last sequence number submitted per shard.

Resharding: a closed parent shard is read to its end (GetRecords stops returning a next iterator)
before its children, so a user's events keep their order across a split or merge; the parent's
checkpoint then becomes SHARD_END. A parent no longer listed (trimmed after the retention period)
no longer holds anything back. Each record's Data is one JSON message or NDJSON lines (gzip is
undone); what does not parse is submitted as its raw text, which submit rejects and the worker
dead-letters with the reason.
"""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from typing import Any, ClassVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from retain.sources.base import DEFAULT_MAX_RECORDS, REQUIRED, PollReport, Source, SourceError, SourceOptionError
from retain.sources.checkpoints import SHARD_END

log = logging.getLogger("retain.sources.kinesis")

_GET_RECORDS_LIMIT = 10_000  # Kinesis's own maximum per call
# Empty responses can precede data in a sparse shard; after this many in a row, try next round.
_MAX_EMPTY_READS = 5
# Throttling or an iterator that aged out: the shard is retried next round, from its checkpoint.
# A shard not found was trimmed between listing and reading: its children take over.
_RETRY_NEXT_ROUND = {"ProvisionedThroughputExceededException", "ExpiredIteratorException",
                     "LimitExceededException", "ResourceNotFoundException"}


def decode_record(data: bytes) -> list[Any]:
    """The messages of one record: a JSON document, or NDJSON lines; unparsable text stays a string."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            pass  # not gzip after all: submitted as text and rejected with the reason
    text = data.decode("utf-8", errors="replace")
    if not text.strip():
        return [text]
    try:
        return [json.loads(text)]
    except ValueError:
        pass
    messages: list[Any] = []
    for line in text.splitlines():
        if line.strip():
            try:
                messages.append(json.loads(line))
            except ValueError:
                messages.append(line)
    return messages


def parents(shard: dict[str, Any]) -> list[str]:
    return [p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p]


def readable_shards(shards: list[dict[str, Any]], finished: set[str]) -> list[dict[str, Any]]:
    """Shards to read now: not finished, and every listed parent finished."""
    listed = {s["ShardId"] for s in shards}
    return [s for s in shards if s["ShardId"] not in finished
            and all(p in finished for p in parents(s) if p in listed)]


class KinesisSource(Source):
    kind: ClassVar[str] = "kinesis"
    OPTIONS: ClassVar[dict[str, Any]] = {"stream": REQUIRED, "start": "trim_horizon"}
    list_page_size = 1000  # ListShards MaxResults; small in tests to exercise pagination
    _client: Any = None
    _name_with_token = False

    @classmethod
    def check_options(cls, values: dict[str, Any]) -> dict[str, Any]:
        start = str(values["start"]).lower()
        if start not in ("trim_horizon", "latest"):
            raise SourceOptionError("start", "must be trim_horizon or latest")
        return {**values, "stream": str(values["stream"]), "start": start}

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.session.Session().client(
                "kinesis", endpoint_url=self.settings.aws_endpoint_url or None, region_name=self.settings.aws_region,
                config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=30))
        return self._client

    @client.setter
    def client(self, value: Any) -> None:
        self._client = value

    def _call(self, what: str, method: str, per_shard: bool = False, **kwargs: Any) -> dict[str, Any]:
        """Call the API; errors become SourceError, except per-shard ones that the next round retries
        (re-raised as ClientError for the caller to skip the shard)."""
        try:
            return getattr(self.client, method)(**kwargs)
        except ClientError as exc:
            if per_shard and exc.response.get("Error", {}).get("Code") in _RETRY_NEXT_ROUND:
                raise
            raise SourceError(f"kinesis stream {self.options['stream']!r}: {what} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise SourceError(f"kinesis stream {self.options['stream']!r}: {what} failed: {exc}") from exc

    def list_shards(self) -> list[dict[str, Any]]:
        stream = self.options["stream"]
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamName": stream, "MaxResults": self.list_page_size}
        while True:
            try:
                page = self._call("ListShards", "list_shards", **kwargs)
            except SourceError as exc:
                if "NextToken" not in kwargs or self._name_with_token or not isinstance(exc.__cause__, ClientError):
                    raise
                # AWS refuses StreamName next to NextToken; moto (5.2) requires it. After one
                # refusal, this source's later pages send both.
                self._name_with_token = True
                kwargs["StreamName"] = stream
                continue
            shards.extend(page.get("Shards", []))
            token = page.get("NextToken")
            if not token:
                return shards
            kwargs = {"NextToken": token, "MaxResults": self.list_page_size}
            if self._name_with_token:
                kwargs["StreamName"] = stream

    def _iterator(self, shard: dict[str, Any], position: str | None, listed: set[str]) -> str | None:
        args: dict[str, Any] = {"StreamName": self.options["stream"], "ShardId": shard["ShardId"]}
        if position is not None:
            args.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=position)
        elif self.options["start"] == "latest" and self.definition.created_at is not None:
            # "latest" means what arrived since the source was added, also in shards created later
            # and across restarts before the first record (a LATEST iterator would skip those).
            args.update(ShardIteratorType="AT_TIMESTAMP", Timestamp=self.definition.created_at)
        elif self.options["start"] == "latest" and not any(p in listed for p in parents(shard)):
            args.update(ShardIteratorType="LATEST")
        else:
            args.update(ShardIteratorType="TRIM_HORIZON")
        try:
            return self._call("GetShardIterator", "get_shard_iterator", True, **args).get("ShardIterator")
        except ClientError as exc:
            log.info("kinesis source %s: shard %s retried next round: %s", self.name, shard["ShardId"], exc)
            return None

    def poll_once(self, max_records: int = DEFAULT_MAX_RECORDS) -> PollReport:
        report = self.new_report()
        shards = self.list_shards()
        listed = {s["ShardId"] for s in shards}
        positions = self.checkpoints.all()
        finished = {sid for sid, pos in positions.items() if pos == SHARD_END}
        visited: set[str] = set()
        budget = max_records
        # Repeat: a parent finished in this round makes its children readable in this round.
        while budget > 0:
            ready = [s for s in readable_shards(shards, finished) if s["ShardId"] not in visited]
            if not ready:
                break
            for shard in ready:
                visited.add(shard["ShardId"])
                budget -= self._read_shard(shard, positions, finished, listed, budget, report)
                if budget <= 0:
                    report.more = True
                    break
        return report

    def _read_shard(self, shard: dict[str, Any], positions: dict[str, str], finished: set[str], listed: set[str],
                    budget: int, report: PollReport) -> int:
        sid = shard["ShardId"]
        iterator = self._iterator(shard, positions.get(sid), listed)
        read = empty = 0
        while iterator and read < budget:
            try:
                response = self._call("GetRecords", "get_records", True, ShardIterator=iterator,
                                      Limit=min(_GET_RECORDS_LIMIT, budget - read))
            except ClientError as exc:
                log.info("kinesis source %s: shard %s retried next round: %s", self.name, sid, exc)
                break
            records = response.get("Records", [])
            if records:
                self.submit_messages((m for r in records for m in decode_record(r["Data"])), report)
                positions[sid] = records[-1]["SequenceNumber"]
                self.checkpoints.set(sid, positions[sid])
                report.records += len(records)
                report.checkpoints += 1
                read += len(records)
            iterator = response.get("NextShardIterator")
            if not iterator:
                # The end of a closed shard: everything in it is submitted; its children may go.
                positions[sid] = SHARD_END
                self.checkpoints.set(sid, SHARD_END)
                finished.add(sid)
                report.checkpoints += 1
                break
            if not records:
                empty += 1
                if response.get("MillisBehindLatest", 0) == 0 or empty >= _MAX_EMPTY_READS:
                    break
            else:
                empty = 0
        return read

    def close(self) -> None:
        self._client = None
