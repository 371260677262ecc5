"""Reading the real-time counters the ingest ledger maintains (per tenant and UTC day)."""

from __future__ import annotations

import redis

from retain.config import Settings


def summary(client: redis.Redis, settings: Settings, tenant: str, day: str) -> dict:
    base = f"{settings.redis_prefix}c:{tenant}:{day}:"
    pipe = client.pipeline(transaction=False)
    pipe.pfcount(base + "users")
    pipe.hgetall(base + "events")
    pipe.hgetall(base + "hours")
    users, events, hours = pipe.execute()
    counts = {name: int(n) for name, n in sorted(events.items(), key=lambda kv: (-int(kv[1]), kv[0]))}
    return {
        "tenant": tenant, "date": day, "active_users": int(users), "events": sum(counts.values()),
        "by_event": counts, "by_hour": {str(h): int(hours.get(str(h), 0)) for h in range(24)},
    }


def dirty_users(client: redis.Redis, settings: Settings, tenant: str) -> dict[str, int]:
    """Users waiting for a profile rebuild, with the arrival time (ms) of their latest events."""
    return {user: int(ms) for user, ms in client.zrange(f"{settings.redis_prefix}dirty:{tenant}", 0, -1, withscores=True)}
