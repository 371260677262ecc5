"""A user's activity as of an instant: what every profile field is computed from.

Both ways of computing profiles build it from the same lake-shaped rows (see
``retain.lake.schema.lake_row``): the Spark batch scoring from the lake, the streaming rebuild from
the per-user event store classified with the tenant's configuration. One function from rows to
:class:`Activity` is what makes the two give the same profile for the same events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from retain.models.sendtime import BUCKETS, local_bucket

# The lake columns a profile reads.
COLUMNS = ("type", "name", "event_time", "received_at", "visit", "revenue", "channel", "send", "response",
           "content_id", "content_category", "timezone")
_DAY_MS = 86_400_000


def epoch_day(ms: int) -> int:
    """The UTC calendar day of an instant, as days since 1970-01-01 (what training counts in)."""
    return int(ms // _DAY_MS)


@dataclass
class Activity:
    """What the models need to know about one user, as of ``as_of_ms``.

    Days are UTC calendar days since the epoch; ``first_day`` is None for a user with no visit.
    ``snapshot_us`` says how much of the user's history this is (the newest receive time it
    includes, or the instant the events were read): it orders profiles of the same user.
    """

    user_id: str
    as_of_ms: int
    snapshot_us: int
    last_seen_ms: int | None = None
    first_day: int | None = None
    last_day: int | None = None
    active_days: int = 0
    transactions: int = 0
    revenue: float = 0.0
    sends: dict[str, int] = field(default_factory=dict)
    responses: dict[str, int] = field(default_factory=dict)
    hours: np.ndarray = field(default_factory=lambda: np.zeros(BUCKETS))
    timezone: str | None = None
    categories: dict[str, int] = field(default_factory=dict)
    seen: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()


def _ms(value: Any) -> int:
    """Epoch milliseconds from an int or a datetime-like (what a DataFrame may hand over)."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    if hasattr(value, "timestamp"):
        return int(round(value.timestamp() * 1000))
    return int(value)


def _true(value: Any) -> bool:
    return bool(value) and value == value  # None, False and NaN are all "no"


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def activity(user_id: str, rows: Mapping[str, Sequence[Any]], as_of_ms: int, snapshot_us: int | None = None) -> Activity:
    """The :class:`Activity` of ``user_id`` from their events, given as columns named as in the lake.

    Events after ``as_of_ms`` are ignored, so a profile "as of" an instant does not depend on when it
    is computed. ``snapshot_us`` defaults to the newest receive time among the events. Plain Python
    over the events: users have a handful to a few thousand, where numpy's per-call cost dominates.
    """
    times = [_ms(v) for v in rows["event_time"]]
    count = len(times)
    col = {name: (list(rows[name]) if rows.get(name) is not None else [None] * count)
           for name in COLUMNS if name != "event_time"}
    days: set[int] = set()
    hours = np.zeros(BUCKETS)
    sends: Counter = Counter()
    responses: Counter = Counter()
    categories: Counter = Counter()
    seen: set[str] = set()
    actions: set[str] = set()
    last_seen = newest_received = None
    zone_at = -1
    zone = None
    transactions, revenue = 0, 0.0
    for i, ms in enumerate(times):
        if ms > as_of_ms:
            continue
        last_seen = ms if last_seen is None else max(last_seen, ms)
        received = col["received_at"][i]
        if received is not None:
            received = _ms(received)
            newest_received = received if newest_received is None else max(newest_received, received)
        tz = col["timezone"][i] if _text(col["timezone"][i]) else None
        if tz is not None and ms > zone_at:
            zone_at, zone = ms, tz  # the zone of the latest event that carried one: where the user is now
        visit, response = _true(col["visit"][i]), _true(col["response"][i])
        if visit:
            days.add(ms // _DAY_MS)
        if visit or response:
            hours[local_bucket(ms, tz)] += 1
        value = col["revenue"][i]
        if isinstance(value, (int, float)) and value == value and value > 0:
            transactions, revenue = transactions + 1, revenue + float(value)
        channel = col["channel"][i]
        if _text(channel):
            if _true(col["send"][i]):
                sends[channel] += 1
            if response:
                responses[channel] += 1
        category = col["content_category"][i] if _text(col["content_category"][i]) else None
        if _text(col["content_id"][i]):
            seen.add(col["content_id"][i])
            if category is not None:
                categories[category] += 1
        if category is not None:
            actions.add(f"category:{category}")
        if col["type"][i] == "track" and _text(col["name"][i]):
            actions.add(f"event:{col['name'][i]}")
    if snapshot_us is None:
        snapshot_us = newest_received * 1000 if newest_received is not None else 0
    result = Activity(user_id, as_of_ms, snapshot_us, last_seen_ms=last_seen, transactions=transactions,
                      revenue=revenue, sends=dict(sends), responses=dict(responses), hours=hours, timezone=zone,
                      categories=dict(categories), seen=frozenset(seen), actions=frozenset(actions))
    if days:
        result.first_day, result.last_day, result.active_days = min(days), max(days), len(days)
    return result
