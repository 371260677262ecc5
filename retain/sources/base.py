"""What every pull source shares: its definition, one polling round, batching, and the run loop.

A round reads new data, submits it, and only then checkpoints. A crash between the two re-submits
the same messages on restart; they carry the same message ids (their own, or one derived from their
content), so the worker's ledger drops the repeats and the effect is exactly once. Rows from CSV,
Parquet and SQL become Segment messages through one column mapping, :func:`row_to_message`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping
from uuid import UUID

from retain.config import Settings
from retain.errors import RetainError
from retain.ingest.submit import Submission, submit as submit_to_queue
from retain.sources.checkpoints import Checkpoints
from retain.store.cassandra import CASSANDRA_ERRORS, CassandraStore

log = logging.getLogger("retain.sources")

MAX_BATCH_MESSAGES = 500
# Below the API's 500 KB so a batch of raw messages plus its task envelope stays under the limit.
MAX_BATCH_BYTES = 450 * 1024
DEFAULT_MAX_RECORDS = 10_000
REQUIRED: Any = object()

SubmitFn = Callable[..., Submission]


class SourceError(RetainError):
    """A source is unknown, already exists, or its system (Kinesis, S3, the database) failed."""


class SourceOptionError(SourceError):
    """An option of a source definition is missing, unknown or invalid; ``option`` names it."""

    exit_code = 2

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"option {option!r}: {message}")
        self.option = option


@dataclass(frozen=True)
class SourceDefinition:
    name: str
    tenant_id: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass
class PollReport:
    """What one round (or, summed, a run) did."""

    source: str
    kind: str
    records: int = 0  # Kinesis records, object lines/rows, SQL rows read
    messages: int = 0  # messages handed to submit
    accepted: int = 0
    rejected: int = 0
    batches: int = 0
    checkpoints: int = 0
    objects: int = 0  # S3 objects recorded as processed
    rounds: int = 1
    more: bool = False  # stopped at max_records with data left: the next round should not wait
    skipped: list[dict] = field(default_factory=list)

    def add(self, other: "PollReport") -> None:
        for name in ("records", "messages", "accepted", "rejected", "batches", "checkpoints", "objects", "rounds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        # The same object is skipped every round until fixed: a long run lists it once.
        self.skipped.extend(s for s in other.skipped if s not in self.skipped)
        self.more = other.more

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def message_size(message: Any) -> int:
    text = message if isinstance(message, str) else json.dumps(message, default=str, separators=(",", ":"))
    return len(text.encode("utf-8", errors="replace")) + 1


def batches(messages: Iterable[Any], max_messages: int = MAX_BATCH_MESSAGES,
            max_bytes: int = MAX_BATCH_BYTES) -> Iterator[list[Any]]:
    """Consecutive batches of at most ``max_messages`` and ``max_bytes``; an oversized message travels
    alone (and is rejected, with its reason, by submit)."""
    batch: list[Any] = []
    size = 0
    for message in messages:
        n = message_size(message)
        if batch and (len(batch) >= max_messages or size + n > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += n
    if batch:
        yield batch


class Source(ABC):
    """One configured source. Subclasses declare ``kind`` and ``OPTIONS`` (name → default, or
    REQUIRED) and implement :meth:`poll_once`."""

    kind: ClassVar[str]
    OPTIONS: ClassVar[dict[str, Any]] = {}

    def __init__(self, definition: SourceDefinition, settings: Settings, store: CassandraStore,
                 submit: SubmitFn = submit_to_queue) -> None:
        self.definition = definition
        self.options = self.validate_options(definition.options)
        self.settings = settings
        self.store = store
        self.submit = submit
        self.checkpoints = Checkpoints(store, definition.name)

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def label(self) -> str:
        """How dead letters and logs name this source."""
        return f"{self.kind}:{self.name}"

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - set(cls.OPTIONS))
        if unknown:
            raise SourceOptionError(unknown[0], f"unknown for a {cls.kind} source (options: {', '.join(cls.OPTIONS)})")
        values: dict[str, Any] = {}
        for name, default in cls.OPTIONS.items():
            value = options.get(name, default)
            if value is REQUIRED or (default is REQUIRED and value in ("", None)):
                raise SourceOptionError(name, f"required for a {cls.kind} source")
            values[name] = value
        return cls.check_options(values)

    @classmethod
    def check_options(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Convert and check option values (strings from the CLI); raise SourceOptionError."""
        return values

    @classmethod
    def redact_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """Options as they may be shown or logged (no secrets)."""
        return dict(options)

    @abstractmethod
    def poll_once(self, max_records: int = DEFAULT_MAX_RECORDS) -> PollReport:
        """Read what is new (about ``max_records``), submit it, then checkpoint it."""

    def close(self) -> None:
        """Release clients and connections."""

    def new_report(self) -> PollReport:
        return PollReport(self.name, self.kind)

    def submit_messages(self, messages: Iterable[Any], report: PollReport) -> None:
        """Submit in batches as they fill, so a large object or page never sits whole in memory."""
        for batch in batches(messages):
            sub = self.submit(batch, self.definition.tenant_id, self.label, self.settings, history=True)
            report.messages += len(batch)
            report.accepted += len(sub.events)
            report.rejected += len(sub.rejected)
            report.batches += 1

    def run(self, stop: threading.Event, interval: float, max_records: int = DEFAULT_MAX_RECORDS,
            on_report: Callable[[PollReport], None] | None = None) -> PollReport:
        """Poll until ``stop`` is set (checked between rounds); returns the totals.

        A failing round (broker, store or source unavailable) is logged and retried with backoff:
        nothing was checkpointed past what was submitted, so retrying loses nothing.
        """
        totals = self.new_report()
        totals.rounds = 0
        failures = 0
        while not stop.is_set():
            try:
                report = self.poll_once(max_records)
            except (RetainError, *CASSANDRA_ERRORS) as exc:
                failures += 1
                delay = min(max(interval, 1.0) * 2 ** min(failures, 8), 300.0)
                log.warning("source %s: round failed (%s); retrying in %.0fs", self.label, exc, delay)
                stop.wait(delay)
                continue
            failures = 0
            totals.add(report)
            if on_report is not None:
                on_report(report)
            if not report.more:
                stop.wait(interval)
        return totals


# --- rows (CSV, Parquet, SQL) → Segment messages ----------------------------------------------
_TOP_LEVEL = {"type", "event", "name", "userId", "anonymousId", "messageId", "timestamp", "originalTimestamp",
              "sentAt", "previousId", "groupId"}
# Warehouse exports (Segment's own included) use snake_case column names.
_ALIASES = {"user_id": "userId", "anonymous_id": "anonymousId", "message_id": "messageId",
            "original_timestamp": "originalTimestamp", "sent_at": "sentAt", "previous_id": "previousId",
            "group_id": "groupId"}
_NESTED = ("properties", "context", "traits")
# No leading zeros: "007" or a zip code "02139" is an identifier, not a number.
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")


def iso_z(value: datetime) -> str:
    """ISO-8601 in UTC with a Z; naive values are taken as UTC. Exact to the microsecond, so a
    watermark written this way compares equal when read back."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat() + "Z"


def plain_value(value: Any) -> Any:
    """A database or Parquet value as JSON: datetimes as ISO-8601 Z strings, decimals as numbers."""
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    return value


def _number(value: Any) -> Any:
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return float(value) if any(c in value for c in ".eE") else int(value)
    return value


def _put(target: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        nested = target.get(part)
        if not isinstance(nested, dict):
            nested = target[part] = {}
        target = nested
    target[path[-1]] = value


def row_to_message(row: Mapping[str, Any], *, from_text: bool = False) -> dict[str, Any]:
    """A row as a Segment message.

    Columns named like Segment's fields (or their snake_case) are top-level; ``properties.x``,
    ``context.x`` and ``traits.x`` (dots nest further) build objects; a ``properties``/``context``/
    ``traits`` column holding a JSON object is merged in; any other column becomes a property,
    so nothing in a row is dropped. ``from_text`` (CSV): empty cells are missing, and
    number-looking property values become numbers.
    """
    message: dict[str, Any] = {}
    for column, raw in row.items():
        value = plain_value(raw)
        if value is None or (from_text and value == ""):
            continue
        name = _ALIASES.get(column, column)
        head, dot, rest = name.partition(".")
        if dot and head in _NESTED:
            if from_text and head == "properties":
                value = _number(value)
            _put(message.setdefault(head, {}), rest.split("."), value)
        elif name in _NESTED:
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    pass  # left a string: submit rejects the message, naming the field
            if isinstance(value, dict):
                message[name] = {**value, **message.get(name, {})}
            else:
                message[name] = value  # not an object: submit rejects it, naming the field
        elif name in _TOP_LEVEL:
            message[name] = value
        else:
            message.setdefault("properties", {})[name] = _number(value) if from_text else value
    return message
