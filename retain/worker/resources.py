"""Per-process connections a task uses: made on first use, dropped after a fork."""

from __future__ import annotations

import redis

from retain.config import Settings
from retain.store.cassandra import CassandraStore
from retain.store.redis import redis_client

_redis: redis.Redis | None = None
_cassandra: CassandraStore | None = None


def settings() -> Settings:
    from retain.worker.app import app

    return app.retain_settings


def data_redis() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis_client(settings())
    return _redis


def cassandra() -> CassandraStore:
    global _cassandra
    if _cassandra is None:
        _cassandra = CassandraStore(settings())
    return _cassandra


def reset() -> None:
    """Forget connections inherited from a parent process (a forked pool child must not use them)."""
    global _redis, _cassandra
    _redis = None
    _cassandra = None


def close() -> None:
    if _cassandra is not None:
        _cassandra.close()
    reset()
