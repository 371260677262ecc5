"""Session fixtures: the real stack, a real worker and a real API, shared by the tests.

The test stack lives apart from a developer's own (`retain demo`) stack: its own RETAIN_HOME,
Redis on port 6390 and Cassandra nodes on 127.0.0.11 (dc1) and 127.0.0.12 (dc2), so both can run
at once. Set RETAIN_TEST_REUSE_STACK=1 to keep the stack running between test runs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.harness import ROOT


def _read_env(path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return {name: value for name, value in pairs}


TEST_ENV = _read_env(ROOT / "tests" / "stack.env")
TEST_ENV["RETAIN_HOME"] = str(ROOT / TEST_ENV["RETAIN_HOME"])
# Before anything imports retain.worker.app, which reads the environment once.
for _name in [n for n in os.environ if n.startswith("RETAIN_") and not n.startswith("RETAIN_TEST_")]:
    del os.environ[_name]
os.environ.update(TEST_ENV)

from retain.config import Settings  # noqa: E402
from retain.stack import Stack  # noqa: E402
from retain.store.cassandra import CassandraStore  # noqa: E402
from retain.store.schema import migrate  # noqa: E402
from retain.store.redis import redis_client  # noqa: E402
from tests.harness import start_api, start_worker  # noqa: E402

REUSE = bool(os.environ.get("RETAIN_TEST_REUSE_STACK"))
pytest_plugins = ["tests.aws_fixtures", "tests.pg_fixtures"]


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def stack(settings: Settings):
    """Redis and two Cassandra datacenters, up for the whole session.

    Both, always: a node that knows a peer which is down waits for schema agreement on every
    schema change, so a session must not see dc2 come and go.
    """
    the_stack = Stack(settings)
    the_stack.up(2)
    yield the_stack
    if not REUSE:
        the_stack.down()


@pytest.fixture(scope="session")
def two_dcs(stack: Stack) -> Stack:
    return stack


@pytest.fixture(scope="session")
def schema(stack: Stack, settings: Settings) -> CassandraStore:
    """The session keyspace, migrated: what the session worker and API use."""
    store = CassandraStore(settings)
    migrate(store, settings.cassandra_replication)
    yield store
    store.close()


@pytest.fixture
def tenant(schema: CassandraStore):
    """A fresh tenant of the session keyspace with its keys."""
    from retain.tenancy.registry import TenantRegistry

    created, keys = TenantRegistry(schema).create(f"t-{uuid.uuid4().hex[:10]}")
    return {"id": created.tenant_id, "write": keys["write"], "read": keys["read"]}


@pytest.fixture(scope="session")
def worker(stack: Stack, settings: Settings, schema: CassandraStore):
    proc = start_worker(settings, f"test-worker-{uuid.uuid4().hex[:6]}")
    yield proc
    proc.stop(60)


@pytest.fixture(scope="session")
def api(stack: Stack, settings: Settings, schema: CassandraStore):
    proc, url = start_api(settings)
    yield url
    proc.stop(30)


@contextmanager
def _keyspace_of_its_own(settings: Settings) -> Iterator[CassandraStore]:
    """A store bound to a new keyspace name (not created); the keyspace is dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    store = CassandraStore(settings, keyspace=name)
    try:
        yield store
    finally:
        # Without waiting for dc2's node to agree (a second or more): the next migration waits for
        # the agreement once, at its end.
        store.session.cluster.max_schema_agreement_wait = 0
        store.execute(f"DROP KEYSPACE IF EXISTS {name}")
        store.close()


@pytest.fixture
def blank_keyspace(stack: Stack, settings: Settings):
    with _keyspace_of_its_own(settings) as store:
        yield store


@pytest.fixture
def keyspace(blank_keyspace: CassandraStore) -> CassandraStore:
    """A keyspace of this test's own with retain's schema."""
    migrate(blank_keyspace, {"dc1": 1})
    return blank_keyspace


@pytest.fixture(scope="module")
def module_keyspace(stack: Stack, settings: Settings):
    """A keyspace with retain's schema for a module whose tests each name what they add apart."""
    with _keyspace_of_its_own(settings) as store:
        migrate(store, {"dc1": 1})
        yield store


@pytest.fixture
def test_settings(settings: Settings) -> Settings:
    """Session settings with a Redis key prefix of this test's own."""
    return settings.replace(redis_prefix=f"retain:t{uuid.uuid4().hex[:10]}:")


@pytest.fixture
def data_redis(stack: Stack, test_settings: Settings):
    client = redis_client(test_settings)
    yield client
    keys = list(client.scan_iter(f"{test_settings.redis_prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="session")
def spark(settings: Settings):
    """One real local Spark session for the test session (Spark takes seconds to start)."""
    from retain.spark.session import spark_session

    session = spark_session(settings.replace(spark_master="local[2]", spark_shuffle_partitions=4), "retain-tests")
    yield session
    session.stop()
