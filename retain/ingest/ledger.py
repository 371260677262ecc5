"""The message-id ledger in Redis: what makes every effect of an event happen exactly once.

A batch is processed in three steps, each safe to repeat after a crash:
1. ``claim`` records each new message id with its event time and "uncommitted"; a message seen
   before gets the time recorded then, so a retry whose skew correction came out differently
   still maps to the same row.
2. the worker upserts the rows into Cassandra (an idempotent write: same key, same row);
3. ``commit`` atomically, for each claimed-but-uncommitted message only: stages the lake row,
   counts it, marks the user dirty (see retain.profiles.dirty), and marks the message committed.
A redelivery after step 1 or 2 repeats 2 (harmlessly) and does 3; after 3, it changes nothing.
"""

from __future__ import annotations

import redis

from retain.profiles.dirty import dirty_keys

_CLAIM = """
local prefix, ttl = ARGV[1], tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV, 2 do
  local key = prefix .. ARGV[i]
  local seen = redis.call('GET', key)
  if seen then
    out[#out + 1] = seen
  else
    local fresh = ARGV[i + 1] .. '|0'
    redis.call('SET', key, fresh, 'EX', ttl)
    out[#out + 1] = fresh
  end
end
return out
"""

# ARGV: prefix, counter ttl, staging stream key, dirty key, dirty-since key, dirty tenants key,
# tenant, then per event: ledger id, user, event ms, day, hour, name, lake row.
# Dirty users are scored by arrival time (the server's clock), not event time: debouncing is about
# when activity reaches us, and an import of old events or a device clock a day ahead must not
# make a user wait or jump the queue.
_COMMIT = """
local prefix, cttl, stream, dirty, since = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local tenants, tenant = ARGV[6], ARGV[7]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local committed = 0
for i = 8, #ARGV, 7 do
  local key = prefix .. ARGV[i]
  local state = redis.call('GET', key)
  if state and string.sub(state, -2) == '|0' then
    local user, ms, day, hour, name, row = ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4], ARGV[i+5], ARGV[i+6]
    redis.call('SET', key, string.sub(state, 1, -3) .. '|1', 'KEEPTTL')
    redis.call('XADD', stream, '*', 'r', row)
    local base = prefix .. day .. ':'
    redis.call('PFADD', base .. 'users', user)
    redis.call('HINCRBY', base .. 'events', name, 1)
    redis.call('HINCRBY', base .. 'hours', hour, 1)
    redis.call('EXPIRE', base .. 'users', cttl)
    redis.call('EXPIRE', base .. 'events', cttl)
    redis.call('EXPIRE', base .. 'hours', cttl)
    redis.call('ZADD', dirty, 'GT', now, user)
    redis.call('ZADD', since, 'NX', now, user)
    committed = committed + 1
  end
end
if committed > 0 then
  redis.call('SADD', tenants, tenant)
end
return committed
"""


class Ledger:
    def __init__(self, client: redis.Redis, prefix: str, dedupe_ttl: int, counters_ttl: int) -> None:
        self.client, self.prefix = client, prefix
        self.dedupe_ttl, self.counters_ttl = dedupe_ttl, counters_ttl
        self._claim = client.register_script(_CLAIM)
        self._commit = client.register_script(_COMMIT)

    def claim(self, tenant: str, items: list[tuple[str, int]]) -> dict[str, int]:
        """Record (message id, event ms) pairs; returns each message's canonical event time."""
        if not items:
            return {}
        argv: list = [f"{self.prefix}msg:{tenant}:", self.dedupe_ttl]
        for message_id, ms in items:
            argv += [message_id, ms]
        states = self._claim(args=argv)
        return {mid: int(str(state).split("|", 1)[0]) for (mid, _), state in zip(items, states)}

    def commit(self, tenant: str, items: list[tuple[str, str, int, str, int, str, str]]) -> int:
        """Stage, count and mark dirty each (id, user, ms, day, hour, name, row) not yet committed."""
        if not items:
            return 0
        argv: list = [self.prefix, self.counters_ttl, self.staging_key, *dirty_keys(self.prefix, tenant), tenant]
        for message_id, user, ms, day, hour, name, row in items:
            argv += [f"msg:{tenant}:{message_id}", user, ms, f"c:{tenant}:{day}", hour, name, row]
        return int(self._commit(args=argv))

    @property
    def staging_key(self) -> str:
        return f"{self.prefix}lake:staging"
