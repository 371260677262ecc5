"""The API's in-memory profile cache against a real Redis: hits stay in memory, and every change in
Redis (a newer profile, an expiry, a flush, a lost invalidation stream) reaches it at once."""

from __future__ import annotations

import os
import uuid

import pytest
import redis

from retain.profiles.cache import ProfileCache
from retain.profiles.nearcache import NearCache
from tests.harness import poll


@pytest.fixture
def caches(stack, settings):
    prefix = f"retain:near{uuid.uuid4().hex[:8]}:"
    writer_client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    reader_client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    writer = ProfileCache(writer_client, prefix, ttl=3600, negative_ttl=30)
    near = NearCache(ProfileCache(reader_client, prefix, ttl=3600, negative_ttl=30), max_entries=100,
                     url=settings.redis_url)
    near.get("t", "warm-up")
    poll(lambda: near.live, 10, "the near cache receiving invalidations")
    yield writer, near, writer_client
    near.close()
    writer_client.close()
    reader_client.close()


def _hmget_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0))


def _version(near: NearCache, user: str) -> int | None:
    entry = near.get("t", user)
    return None if entry is None else entry.version


def _in_memory(near: NearCache, user: str, version: int) -> None:
    # The announcement of the write that made ``version`` may arrive just after the first read and
    # (rightly) keep that read out of memory: read until the entry stays.
    poll(lambda: _version(near, user) == version and near.holds("t", user), 5, f"{user} v{version} held in memory")


def test_a_hit_is_served_from_memory_and_a_newer_profile_replaces_it(caches) -> None:
    writer, near, client = caches
    writer.put_encoded("t", [("u1", 10, '{"v": 10}')])
    _in_memory(near, "u1", 10)
    before = _hmget_calls(client)
    assert [_version(near, "u1") for _ in range(50)] == [10] * 50
    assert _hmget_calls(client) - before <= 1, "hits went to Redis"  # INFO itself may race one read
    writer.put_encoded("t", [("u1", 11, '{"v": 11}')])
    poll(lambda: _version(near, "u1") == 11, 5, "the newer profile replacing the one in memory")
    writer.put_encoded("t", [("u1", 9, '{"v": 9}')])  # an older rebuild changes nothing anywhere
    assert _version(near, "u1") == 11


def test_expiry_flush_and_a_remembered_miss_reach_memory(caches) -> None:
    writer, near, client = caches
    assert near.get("t", "ghost") is None
    writer.remember_missing("t", "ghost")
    poll(lambda: near.get("t", "ghost") is not None and near.get("t", "ghost").body is None, 5,
         "the remembered miss read into memory")
    writer.put_encoded("t", [("ghost", 5, '{"v": 5}')])
    poll(lambda: _version(near, "ghost") == 5, 5, "a profile written over a remembered miss replacing it")
    writer.put_encoded("t", [("u2", 3, '{"v": 3}')])
    assert _version(near, "u2") == 3
    client.delete(writer.key("t", "u2"))
    poll(lambda: near.get("t", "u2") is None, 5, "a deleted entry leaving memory")


def test_a_lost_invalidation_stream_empties_memory_until_it_is_back(caches) -> None:
    writer, near, client = caches
    writer.put_encoded("t", [("u3", 1, '{"v": 1}')])
    _in_memory(near, "u3", 1)
    # Only this process's listeners: the session's workers hold pub/sub connections of their own.
    prefix = f"retain-near-{os.getpid()}-"
    mine = [c["id"] for c in client.client_list(_type="pubsub") if c.get("name", "").startswith(prefix)]
    assert mine, "no near-cache listener of this process among Redis's clients"
    for client_id in mine:
        client.client_kill_filter(_id=client_id)
    # An announcement sent to the dead listener is lost; noticing the loss empties memory.
    writer.put_encoded("t", [("u3", 2, '{"v": 2}')])
    poll(lambda: _version(near, "u3") == 2, 5, "the change made while the listener was gone being served")
    poll(lambda: near.live, 15, "the near cache reconnecting its invalidation stream")
    assert _version(near, "u3") == 2
    writer.put_encoded("t", [("u3", 3, '{"v": 3}')])
    poll(lambda: _version(near, "u3") == 3, 5, "invalidations flowing again after the reconnection")


@pytest.mark.parametrize("many", [False, True], ids=["get", "get_many"])
def test_a_change_racing_with_a_read_is_not_kept_stale(caches, many: bool) -> None:
    writer, near, client = caches
    writer.put_encoded("t", [("u4", 1, '{"v": 1}')])
    name = "get_many" if many else "get"
    inner_read = getattr(near.inner, name)

    def read_then_change(tenant, users):
        read = inner_read(tenant, users)  # the old entry is on its way back...
        writer.put_encoded("t", [("u4", 2, '{"v": 2}')])  # ...when a newer one lands
        return read

    def version() -> int | None:
        entry = near.get_many("t", ["u4"])[0] if many else near.get("t", "u4")
        return None if entry is None else entry.version

    setattr(near.inner, name, read_then_change)
    assert version() == 1
    delattr(near.inner, name)  # the class's own method again
    poll(lambda: version() == 2, 5, "the newer profile served after a racing change")
    assert len(near) <= near.max_entries


def test_an_entry_is_kept_no_longer_than_its_ttl(caches, settings) -> None:
    # Redis announces an expiry only when it notices it (a read, or its sampling expiry cycle); the
    # near cache reads memory instead, so it must let entries go by itself as well.
    writer, near, client = caches
    brief = ProfileCache(near.inner.client, near.inner.prefix, ttl=3600, negative_ttl=1)
    short = NearCache(brief, max_entries=10, url=settings.redis_url)
    short.get("t", "warm-up")
    poll(lambda: short.live, 10, "the second near cache receiving invalidations")
    brief.remember_missing("t", "brief")
    assert short.get("t", "brief") is not None
    poll(lambda: short.get("t", "brief") is None, 5, "a remembered miss leaving memory after its TTL")
    short.close()
