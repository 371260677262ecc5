"""Users whose profile is out of date, and the claims that turn them into rebuild tasks.

Redis keys (under the data prefix), per tenant T:
    dirty:T         zset user -> arrival time (ms) of their latest events    (the ingest ledger writes it)
    dirty:T:since   zset user -> arrival time of their first events since their last claim
    claimed:T       zset user -> when a sweep claimed them for a rebuild task
    dirty-tenants   set of tenants that may have dirty or claimed users
A sweep claims the users quiet for the debounce, or dirty for longer than the maximum delay, moving
them atomically from dirty to claimed; the task that rebuilds them releases its claims when done.
Events arriving meanwhile make the user dirty again, so nothing is missed. A claim older than the
lease (a sweep that died before enqueueing, a task lost with its worker) is put back to dirty, so a
dirty user is never dropped: it is rebuilt late at worst.
"""

from __future__ import annotations

from collections.abc import Callable

import redis

from retain.config import Settings

_CLAIM = """
local dirty, since, claimed = KEYS[1], KEYS[2], KEYS[3]
local now, quiet, overdue, limit = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local picked, seen = {}, {}
for _, user in ipairs(redis.call('ZRANGEBYSCORE', dirty, '-inf', quiet, 'LIMIT', 0, limit)) do
  seen[user] = true
  picked[#picked + 1] = user
end
if #picked < limit then
  for _, user in ipairs(redis.call('ZRANGEBYSCORE', since, '-inf', overdue, 'LIMIT', 0, limit)) do
    if #picked >= limit then break end
    if not seen[user] then
      seen[user] = true
      picked[#picked + 1] = user
    end
  end
end
for _, user in ipairs(picked) do
  redis.call('ZREM', dirty, user)
  redis.call('ZREM', since, user)
  redis.call('ZADD', claimed, now, user)
end
return picked
"""

# Release only the claims this task holds: a user claimed again by a later sweep keeps that claim.
_RELEASE = """
local claimed, at = KEYS[1], ARGV[1]
local released = 0
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', claimed, ARGV[i])
  if score and tonumber(score) == tonumber(at) then
    redis.call('ZREM', claimed, ARGV[i])
    released = released + 1
  end
end
return released
"""

_EXPIRE = """
local dirty, since, claimed, tenants = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, before, tenant = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local stale = redis.call('ZRANGEBYSCORE', claimed, '-inf', before)
for _, user in ipairs(stale) do
  redis.call('ZREM', claimed, user)
  redis.call('ZADD', dirty, 'GT', now, user)
  redis.call('ZADD', since, 'NX', now, user)
end
if redis.call('ZCARD', dirty) == 0 and redis.call('ZCARD', claimed) == 0 then
  redis.call('SREM', tenants, tenant)
end
return #stale
"""


def dirty_keys(prefix: str, tenant: str) -> tuple[str, str, str]:
    """(dirty, dirty-since, dirty-tenants): the keys the ingest ledger marks."""
    return f"{prefix}dirty:{tenant}", f"{prefix}dirty:{tenant}:since", f"{prefix}dirty-tenants"


class DirtyUsers:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client, self.prefix = client, prefix
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)
        self._expire = client.register_script(_EXPIRE)

    def _keys(self, tenant: str) -> list[str]:
        dirty, since, _ = dirty_keys(self.prefix, tenant)
        return [dirty, since, f"{self.prefix}claimed:{tenant}"]

    def tenants(self) -> list[str]:
        return sorted(self.client.smembers(dirty_keys(self.prefix, "")[2]))

    def claim(self, tenant: str, now_ms: int, debounce_ms: int, max_delay_ms: int, limit: int) -> list[str]:
        """Claim up to ``limit`` users quiet for ``debounce_ms`` or dirty for over ``max_delay_ms``."""
        return list(self._claim(keys=self._keys(tenant),
                                args=[now_ms, now_ms - debounce_ms, now_ms - max_delay_ms, limit]))

    def release(self, tenant: str, claimed_ms: int, users: list[str]) -> int:
        if not users:
            return 0
        return int(self._release(keys=self._keys(tenant)[2:], args=[claimed_ms, *users]))

    def expire_claims(self, tenant: str, now_ms: int, lease_ms: int) -> int:
        """Make users whose claim is older than the lease dirty again; forget a tenant with nothing left."""
        return int(self._expire(keys=[*self._keys(tenant), dirty_keys(self.prefix, tenant)[2]],
                                args=[now_ms, now_ms - lease_ms, tenant]))

    def mark(self, tenant: str, users: list[str], now_ms: int) -> None:
        """Make ``users`` dirty, as new events would (a backfill, an operator's request)."""
        dirty, since, tenants = dirty_keys(self.prefix, tenant)
        pipe = self.client.pipeline(transaction=False)
        for user in users:
            pipe.zadd(dirty, {user: now_ms}, gt=True)
            pipe.zadd(since, {user: now_ms}, nx=True)
        pipe.sadd(tenants, tenant)
        pipe.execute()

    def pending(self, tenant: str) -> dict[str, int]:
        """Users waiting for a rebuild: dirty (not yet claimed) and claimed by a task."""
        dirty, _, claimed = self._keys(tenant)
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(dirty)
        pipe.zcard(claimed)
        waiting, running = pipe.execute()
        return {"dirty": int(waiting), "claimed": int(running)}


def sweep(dirty: DirtyUsers, settings: Settings, send: Callable[[str, list[str], int], None], now_ms: int,
          max_batches: int = 200) -> dict[str, int]:
    """Turn every tenant's ready dirty users into rebuild batches: ``send(tenant, users, claimed_ms)``.

    Returns the users claimed per tenant. A send that fails leaves its users claimed until the lease
    expires, then dirty again: late, never lost.
    """
    claimed: dict[str, int] = {}
    budget = max_batches
    for tenant in dirty.tenants():
        dirty.expire_claims(tenant, now_ms, settings.profile_claim_seconds * 1000)
        while budget > 0:
            users = dirty.claim(tenant, now_ms, int(settings.profile_debounce_seconds * 1000),
                                int(settings.profile_max_delay_seconds * 1000), settings.profile_batch_size)
            if not users:
                break
            send(tenant, users, now_ms)
            claimed[tenant] = claimed.get(tenant, 0) + len(users)
            budget -= 1
    return claimed
