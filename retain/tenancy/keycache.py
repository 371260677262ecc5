"""An API process's memory of which tenant owns each API key (the registry reads it from Cassandra).

Every request carries a key, so finding its owner must be a dictionary read. An entry is kept for
``RETAIN_KEY_CACHE_SECONDS``; when it is past its time, one request reads it again while the
process's other requests go on using it. Before, every request that arrived during that read read
it too, each waiting on Cassandra: every 30 s each API process stalled all its lookups of that key
(a lookup bench saw 150 to 200 requests late by up to 65 ms at such a moment). So a revoked key
stops working within the TTL plus the time of the one read that notices, and an entry is used past
its time only while that read is under way, at most one TTL longer (should the read hang).

Unknown keys are remembered briefly, in a table of their own with a bound on its size: a client
sending made-up keys costs a registry read each, but cannot push the real keys out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from retain.tenancy.registry import KeyOwner, TenantRegistry

MAX_UNKNOWN = 10000


class KeyCache:
    """Key → owner (None: no such key, or expired), read through ``registry``."""

    def __init__(self, registry: TenantRegistry, ttl: float, negative_ttl: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry, self.ttl, self.negative_ttl, self.clock = registry, ttl, negative_ttl, clock
        self._known: dict[str, tuple[float, KeyOwner]] = {}  # key: (fresh until, owner)
        self._unknown: dict[str, float] = {}  # key: remembered as unknown until
        self._reading: set[str] = set()  # keys whose entry a request is reading again
        self._lock = threading.Lock()

    def owner(self, key: str) -> KeyOwner | None:
        now = self.clock()
        known = self._known.get(key)
        if known is not None and known[0] > now:
            return known[1]
        if known is None and self._unknown.get(key, 0.0) > now:
            return None
        with self._lock:
            stale_usable = (key in self._reading and known is not None and known[0] + self.ttl > now)
            if not stale_usable:
                self._reading.add(key)
        if stale_usable:
            return known[1]  # type: ignore[index]
        try:
            owner = self.registry.owner(key)
        finally:
            with self._lock:
                self._reading.discard(key)
        self._remember(key, owner, self.clock())
        return owner

    def held(self, key: str) -> KeyOwner | None:
        """The key's owner if memory holds a fresh entry for it; None otherwise (no read)."""
        known = self._known.get(key)
        return known[1] if known is not None and known[0] > self.clock() else None

    def _remember(self, key: str, owner: KeyOwner | None, now: float) -> None:
        if owner is not None:
            self._known[key] = (now + self.ttl, owner)
            self._unknown.pop(key, None)
            return
        self._known.pop(key, None)
        if len(self._unknown) >= MAX_UNKNOWN:
            self._unknown.clear()
        self._unknown[key] = now + self.negative_ttl
