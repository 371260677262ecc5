"""Per-process connections a task uses: made on first use, dropped after a fork."""

from __future__ import annotations

import redis

from retain.config import Settings
from retain.store.cassandra import CassandraStore
from retain.store.redis import redis_client

_redis: redis.Redis | None = None
_cassandra: CassandraStore | None = None
_ingestor = None
_rebuilder = None


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


def ingestor():
    """The process's Ingestor (its ledger scripts and tenant-config cache live as long as it)."""
    global _ingestor
    if _ingestor is None:
        from retain.ingest.pipeline import Ingestor

        _ingestor = Ingestor(settings(), cassandra(), data_redis())
    return _ingestor


def rebuilder():
    """The process's Rebuilder: its model cache is what makes a promoted version hot-swap in."""
    global _rebuilder
    if _rebuilder is None:
        from retain.ingest.pipeline import TenantConfigs
        from retain.profiles.rebuild import Rebuilder
        from retain.tenancy.registry import TenantRegistry

        cfg = settings()
        _rebuilder = Rebuilder(cfg, cassandra(), profile_cache(), TenantConfigs(TenantRegistry(cassandra())).get)
    return _rebuilder


def profile_cache():
    from retain.profiles.cache import ProfileCache

    cfg = settings()
    return ProfileCache(data_redis(), cfg.redis_prefix, cfg.profile_cache_ttl_seconds, cfg.profile_negative_ttl_seconds)


def dirty_users():
    from retain.profiles.dirty import DirtyUsers

    return DirtyUsers(data_redis(), settings().redis_prefix)


def request_lake_flush_if_due(ing) -> None:
    """Ask for a lake flush once enough rows are staged; the request key keeps it to one at a time."""
    cfg = settings()
    if ing.staged() >= cfg.lake_flush_events and \
            data_redis().set(f"{cfg.redis_prefix}lake:flush-requested", "1", nx=True, ex=30):
        from retain.worker.app import app

        app.send_task("ingest.flush_lake", queue="ingest")


def reset() -> None:
    """Forget connections inherited from a parent process (a forked pool child must not use them)."""
    global _redis, _cassandra, _ingestor, _rebuilder
    _redis = None
    _cassandra = None
    _ingestor = None
    _rebuilder = None
_rebuilder = None


def close() -> None:
    if _cassandra is not None:
        _cassandra.close()
    reset()
