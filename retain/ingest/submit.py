"""The durability point: a batch is accepted once it is in the broker's `ingest` queue.

Every source hands its raw Segment messages to :func:`submit`. Valid messages become canonical
events; invalid ones travel in the same task as rejections, so the worker dead-letters them —
nothing is dropped, and nothing is half-accepted: either the one task is in the broker, or the
caller is told the batch was not taken.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable

import msgspec
import redis
from celery import Celery
from kombu.exceptions import OperationalError

from retain.config import Settings
from retain.errors import RetainError
from retain.events import EventError, normalize, to_dict
from retain.ingest.journal import Journal
from retain.store.redis import redis_client

_RAW_LIMIT = 32 * 1024


class BrokerUnavailable(RetainError):
    """The broker did not take the batch; the caller should retry later."""


@dataclass
class Submission:
    tenant_id: str
    source: str
    received_at: int
    events: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)

    def payload(self) -> dict:
        return {"tenant": self.tenant_id, "source": self.source, "received_at": self.received_at,
                "events": self.events, "rejected": self.rejected}

    def summary(self) -> dict:
        return {"accepted": len(self.events),
                "rejected": [{"index": r["index"], "field": r["field"], "reason": r["reason"]} for r in self.rejected]}


def now_ms() -> int:
    return int(time.time() * 1000)


def raw_text(raw: Any) -> str:
    text = raw if isinstance(raw, str) else json.dumps(raw, default=str, separators=(",", ":"))
    return text[:_RAW_LIMIT]


def prepare(messages: Iterable[Any], tenant_id: str, source: str, settings: Settings, *, history: bool = False,
            batch_sent_at: Any = None, default_type: str | None = None, received_at: int | None = None) -> Submission:
    """Validate raw messages into a submission; bad ones are kept as rejections with their reason.

    ``history`` (backfills) accepts events of any age; live sources reject stale ones.
    """
    received = received_at or now_ms()
    sub = Submission(tenant_id, source, received)
    max_past = None if history else settings.ingest_max_past_days * 86_400_000
    for index, raw in enumerate(messages):
        try:
            size = len(raw) if isinstance(raw, str) else len(msgspec.json.encode(raw))
            if size > settings.ingest_max_event_bytes:
                raise EventError("event", f"larger than {settings.ingest_max_event_bytes} bytes")
            event = normalize(raw, tenant_id, received, batch_sent_at=batch_sent_at, default_type=default_type,
                              max_future_ms=settings.ingest_max_future_seconds * 1000, max_past_ms=max_past,
                              correct_skew=not history)
        except EventError as exc:
            sub.rejected.append({"index": index, "field": exc.field, "reason": str(exc), "raw": raw_text(raw)})
            continue
        sub.events.append(to_dict(event))
    return sub


def enqueue(sub: Submission, journal: Journal, app: Celery | None = None) -> str | None:
    """Journal the submission and put it in the `ingest` queue; its batch id (None if empty).

    Nothing is half-accepted: if the broker does not take it, the journal entry is removed and
    BrokerUnavailable raised; if this process dies in between, the journal re-sends it later.
    """
    if not sub.events and not sub.rejected:
        return None
    batch_id = str(uuid.uuid4())
    payload = {**sub.payload(), "batch_id": batch_id}
    try:
        journal.record(batch_id, payload)
    except redis.RedisError as exc:
        raise BrokerUnavailable(f"the ingest journal is unavailable: {exc}") from exc
    try:
        send(app, payload)
    except BrokerUnavailable:
        journal.done(batch_id)
        raise
    return batch_id


def send(app: Celery | None, payload: dict) -> None:
    if app is None:
        from retain.worker.app import app
    try:
        app.send_task("ingest.batch", args=[payload], queue="ingest", retry=True,
                      retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2,
                                    "interval_max": 0.5})
    except (OperationalError, ConnectionError, OSError) as exc:
        raise BrokerUnavailable(f"the ingest queue is unavailable: {exc}") from exc


def redeliver(journal: Journal, older_than: float | None = None, app: Celery | None = None) -> int:
    """Re-send journaled batches that no worker finished in time; how many were re-sent."""
    overdue = journal.overdue(older_than)
    for batch_id, payload in overdue:
        send(app, payload)
        journal.touch(batch_id)
    return len(overdue)


_journals: dict[tuple[str, str], Journal] = {}


def _default_journal(settings: Settings) -> Journal:
    """The process's journal for these settings: pull sources submit batch after batch, and each
    must not open a Redis connection of its own."""
    key = (settings.redis_url, settings.redis_prefix)
    if key not in _journals:
        _journals[key] = Journal(redis_client(settings), settings)
    return _journals[key]


def submit(messages: Iterable[Any], tenant_id: str, source: str, settings: Settings, *,
           journal: Journal | None = None, app: Celery | None = None, **options: Any) -> Submission:
    """Validate and enqueue; pull sources call this (the API calls prepare and enqueue itself)."""
    sub = prepare(messages, tenant_id, source, settings, **options)
    enqueue(sub, journal or _default_journal(settings), app)
    return sub
