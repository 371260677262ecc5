"""Redis clients for retain's data (counters, dirty-user sets, profile cache)."""

from __future__ import annotations

import redis

from retain.config import Settings


def redis_client(settings: Settings, timeout: float = 5.0) -> redis.Redis:
    """A client of the data Redis; thread-safe, with its own connection pool."""
    return redis.Redis.from_url(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                health_check_interval=30, decode_responses=True)


def key(settings: Settings, *parts: str) -> str:
    """A namespaced data key: ``key(s, "dirty", tenant)`` is ``retain:dirty:<tenant>``."""
    return settings.redis_prefix + ":".join(parts)
