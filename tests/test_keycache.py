"""The API's key cache against the registry in a real Cassandra: an entry past its time is read again by
one request while the others use it, a revoked key stops working once its entry is read again, and
made-up keys cannot push the real ones out."""

from __future__ import annotations

import threading
import uuid

import pytest

from retain.tenancy import keycache
from retain.tenancy.keycache import KeyCache
from retain.tenancy.registry import TenantRegistry
from tests.harness import poll

TTL = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingRegistry(TenantRegistry):
    """The real registry, counting its reads; while ``gate`` is set, a read waits until it opens."""

    def __init__(self, store) -> None:
        super().__init__(store)
        self.reads = 0
        self.gate: threading.Event | None = None
        self.reading = threading.Event()

    def owner(self, key):
        self.reads += 1
        self.reading.set()
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        return super().owner(key)


@pytest.fixture
def registry(schema) -> CountingRegistry:
    return CountingRegistry(schema)


def _read_in_thread(cache: KeyCache, key: str, into: list) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.append(cache.owner(key)))
    thread.start()
    return thread


def test_entries_are_read_once_per_ttl(registry, tenant):
    clock = Clock()
    cache = KeyCache(registry, TTL, clock=clock)
    owner = cache.owner(tenant["read"])
    assert (owner.tenant_id, owner.kind) == (tenant["id"], "read")
    clock.now += TTL - 1
    assert cache.owner(tenant["read"]) == owner
    assert registry.reads == 1
    clock.now += 2
    assert cache.owner(tenant["read"]) == owner
    assert registry.reads == 2


def test_while_one_request_reads_an_entry_again_the_others_use_it(registry, tenant):
    clock = Clock()
    cache = KeyCache(registry, TTL, clock=clock)
    owner = cache.owner(tenant["read"])
    clock.now += TTL + 1
    registry.gate, registry.reading = threading.Event(), threading.Event()
    first: list = []
    reader = _read_in_thread(cache, tenant["read"], first)
    assert registry.reading.wait(30), "the request past the entry's time did not read it again"
    # Meanwhile every other request is answered from the entry, without a read of its own.
    assert [cache.owner(tenant["read"]) for _ in range(50)] == [owner] * 50
    assert registry.reads == 2
    registry.gate.set()
    reader.join(30)
    assert first == [owner]
    assert cache.owner(tenant["read"]) == owner
    assert registry.reads == 2


def test_an_entry_is_not_used_a_ttl_past_its_time_even_while_read(registry, tenant):
    clock = Clock()
    cache = KeyCache(registry, TTL, clock=clock)
    cache.owner(tenant["read"])
    clock.now += 2 * TTL + 1
    registry.gate = threading.Event()
    hung: list = []
    reader = _read_in_thread(cache, tenant["read"], hung)
    poll(lambda: registry.reads == 2, 30, "the first request reading the entry again")
    second: list = []
    other = _read_in_thread(cache, tenant["read"], second)
    poll(lambda: registry.reads == 3, 30, "a second request reading the entry itself, not using it")
    registry.gate.set()
    reader.join(30)
    other.join(30)
    assert [o.tenant_id for o in hung + second] == [tenant["id"]] * 2


def test_a_revoked_key_stops_working_once_its_entry_is_read_again(schema, registry, tenant):
    clock = Clock()
    cache = KeyCache(registry, TTL, clock=clock)
    assert cache.owner(tenant["read"]) is not None
    TenantRegistry(schema).rotate(tenant["id"], ["read"], grace_seconds=0)
    assert cache.owner(tenant["read"]) is not None  # within the TTL, as documented
    clock.now += TTL + 1
    assert cache.owner(tenant["read"]) is None
    assert cache.owner(tenant["read"]) is None
    assert registry.reads == 2  # the unknown key is remembered too


def test_made_up_keys_do_not_push_the_real_ones_out(registry, tenant, monkeypatch):
    monkeypatch.setattr(keycache, "MAX_UNKNOWN", 5)
    cache = KeyCache(registry, TTL, clock=Clock())
    owner = cache.owner(tenant["read"])
    for _ in range(20):
        assert cache.owner(f"rk_{uuid.uuid4().hex}") is None
    assert registry.reads == 21
    assert cache.owner(tenant["read"]) == owner
    assert registry.reads == 21
