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
from typing import Any, NamedTuple

from retain.handover import before_waiting
from retain.profiles.cache import Cached, ProfileCache
from retain.store.cassandra import READ, CassandraStore

_SELECT = "SELECT version, body FROM profiles WHERE tenant_id = ? AND user_id = ?"
LOCK_MS = 1000
_WAIT_STEP = 0.005


class Found(NamedTuple):
    """A profile as stored (``body``: its JSON, None when the user has none), its version, and where
    it came from: "cache" or "store". Decoded only when asked: a whole profile is served as stored.
    (A named tuple, like Cached: one is built per lookup.)"""

    body: str | None
    version: int
    source: str

    @property
    def profile(self) -> dict[str, Any] | None:
        return None if self.body is None else json.loads(self.body)


class ProfileReader:
    def __init__(self, store: CassandraStore, cache: ProfileCache,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.cache, self.clock = store, cache, clock

    def _statement(self):
        statement = self.store.prepare(_SELECT)  # prepared once per process, then cached
        if not statement.is_idempotent:
            statement.is_idempotent = True  # lets the read profile's speculative execution retry it
        return statement

    def _from_store(self, tenant: str, user_ids: list[str]) -> dict[str, tuple[int, str] | None]:
        before_waiting()
        statement = self._statement()
        reads = [self.store.session.execute_async(statement, (tenant, u), execution_profile=READ) for u in user_ids]
        found: dict[str, tuple[int, str] | None] = {}
        for user_id, future in zip(user_ids, reads):
            row = future.result().one()
            found[user_id] = (row.version, row.body) if row is not None else None
        return found

    def _fill(self, tenant: str, user_ids: list[str], locked: list[str]) -> dict[str, Found]:
        """Read ``user_ids`` from Cassandra, cache what was found (or that nothing was) and release
        the ``locked`` users' fill locks."""
        try:
            rows = self._from_store(tenant, user_ids)
        except Exception:
            self.cache.unlock(tenant, locked)  # they would expire anyway; the next reader need not wait
            raise
        self.cache.fill(tenant, [(u, row[0], row[1]) for u, row in rows.items() if row is not None],
                        [u for u, row in rows.items() if row is None], locked)
        return {u: Found(row[1], row[0], "store") if row else Found(None, 0, "store") for u, row in rows.items()}

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
        if missing:
            self._read_missing(tenant, missing, found)
        return found

    def get(self, tenant: str, user_id: str) -> Found:
        """One user's profile: the API's hottest call, so a cached one skips get_many's lists."""
        entry = self.cache.get(tenant, user_id)
        if entry is not None:
            return self._decode(entry)
        found: dict[str, Found] = {}
        self._read_missing(tenant, [user_id], found)
        return found[user_id]

    def _read_missing(self, tenant: str, missing: list[str], found: dict[str, Found]) -> None:
        """Add to ``found`` the ``missing`` users (not in the cache a moment ago), one reader per user."""
        # Another reader may have filled an entry between our miss and our lock: read it again
        # in the lock's round trip.
        mine = []
        for user_id, (locked, entry) in zip(missing, self.cache.lock_and_get(tenant, missing, LOCK_MS)):
            if locked:
                mine.append(user_id)
            if entry is not None:
                found[user_id] = self._decode(entry)
        to_read = [u for u in mine if u not in found]
        if to_read:
            found.update(self._fill(tenant, to_read, mine))
        else:
            self.cache.unlock(tenant, mine)
        waiting = [u for u in missing if u not in found]
        deadline = self.clock() + LOCK_MS / 1000
        while waiting and self.clock() < deadline:
            before_waiting()
            time.sleep(_WAIT_STEP)
            for user_id, entry in zip(list(waiting), self.cache.get_many(tenant, waiting)):
                if entry is not None:
                    found[user_id] = self._decode(entry)
                    waiting.remove(user_id)
        if waiting:
            found.update(self._fill(tenant, waiting, []))
