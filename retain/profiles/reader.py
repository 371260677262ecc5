"""Reading profiles for the API: the Redis cache first, then the local datacenter at LOCAL_ONE.

A miss is filled by one reader only. The first request to miss a user takes a short Redis lock and
reads Cassandra; concurrent requests for the same user (in any thread or API process) wait for the
cache to fill instead of all reading Cassandra: a popular user whose entry expires costs one read,
not hundreds. A waiter that sees nothing within the lock's lifetime reads Cassandra itself, so a
reader that died holding the lock delays others briefly and never blocks them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from cassandra.concurrent import execute_concurrent_with_args

from retain.profiles.cache import Cached, ProfileCache
from retain.store.cassandra import READ, CassandraStore

_SELECT = "SELECT version, body FROM profiles WHERE tenant_id = ? AND user_id = ?"
LOCK_MS = 1000
_WAIT_STEP = 0.005


@dataclass(frozen=True)
class Found:
    """A profile as stored (``body``: its JSON, None when the user has none), its version, and where
    it came from: "cache" or "store". Decoded only when asked: a whole profile is served as stored."""

    body: str | None
    version: int
    source: str

    @property
    def profile(self) -> dict[str, Any] | None:
        return None if self.body is None else json.loads(self.body)


class ProfileReader:
    def __init__(self, store: CassandraStore, cache: ProfileCache, client: redis.Redis,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.cache, self.client, self.clock = store, cache, client, clock

    def _statement(self):
        statement = self.store.prepare(_SELECT)  # prepared once per process, then cached
        if not statement.is_idempotent:
            statement.is_idempotent = True  # lets the read profile's speculative execution retry it
        return statement

    def _from_store(self, tenant: str, user_ids: list[str]) -> dict[str, tuple[int, str] | None]:
        results = execute_concurrent_with_args(self.store.session, self._statement(),
                                               [(tenant, u) for u in user_ids], concurrency=32,
                                               raise_on_first_error=True, execution_profile=READ)
        found: dict[str, tuple[int, str] | None] = {}
        for user_id, result in zip(user_ids, results):
            row = result.result_or_exc.one()
            found[user_id] = (row.version, row.body) if row is not None else None
        return found

    def _fill(self, tenant: str, user_ids: list[str]) -> dict[str, Found]:
        """Read ``user_ids`` from Cassandra and cache what was found (or that nothing was)."""
        rows = self._from_store(tenant, user_ids)
        self.cache.put_encoded(tenant, [(u, row[0], row[1]) for u, row in rows.items() if row is not None])
        for user_id, row in rows.items():
            if row is None:
                self.cache.remember_missing(tenant, user_id)
        return {u: Found(row[1], row[0], "store") if row else Found(None, 0, "store") for u, row in rows.items()}

    def _locks(self, tenant: str, user_ids: list[str]) -> list[bool]:
        pipe = self.client.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.set(f"{self.cache.key(tenant, user_id)}:filling", "1", nx=True, px=LOCK_MS)
        return [bool(ok) for ok in pipe.execute()]

    def _unlock(self, tenant: str, user_ids: list[str]) -> None:
        if user_ids:
            self.client.delete(*(f"{self.cache.key(tenant, u)}:filling" for u in user_ids))

    @staticmethod
    def _decode(entry: Cached) -> Found:
        return Found(entry.body, entry.version, "cache")

    def get_many(self, tenant: str, user_ids: list[str]) -> dict[str, Found]:
        """Each user's profile, read through the cache."""
        found: dict[str, Found] = {}
        missing = []
        for user_id, entry in zip(user_ids, self.cache.get_many(tenant, user_ids)):
            if entry is None:
                missing.append(user_id)
            else:
                found[user_id] = self._decode(entry)
        if not missing:
            return found
        mine = [u for u, ok in zip(missing, self._locks(tenant, missing)) if ok]
        try:
            if mine:
                # Another reader may have filled the entry between our miss and our lock.
                for user_id, entry in zip(mine, self.cache.get_many(tenant, mine)):
                    if entry is not None:
                        found[user_id] = self._decode(entry)
                to_read = [u for u in mine if u not in found]
                if to_read:
                    found.update(self._fill(tenant, to_read))
        finally:
            self._unlock(tenant, mine)
        waiting = [u for u in missing if u not in found]
        deadline = self.clock() + LOCK_MS / 1000
        while waiting and self.clock() < deadline:
            time.sleep(_WAIT_STEP)
            for user_id, entry in zip(list(waiting), self.cache.get_many(tenant, waiting)):
                if entry is not None:
                    found[user_id] = self._decode(entry)
                    waiting.remove(user_id)
        if waiting:
            found.update(self._fill(tenant, waiting))
        return found

    def get(self, tenant: str, user_id: str) -> Found:
        return self.get_many(tenant, [user_id])[user_id]
