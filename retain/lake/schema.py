"""The lake's row: one flat record per event, what Spark jobs read.

Rows are built by the ingest worker when an event is committed (with the tenant's classification
at that time) and staged in Redis until the lake flush writes them to Parquet. Times are
milliseconds since the epoch, UTC; ``date`` and ``hour`` (UTC) are the partition of the file.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from retain.events import Event
from retain.tenancy.config import Traits

COLUMNS: tuple[tuple[str, str], ...] = (
    ("tenant_id", "string"), ("user_id", "string"), ("anonymous_id", "string"), ("type", "string"),
    ("name", "string"), ("message_id", "string"), ("event_time", "timestamp_ms"), ("received_at", "timestamp_ms"),
    ("date", "string"), ("hour", "int8"), ("visit", "bool"), ("revenue", "float64"), ("channel", "string"),
    ("send", "bool"), ("response", "bool"), ("content_id", "string"), ("content_category", "string"),
    ("campaign", "string"), ("timezone", "string"), ("properties", "string"), ("context", "string"),
)


def day_and_hour(ms: int) -> tuple[str, int]:
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d"), moment.hour


def _campaign(event: Event) -> str | None:
    campaign = event.context.get("campaign")
    if isinstance(campaign, dict) and campaign.get("name"):
        return str(campaign["name"])
    value = event.properties.get("campaign_id") or event.properties.get("campaign")
    return str(value) if isinstance(value, (str, int)) else None


def lake_row(event: Event, traits: Traits, event_time: int) -> dict[str, Any]:
    """The lake record of ``event``, at its canonical (first accepted) time."""
    day, hour = day_and_hour(event_time)
    tz = event.context.get("timezone")
    return {
        "tenant_id": event.tenant_id, "user_id": event.user_id, "anonymous_id": event.anonymous_id,
        "type": event.type, "name": event.name, "message_id": event.message_id,
        "event_time": event_time, "received_at": event.received_at, "date": day, "hour": hour,
        "visit": traits.visit, "revenue": traits.revenue, "channel": traits.channel,
        "send": traits.send, "response": traits.response, "content_id": traits.content_id,
        "content_category": traits.content_category, "campaign": _campaign(event),
        "timezone": tz if isinstance(tz, str) else None,
        "properties": json.dumps(event.properties, separators=(",", ":"), default=str),
        "context": json.dumps(event.context, separators=(",", ":"), default=str),
    }
