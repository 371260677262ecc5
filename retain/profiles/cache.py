"""The Redis profile cache: read-through for the API, written by rebuilds, never moved backwards.

Each entry is a hash {v: version, b: profile JSON} under ``profile:<tenant>:<user>``. A write lands
only if the cached version is older (compare-and-set in Lua), so a late rebuild of an older snapshot
cannot replace a newer profile in the cache either. "No such profile" is cached too, briefly, as
version 0 with an empty body: any real profile replaces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import redis

from retain.store.profiles import encode

_PUT = """
local ttl, written = tonumber(ARGV[1]), 0
for i = 1, #KEYS do
  local version, body = ARGV[2 * i], ARGV[2 * i + 1]
  local cached = redis.call('HGET', KEYS[i], 'v')
  if not cached or tonumber(cached) < tonumber(version) then
    redis.call('HSET', KEYS[i], 'v', version, 'b', body)
    redis.call('EXPIRE', KEYS[i], ttl)
    written = written + 1
  end
end
return written
"""

# A miss remembered only where there is nothing: never over a profile written meanwhile.
_MISS = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'v', 0, 'b', '')
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
  return 1
end
return 0
"""


class Cached(NamedTuple):
    """A cache entry: ``body`` is the profile JSON, or None for a remembered miss. (A named tuple:
    one is built per lookup, and it is cheaper to build than a frozen dataclass.)"""

    version: int
    body: str | None


class ProfileCache:
    def __init__(self, client: redis.Redis, prefix: str, ttl: int, negative_ttl: int) -> None:
        self.client, self.prefix, self.ttl, self.negative_ttl = client, prefix, ttl, negative_ttl
        self._put = client.register_script(_PUT)
        self._miss = client.register_script(_MISS)

    def key(self, tenant: str, user_id: str) -> str:
        return f"{self.prefix}profile:{tenant}:{user_id}"

    def put(self, profiles: Sequence[dict[str, Any]], bodies: Sequence[str] | None = None) -> int:
        """Cache profiles whose version is newer than the cached one (``bodies``: their JSON, when
        already encoded); returns how many were."""
        bodies = bodies if bodies is not None else [encode(p) for p in profiles]
        return self.put_encoded(profiles[0]["tenant_id"] if profiles else "",
                                [(p["user_id"], p["version"], body) for p, body in zip(profiles, bodies)])

    def put_encoded(self, tenant: str, entries: Sequence[tuple[str, int, str]]) -> int:
        """:meth:`put` of (user id, version, profile JSON) entries of one tenant."""
        keys, args = self._put_args(tenant, entries)
        return int(self._put(keys=keys, args=args)) if keys else 0

    def _put_args(self, tenant: str, entries: Sequence[tuple[str, int, str]]) -> tuple[list[str], list]:
        keys, args = [], [self.ttl]
        for user_id, version, body in entries:
            keys.append(self.key(tenant, user_id))
            args += [version, body]
        return keys, args

    def remember_missing(self, tenant: str, user_id: str) -> None:
        self._miss(keys=[self.key(tenant, user_id)], args=[self.negative_ttl])

    # -- filling misses: one reader per user (see retain.profiles.reader) ---------------------------
    def _lock_key(self, tenant: str, user_id: str) -> str:
        return f"{self.key(tenant, user_id)}:filling"

    def lock_and_get(self, tenant: str, user_ids: list[str], lock_ms: int) -> list[tuple[bool, Cached | None]]:
        """Take each user's fill lock (unless another reader holds it) and read the entry again, in
        one round trip: whether the lock was taken, and what is cached now."""
        pipe = self.client.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.set(self._lock_key(tenant, user_id), "1", nx=True, px=lock_ms)
            pipe.hmget(self.key(tenant, user_id), "v", "b")
        answers = pipe.execute()
        return [(bool(locked), None if version is None else Cached(int(version), body or None))
                for locked, (version, body) in zip(answers[::2], answers[1::2])]

    def fill(self, tenant: str, entries: Sequence[tuple[str, int, str]], absent: Sequence[str],
             locked: Sequence[str]) -> None:
        """Cache what a reader found (entries as in :meth:`put_encoded`) and that ``absent`` users
        have no profile, and release the ``locked`` users' fill locks, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        if entries:
            keys, args = self._put_args(tenant, entries)
            self._put(keys=keys, args=args, client=pipe)
        for user_id in absent:
            self._miss(keys=[self.key(tenant, user_id)], args=[self.negative_ttl], client=pipe)
        self.unlock(tenant, locked, pipe)
        pipe.execute()

    def unlock(self, tenant: str, user_ids: Sequence[str], client: Any = None) -> None:
        if user_ids:
            (client or self.client).delete(*(self._lock_key(tenant, u) for u in user_ids))

    def get(self, tenant: str, user_id: str) -> Cached | None:
        """One user's entry (a single command: cheaper than a pipeline of one)."""
        version, body = self.client.hmget(self.key(tenant, user_id), "v", "b")
        return None if version is None else Cached(int(version), body or None)

    def get_many(self, tenant: str, user_ids: list[str]) -> list[Cached | None]:
        """The entry of each user, None where nothing is cached."""
        if len(user_ids) == 1:
            return [self.get(tenant, user_ids[0])]
        pipe = self.client.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.hmget(self.key(tenant, user_id), "v", "b")
        found = []
        for version, body in pipe.execute():
            found.append(None if version is None else Cached(int(version), body or None))
        return found
