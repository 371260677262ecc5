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

from retain.models.sendtime import BUCKETS, to_local_bucket

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


def _column(rows: Mapping[str, Any], name: str, size: int) -> np.ndarray:
    values = rows.get(name)
    return np.full(size, None, dtype=object) if values is None else np.asarray(values, dtype=object)


def _ms(values: np.ndarray) -> np.ndarray:
    """Epoch milliseconds from ints or datetime-likes (Spark hands timestamps to pandas as datetimes)."""
    if values.size and not isinstance(values[0], (int, np.integer)):
        return values.astype("datetime64[ms]").astype(np.int64)
    return values.astype(np.int64)


def _flags(values: np.ndarray) -> np.ndarray:
    return np.array([bool(v) if v is not None and v == v else False for v in values], dtype=bool)


def _present(values: np.ndarray) -> np.ndarray:
    return np.array([isinstance(v, str) and v != "" for v in values], dtype=bool)


def activity(user_id: str, rows: Mapping[str, Sequence[Any]], as_of_ms: int, snapshot_us: int | None = None) -> Activity:
    """The :class:`Activity` of ``user_id`` from their events, given as columns named as in the lake.

    Events after ``as_of_ms`` are ignored, so a profile "as of" an instant does not depend on when it
    is computed. ``snapshot_us`` defaults to the newest receive time among the events.
    """
    times = _ms(np.asarray(rows["event_time"]))
    keep = times <= as_of_ms
    size = int(keep.sum())
    cols = {name: _column(rows, name, times.size)[keep] for name in COLUMNS if name != "event_time"}
    times = times[keep]
    received = _ms(cols["received_at"]) if size else np.zeros(0, dtype=np.int64)
    result = Activity(user_id, as_of_ms, snapshot_us if snapshot_us is not None
                      else int(received.max()) * 1000 if size else 0)
    if size == 0:
        return result
    result.last_seen_ms = int(times.max())
    visits, sends, responses = _flags(cols["visit"]), _flags(cols["send"]), _flags(cols["response"])
    if visits.any():
        days = np.unique(times[visits] // _DAY_MS)
        result.first_day, result.last_day, result.active_days = int(days[0]), int(days[-1]), int(days.size)
    revenue = np.array([v if isinstance(v, (int, float)) and v == v else 0.0 for v in cols["revenue"]], dtype=float)
    result.transactions, result.revenue = int((revenue > 0).sum()), float(revenue[revenue > 0].sum())
    channel = cols["channel"]
    named = _present(channel)
    result.sends = dict(Counter(channel[sends & named].tolist()))
    result.responses = dict(Counter(channel[responses & named].tolist()))
    engaged = visits | responses
    zones = cols["timezone"]
    if engaged.any():
        buckets = to_local_bucket(times[engaged], np.where(_present(zones[engaged]), zones[engaged], None))
        result.hours = np.bincount(buckets, minlength=BUCKETS).astype(float)
    if _present(zones).any():
        # The zone of the most recent event that carried one: where the user is now.
        latest = np.flatnonzero(_present(zones))
        result.timezone = str(zones[latest[np.argmax(times[latest])]])
    content, category = _present(cols["content_id"]), _present(cols["content_category"])
    result.seen = frozenset(cols["content_id"][content].tolist())
    result.categories = dict(Counter(cols["content_category"][content & category].tolist()))
    tracks = (cols["type"] == "track") & _present(cols["name"])
    result.actions = frozenset([f"event:{n}" for n in cols["name"][tracks].tolist()]
                               + [f"category:{c}" for c in cols["content_category"][category].tolist()])
    return result
