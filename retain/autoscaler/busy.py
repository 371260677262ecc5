"""Which machines have tasks in flight, so a cloud fleet shrinks by idle machines first.

Workers on EC2 report their instance id while they hold tasks (a sorted set in the data Redis,
scored by when the report expires, so a machine that vanished stops counting as busy on its own);
the Auto Scaling backend protects those instances from scale-in and releases the others.
"""

from __future__ import annotations

import time

import redis

KEY = "autoscaler:busy"


def report(data: redis.Redis, prefix: str, instance_id: str, in_flight: int, ttl: float = 120.0,
           now: float | None = None) -> None:
    """Record that ``instance_id`` holds ``in_flight`` tasks (0 = idle); kept for ``ttl`` seconds."""
    key = prefix + KEY
    if in_flight > 0:
        data.zadd(key, {instance_id: (now if now is not None else time.time()) + ttl})
    else:
        data.zrem(key, instance_id)


def busy_instances(data: redis.Redis, prefix: str, now: float | None = None) -> set[str]:
    """Instances whose last report says they hold tasks and has not expired."""
    key = prefix + KEY
    at = now if now is not None else time.time()
    data.zremrangebyscore(key, "-inf", at)
    return {member.decode() if isinstance(member, bytes) else member
            for member in data.zrangebyscore(key, at, "+inf")}
