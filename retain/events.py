"""The canonical event, and turning a Segment message into one.

Every source (the HTTP API, Kinesis, S3 drops, Redshift pulls) speaks Segment's message format
and goes through :func:`normalize`, so the rules live in one place: who the user is, when it
happened (Segment's clock-skew correction), which id makes a retry a duplicate, and what is
rejected, with the field named.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timezone
from typing import Any

import msgspec

TYPES = ("track", "page", "screen", "identify", "alias", "group")
_MS = 1000
# Segment's own epoch lower bound for history: anything before this is a client bug, not a backfill.
_EARLIEST_MS = int(datetime(2000, 1, 1, tzinfo=timezone.utc).timestamp() * _MS)
_ID_NAMESPACE = uuid.UUID("6f1c3a52-6d55-4a8e-9a43-7c1e2d0b8f11")


class EventError(ValueError):
    """A message that cannot become an event; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Event(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One behaviour event of one user of one tenant. Times are milliseconds since the epoch, UTC."""

    tenant_id: str
    user_id: str
    type: str
    name: str = ""
    message_id: str
    timestamp: int
    received_at: int
    sent_at: int | None = None
    original_timestamp: int | None = None
    anonymous_id: str | None = None
    properties: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    context: dict[str, Any] = {}
    previous_id: str | None = None
    group_id: str | None = None


_encoder = msgspec.json.Encoder()


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def to_dict(event: Event) -> dict[str, Any]:
    return msgspec.to_builtins(event)


def from_dict(data: dict[str, Any]) -> Event:
    return msgspec.convert(data, Event)


def parse_time(value: Any, field: str) -> int:
    """ISO-8601 (or epoch milliseconds) → epoch milliseconds; naive times are UTC."""
    if isinstance(value, bool):
        raise EventError(field, "must be an ISO-8601 date-time string")
    if isinstance(value, (int, float)):
        return int(value)
    if not isinstance(value, str) or not value:
        raise EventError(field, "must be an ISO-8601 date-time string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise EventError(field, f"not an ISO-8601 date-time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp() * _MS)


def message_id_for(raw: dict[str, Any]) -> str:
    """A deterministic id for a message that lacks one: the same content gets the same id, so a
    client's retry of it is recognised as a duplicate."""
    content = {k: v for k, v in raw.items() if k not in ("receivedAt", "sentAt", "writeKey")}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
    return "gen-" + str(uuid.uuid5(_ID_NAMESPACE, digest))


def _optional_id(raw: dict[str, Any], field: str) -> str | None:
    value = raw.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise EventError(field, "must be a string")
    text = str(value)
    if len(text) > 256:
        raise EventError(field, "longer than 256 characters")
    return text


def _object(raw: dict[str, Any], field: str) -> dict[str, Any]:
    value = raw.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EventError(field, "must be an object")
    return value


def normalize(raw: Any, tenant_id: str, received_at: int, *, batch_sent_at: Any = None,
              default_type: str | None = None, max_future_ms: int, max_past_ms: int | None,
              correct_skew: bool = True) -> Event:
    """Validate a Segment message and return the canonical event.

    ``max_past_ms`` bounds how old an event may be (None for backfills, which may be years old).
    ``correct_skew`` is off for backfills: their sentAt is when the device first sent them, not
    when this upload left, so (receivedAt - sentAt) measures the delay, not a clock error.
    """
    if not isinstance(raw, dict):
        raise EventError("event", "must be a JSON object")
    kind = raw.get("type", default_type)
    if kind not in TYPES:
        raise EventError("type", f"must be one of {', '.join(TYPES)}")
    if default_type and kind != default_type:
        raise EventError("type", f"must be {default_type!r} on this endpoint")
    user_id = _optional_id(raw, "userId")
    anonymous_id = _optional_id(raw, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise EventError("userId", "userId or anonymousId is required")

    name = raw.get("event") if kind == "track" else raw.get("name")
    if kind == "track" and (not isinstance(name, str) or not name.strip()):
        raise EventError("event", "a track call needs a non-empty event name")
    if name is not None and not isinstance(name, str):
        raise EventError("name", "must be a string")
    if name and len(name) > 200:
        raise EventError("event" if kind == "track" else "name", "longer than 200 characters")

    sent_raw = raw.get("sentAt", batch_sent_at)
    sent_at = parse_time(sent_raw, "sentAt") if sent_raw is not None else None
    original = raw.get("timestamp", raw.get("originalTimestamp"))
    original_ts = parse_time(original, "timestamp") if original is not None else None
    if original_ts is None:
        timestamp = received_at
    elif sent_at is not None and correct_skew:
        # Segment's skew correction: the device clock is off by (sentAt - receivedAt).
        timestamp = original_ts + (received_at - sent_at)
    else:
        timestamp = original_ts
    if timestamp > received_at + max_future_ms:
        raise EventError("timestamp", "more than the allowed skew in the future")
    floor = _EARLIEST_MS if max_past_ms is None else received_at - max_past_ms
    if timestamp < floor:
        raise EventError("timestamp", "too far in the past for this endpoint (use /v1/import for history)"
                         if max_past_ms is not None else "before the year 2000")

    message_id = _optional_id(raw, "messageId") or message_id_for(raw)
    event = Event(
        tenant_id=tenant_id, user_id=user_id or anonymous_id, anonymous_id=anonymous_id, type=kind,
        name=(name or "").strip(), message_id=message_id, timestamp=timestamp, received_at=received_at,
        sent_at=sent_at, original_timestamp=original_ts,
        properties=_object(raw, "properties"), traits=_object(raw, "traits"), context=_object(raw, "context"),
        previous_id=_optional_id(raw, "previousId"), group_id=_optional_id(raw, "groupId"),
    )
    if kind == "alias" and event.previous_id is None:
        raise EventError("previousId", "an alias call needs previousId")
    if kind == "group" and event.group_id is None:
        raise EventError("groupId", "a group call needs groupId")
    return event
