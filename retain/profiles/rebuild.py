"""The streaming rebuild: read a batch of users' events from the event store, apply the tenant's
current model, write the profiles to Cassandra and then to the cache.

Events are read at the write consistency (LOCAL_QUORUM), so a rebuild sees every event whose
ingestion marked the user dirty. The profile's version is the instant the events were read: any
rebuild that starts later sees at least as much, so the newest read wins everywhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import msgspec

from retain.config import Settings
from retain.events import Event
from retain.models.store import ModelStore
from retain.profiles.activity import COLUMNS, activity
from retain.profiles.cache import ProfileCache
from retain.profiles.model import ProfileModel, load_model
from retain.profiles.scoring import score
from retain.store.cassandra import WRITE, CassandraStore
from retain.store.profiles import ProfileStore, encode
from retain.tenancy.config import TenantConfig, classify

_EVENTS = "SELECT user_id, payload FROM events_by_user WHERE tenant_id = ? AND user_id IN ? PER PARTITION LIMIT ?"
_decode = msgspec.json.Decoder(Event).decode
# Users read, scored and written together within a batch (see Rebuilder.rebuild).
CHUNK = 50


@dataclass
class RebuildResult:
    tenant: str
    users: int
    written: int
    cached: int
    model_version: str | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def event_columns(payloads: list[str], config: TenantConfig) -> dict[str, list]:
    """Lake-shaped columns (see retain.lake.schema.lake_row) of a user's stored events, classified
    with the tenant's configuration: the same values the Spark batch scoring reads from the lake,
    built without the columns a profile does not read (properties and context as JSON, ...)."""
    columns: dict[str, list] = {name: [] for name in COLUMNS}
    for payload in payloads:
        event = _decode(payload)
        traits = classify(event, config)
        tz = event.context.get("timezone")
        for name, value in (("type", event.type), ("name", event.name), ("event_time", event.timestamp),
                            ("received_at", event.received_at), ("visit", traits.visit),
                            ("revenue", traits.revenue), ("channel", traits.channel), ("send", traits.send),
                            ("response", traits.response), ("content_id", traits.content_id),
                            ("content_category", traits.content_category),
                            ("timezone", tz if isinstance(tz, str) else None)):
            columns[name].append(value)
    return columns


class ModelCache:
    """Each tenant's current model, loaded once per process and swapped when another version
    becomes current (checked at most every ``refresh`` seconds)."""

    def __init__(self, store: ModelStore, refresh: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.refresh, self.clock = store, refresh, clock
        self._models: dict[str, tuple[float, str | None, str | None, ProfileModel]] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str, config: TenantConfig) -> ProfileModel:
        with self._lock:
            entry = self._models.get(tenant)
            if entry and self.clock() < entry[0]:
                return entry[3]
            pointer = self.store.pointer(tenant)
            key = (pointer["version"], pointer.get("switched_at"))
            if entry and (entry[1], entry[2]) == key and entry[3].horizon_days == config.horizon_days:
                model = entry[3]
            else:
                model = load_model(self.store, tenant, config)
            self._models[tenant] = (self.clock() + self.refresh, *key, model)
            return model


class Rebuilder:
    """What a profile worker process holds: its stores, model cache and tenant configurations."""

    def __init__(self, settings: Settings, store: CassandraStore, cache: ProfileCache,
                 configs: Callable[[str], TenantConfig]) -> None:
        self.settings, self.store, self.cache, self.configs = settings, store, cache, configs
        self.profiles = ProfileStore(store)
        self.models = ModelCache(ModelStore(settings), settings.profile_model_refresh_seconds)

    def _start_reads(self, tenant: str, users: list[str]) -> list:
        """Reads of the users' events, one request per group of users on the same replicas."""
        reads = self.store.by_replica(self.store.prepare(_EVENTS), (tenant,), users, self.settings.profile_max_events)
        return [self.store.session.execute_async(bound, execution_profile=WRITE) for bound in reads]

    @staticmethod
    def _payloads(reading: list, users: list[str]) -> list[list[str]]:
        """Each user's stored events, in the order of ``users``, from the reads' results (all pages)."""
        by_user: dict[str, list[str]] = {user: [] for user in users}
        for future in reading:
            for row in future.result():
                by_user[row.user_id].append(row.payload)
        return [by_user[user] for user in users]

    def rebuild(self, tenant: str, users: list[str]) -> RebuildResult:
        """Rebuild ``users`` in chunks, reading the next chunk's events and writing the last chunk's
        profiles while this one is scored: the batch costs about its compute, not compute plus two
        round trips per user."""
        started = time.perf_counter()
        users = list(dict.fromkeys(users))
        config = self.configs(tenant)
        model = self.models.get(tenant, config)
        now = datetime.now(timezone.utc)
        snapshot_us = int(now.timestamp() * 1_000_000)
        as_of_ms = snapshot_us // 1000
        chunks = [users[i:i + CHUNK] for i in range(0, len(users), CHUNK)]
        reading = self._start_reads(tenant, chunks[0]) if chunks else []
        profiles: list[dict] = []
        bodies: list[str] = []
        writing: list = []
        for k, chunk in enumerate(chunks):
            events = self._payloads(reading, chunk)
            if k + 1 < len(chunks):
                reading = self._start_reads(tenant, chunks[k + 1])
            activities = [activity(user, event_columns(payloads, config), as_of_ms, snapshot_us)
                          for user, payloads in zip(chunk, events)]
            scored = score(model, activities, now)
            encoded = [encode(p) for p in scored]  # once, for Cassandra and the cache
            writing += self.profiles.start_writes(scored, encoded)
            profiles += scored
            bodies += encoded
        for future in writing:
            future.result()  # raises the first failed write: the task fails and is retried whole
        cached = self.cache.put(profiles, bodies)  # after Cassandra: the cache never gets ahead of it
        return RebuildResult(tenant, len(users), len(writing), cached, model.version,
                             round(time.perf_counter() - started, 4))
