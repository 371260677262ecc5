"""Writing a batch: event store, lake staging, counters and the dirty-user set, exactly once.

See retain.ingest.ledger for the protocol that makes a redelivered or retried batch harmless.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import msgspec
import redis
from cassandra.concurrent import execute_concurrent_with_args

from retain.config import Settings
from retain.events import Event, encode, from_dict
from retain.ingest import deadletter
from retain.ingest.journal import Journal
from retain.ingest.ledger import Ledger
from retain.lake.schema import day_and_hour, lake_row
from retain.store.cassandra import CassandraStore
from retain.tenancy.config import TenantConfig, classify
from retain.tenancy.registry import TenantError, TenantRegistry

_INSERT_EVENT = ("INSERT INTO events_by_user (tenant_id, user_id, event_time, message_id, type, name, payload) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?")


@dataclass
class BatchResult:
    tenant: str
    events: int
    duplicates_in_batch: int
    committed: int
    dead_letters: int

    def to_dict(self) -> dict:
        return asdict(self)


class TenantConfigs:
    """Tenant configurations, cached per process for a minute (config edits apply within it)."""

    def __init__(self, registry: TenantRegistry, ttl: float = 60.0) -> None:
        self.registry, self.ttl = registry, ttl
        self._cache: dict[str, tuple[float, TenantConfig]] = {}

    def get(self, tenant: str) -> TenantConfig:
        hit = self._cache.get(tenant)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        try:
            config = self.registry.get(tenant).config
        except TenantError:
            config = TenantConfig()  # a source's tenant was deleted mid-flight: still keep its events
        self._cache[tenant] = (time.monotonic() + self.ttl, config)
        return config


class Ingestor:
    def __init__(self, settings: Settings, store: CassandraStore, client: redis.Redis) -> None:
        self.settings, self.store, self.client = settings, store, client
        self.ledger = Ledger(client, settings.redis_prefix, settings.dedupe_ttl_seconds, settings.counters_ttl_days * 86400)
        self.configs = TenantConfigs(TenantRegistry(store))
        self.journal = Journal(client, settings)

    def process(self, payload: dict) -> BatchResult:
        tenant = payload["tenant"]
        config = self.configs.get(tenant)
        unique: dict[str, Event] = {}
        for data in payload.get("events", []):
            event = from_dict(data)
            unique.setdefault(event.message_id, event)
        times = self.ledger.claim(tenant, [(mid, ev.timestamp) for mid, ev in unique.items()])
        self._write_events(tenant, unique, times, config)
        letters = deadletter.write(self.store, tenant, payload.get("source", "?"), payload["received_at"],
                                   payload.get("rejected", []), self.settings.deadletter_ttl_days)
        commits = []
        for mid, event in unique.items():
            ms = times[mid]
            day, hour = day_and_hour(ms)
            row = encode_row(lake_row(event, classify(event, config), ms))
            commits.append((mid, event.user_id, ms, day, hour, event.name or event.type, row))
        committed = self.ledger.commit(tenant, commits)
        if payload.get("batch_id"):
            self.journal.done(payload["batch_id"])
        return BatchResult(tenant, len(payload.get("events", [])), len(payload.get("events", [])) - len(unique),
                           committed, letters)

    def _write_events(self, tenant: str, events: dict[str, Event], times: dict[str, int], config: TenantConfig) -> None:
        ttl = config.event_ttl_days * 86400
        params = []
        for mid, event in events.items():
            canonical = event if times[mid] == event.timestamp else _with_time(event, times[mid])
            params.append((tenant, event.user_id, times[mid], mid, event.type, event.name,
                           encode(canonical).decode(), ttl))
        if params:
            execute_concurrent_with_args(self.store.session, self.store.prepare(_INSERT_EVENT), params,
                                         concurrency=64, raise_on_first_error=True)

    def staged(self) -> int:
        return int(self.client.xlen(self.ledger.staging_key))


def _with_time(event: Event, ms: int) -> Event:
    return msgspec.structs.replace(event, timestamp=ms)


def encode_row(row: dict) -> str:
    return json.dumps(row, separators=(",", ":"))
