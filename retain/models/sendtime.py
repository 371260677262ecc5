"""Send time: when in the week each user engages, shrunk toward when the tenant's users do.

Engagement is counted in 168 hour-of-week buckets of the user's local time, bucket 0 being Monday
00:00-00:59 and bucket b covering weekday b // 24 (0 = Monday) at hour b % 24. A user's distribution
is their own counts plus ``strength`` pseudo-events spread like the tenant's, normalised: with few
events it is the tenant's pattern, with many it is their own.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

BUCKETS = 168
_HOUR_MS = 3_600_000
# 1970-01-01 was a Thursday: hour 0 of the epoch is hour 72 of its Monday-based week.
_EPOCH_HOUR_OF_WEEK = 3 * 24


def tenant_distribution(counts_by_bucket) -> np.ndarray:
    """The tenant's engagement over the 168 buckets, with one pseudo-event added to each.

    The add-one keeps every hour possible: a user's single event at an hour the tenant never saw
    must not be the only thing that makes that hour non-zero.
    """
    counts = np.asarray(counts_by_bucket, dtype=float)
    if counts.shape != (BUCKETS,):
        raise ValueError(f"counts_by_bucket must have {BUCKETS} buckets, got shape {counts.shape}")
    if np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise ValueError("counts_by_bucket must be finite and non-negative")
    return (counts + 1.0) / (counts.sum() + BUCKETS)


def user_distribution(user_counts, tenant_dist, strength: float = 10.0) -> np.ndarray:
    """(counts + strength * tenant_dist) / (total + strength) for each row of ``user_counts``.

    ``strength`` is a number of pseudo-events: a user needs about that many events of their own
    before their pattern weighs as much as the tenant's. Accepts one user (168,) or (users, 168).
    """
    counts = np.asarray(user_counts, dtype=float)
    tenant = np.asarray(tenant_dist, dtype=float)
    if counts.shape[-1:] != (BUCKETS,) or counts.ndim > 2 or tenant.shape != (BUCKETS,):
        raise ValueError(f"user_counts must be (users, {BUCKETS}) and tenant_dist ({BUCKETS},), "
                         f"got {counts.shape} and {tenant.shape}")
    if strength <= 0:
        raise ValueError(f"strength must be positive, got {strength}")
    tenant = tenant / tenant.sum()
    total = counts.sum(axis=-1, keepdims=True)
    return (counts + strength * tenant) / (total + strength)


def best_hour(user_dist):
    """(bucket, hour_of_day, weekday) of each user's most likely hour; weekday 0 is Monday.

    Scalars for one distribution (168,), arrays for (users, 168); ties go to the earliest bucket.
    """
    dist = np.asarray(user_dist, dtype=float)
    if dist.shape[-1:] != (BUCKETS,) or dist.ndim > 2:
        raise ValueError(f"user_dist must be ({BUCKETS},) or (users, {BUCKETS}), got {dist.shape}")
    bucket = np.argmax(dist, axis=-1)
    if dist.ndim == 1:
        return int(bucket), int(bucket % 24), int(bucket // 24)
    return bucket, bucket % 24, bucket // 24


def _zone(name) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # Clients send whatever the device reports; an unknown zone falls back to UTC rather than
        # failing the user's profile.
        return None


def _offset_ms(zone: ZoneInfo, utc_ms: np.ndarray) -> np.ndarray:
    out = np.empty(utc_ms.shape, dtype=np.int64)
    for i, ms in enumerate(utc_ms.tolist()):
        local = datetime.fromtimestamp(ms / 1000.0, timezone.utc).astimezone(zone)
        out[i] = int(local.utcoffset().total_seconds() * 1000)
    return out


def _local_ms(zone: ZoneInfo, utc_ms: np.ndarray) -> np.ndarray:
    # Offsets change a few times a year: look them up once per distinct UTC hour (both ends of it),
    # not once per event; only events in an hour that contains a transition are looked up one by one.
    hours, inverse = np.unique(utc_ms // _HOUR_MS, return_inverse=True)
    start = _offset_ms(zone, hours * _HOUR_MS)
    end = _offset_ms(zone, hours * _HOUR_MS + (_HOUR_MS - 1))
    offsets = start[inverse]
    changing = (start != end)[inverse]
    if changing.any():
        offsets[changing] = _offset_ms(zone, utc_ms[changing])
    return utc_ms + offsets


@functools.lru_cache(maxsize=65536)
def _hour_offset_ms(name: str, hour: int) -> int | None:
    """The zone's UTC offset throughout UTC hour ``hour``, or None if it changes within the hour."""
    zone = _zone(name)
    if zone is None:
        return 0
    start, end = _offset_ms(zone, np.array([hour * _HOUR_MS, hour * _HOUR_MS + _HOUR_MS - 1]))
    return int(start) if start == end else None


def local_bucket(epoch_ms: int, tz_name: str | None) -> int:
    """:func:`to_local_bucket` of one timestamp, cached per zone and hour: what per-user code calls
    event by event without numpy's per-call overhead."""
    offset = _hour_offset_ms(tz_name, epoch_ms // _HOUR_MS) if isinstance(tz_name, str) and tz_name else 0
    if offset is None:
        offset = int(_offset_ms(_zone(tz_name), np.array([epoch_ms]))[0])
    return int(((epoch_ms + offset) // _HOUR_MS + _EPOCH_HOUR_OF_WEEK) % BUCKETS)


def to_local_bucket(epoch_ms, tz_names) -> np.ndarray:
    """Hour-of-week bucket of each UTC timestamp (ms) in its time zone (IANA name; unknown/None: UTC).

    ``tz_names`` is one name per timestamp or a single name for all.
    """
    utc_ms = np.asarray(epoch_ms, dtype=np.int64)
    names = np.asarray(tz_names, dtype=object)
    if names.ndim == 0:
        names = np.full(utc_ms.shape, names.item(), dtype=object)
    if names.shape != utc_ms.shape or utc_ms.ndim != 1:
        raise ValueError(f"epoch_ms and tz_names must be 1-D of one length, got {utc_ms.shape} and {names.shape}")
    local_ms = utc_ms.copy()
    # None and NaN do not sort against strings: map them to "" so np.unique can group by zone.
    keys = np.array(["" if not isinstance(n, str) else n for n in names.tolist()], dtype=object)
    zone_names, groups = np.unique(keys, return_inverse=True)
    by_zone = np.argsort(groups, kind="stable")
    bounds = np.searchsorted(groups[by_zone], np.arange(len(zone_names) + 1))
    for g, name in enumerate(zone_names):
        zone = _zone(name)
        if zone is not None:
            rows = by_zone[bounds[g]:bounds[g + 1]]
            local_ms[rows] = _local_ms(zone, utc_ms[rows])
    return ((local_ms // _HOUR_MS + _EPOCH_HOUR_OF_WEEK) % BUCKETS).astype(np.int64)
