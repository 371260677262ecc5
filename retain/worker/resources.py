"""Per-process connections and the Spark session a task uses: made on first use, dropped after a fork."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from retain.config import Settings
from retain.store.cassandra import CassandraStore
from retain.store.redis import redis_client

_redis: redis.Redis | None = None
_cassandra: CassandraStore | None = None
_ingestor = None
_rebuilder = None
_spark = None


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


def spark():
    """The process's Spark session, started by its first training or scoring task and kept for the
    next: a new one costs every task a JVM start and a cold JIT, about half of a small tenant's
    training time. One that has stopped (its JVM died) is replaced."""
    global _spark
    if _spark is None or not _running(_spark):
        from retain.spark.session import spark_session

        _spark = spark_session(settings(), "retain-worker")
    return _spark


@contextmanager
def spark_jobs(name: str) -> Iterator[Any]:
    """The process's Spark session for one task, its jobs in a group of their own: a task cut short
    (time limit, error) cancels what it left running instead of handing it to the next task."""
    session = spark()
    group = f"{name}-{uuid.uuid4().hex[:8]}"
    session.sparkContext.setJobGroup(group, name)
    try:
        yield session
    except BaseException:
        if _running(session):
            session.sparkContext.cancelJobGroup(group)
        raise


def _running(session) -> bool:
    from py4j.protocol import Py4JError

    try:
        return not session.sparkContext._jsc.sc().isStopped()
    except (Py4JError, AttributeError):  # the JVM is gone, or the context was stopped from Python
        return False


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
    global _redis, _cassandra, _ingestor, _rebuilder, _spark
    _spark = None
    _redis = None
    _cassandra = None
    _ingestor = None
    _rebuilder = None


def close(signalled: bool = False) -> None:
    """Close what this process opened. A process ``signalled`` to exit leaves its Spark JVM alone:
    the JVM got the same signal (it shares the process group) and stops its context in its own
    shutdown hook, and it exits anyway once this process has (PySpark's gateway ends at the EOF of
    its stdin). Asked to stop meanwhile, it races its own shutdown, and py4j logs the broken
    connection as an error."""
    global _spark
    if _cassandra is not None:
        _cassandra.close()
    if _spark is not None and not signalled and _running(_spark):
        _spark.stop()
    _spark = None
    reset()
