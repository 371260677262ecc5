"""An API process's in-memory copy of the profile cache, kept coherent by Redis itself.

A cache hit through Redis costs a network round trip and most of the API's CPU per lookup; the
popular profiles (the ones an email send or a home page asks for again and again) are served from
process memory instead. Coherence comes from Redis's server-assisted client-side caching in
broadcasting mode: a connection of this process asks Redis (``CLIENT TRACKING ON REDIRECT <id>
BCAST PREFIX <prefix>profile:``) to announce every change to a profile key, a rebuild's write or an
expiry alike, to a second connection subscribed to ``__redis__:invalidate``; a listener thread drops
those keys from memory as the announcements arrive (Redis sends the keys changed in one event-loop
turn as one message).

Redis expires keys lazily (when read, or when its expiry cycle samples them), and memory is read
instead of Redis: so each entry is also kept no longer than the cache's TTL from when it was read
(the negative TTL for a remembered miss), never beyond what Redis would have held it.

Two rules keep it from ever serving what Redis no longer holds:
- while the listener is not connected (at start, after a Redis restart or a network error) nothing
  is kept and every read goes to Redis; each (re)connection starts from an empty memory;
- an entry read from Redis is kept only if no announcement for its key arrived while it was being
  read (a token per key in flight), so a change racing with the read is never papered over.
Announcements travel on another connection than the reads, so a change lands in memory a fraction
of a millisecond after Redis applied it; the versions themselves are never moved backwards, as the
cache below guarantees. A listener connection that closes is noticed at once (what was announced to
it meanwhile is lost; memory is emptied when the loss is noticed). A silent network failure is
noticed by the tracking connection's check every second plus its socket timeout: at worst a few
seconds during which memory may serve a profile Redis has since replaced.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import OrderedDict

import redis

from retain.profiles.cache import Cached, ProfileCache

log = logging.getLogger("retain.profiles.nearcache")
CHANNEL = "__redis__:invalidate"
_RETRY_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)
_CHECK_SECONDS = 1.0


class NearCache:
    """The read side of :class:`ProfileCache` with a bounded, coherent in-memory layer; writes pass through."""

    def __init__(self, inner: ProfileCache, max_entries: int, url: str) -> None:
        self.inner, self.max_entries, self.url = inner, max_entries, url
        # key: (version, body or None, keep until). Tuples of plain values, which the garbage
        # collector stops tracking: a full memory of profiles adds nothing to its passes.
        self._entries: OrderedDict[str, tuple[int, str | None, float]] = OrderedDict()
        self._inflight: dict[str, object] = {}
        self._lock = threading.Lock()
        self._live = False
        self._pid: int | None = None
        self._stop = threading.Event()

    # -- the ProfileCache interface the reader uses --------------------------------------------------
    def key(self, tenant: str, user_id: str) -> str:
        return self.inner.key(tenant, user_id)

    def put_encoded(self, tenant: str, entries) -> int:
        return self.inner.put_encoded(tenant, entries)

    def remember_missing(self, tenant: str, user_id: str) -> None:
        self.inner.remember_missing(tenant, user_id)

    # Filling misses goes to Redis: what memory holds is only ever a copy of what Redis held.
    def lock_and_get(self, tenant: str, user_ids: list[str], lock_ms: int) -> list[tuple[bool, Cached | None]]:
        return self.inner.lock_and_get(tenant, user_ids, lock_ms)

    def fill(self, tenant: str, entries, absent, locked) -> None:
        self.inner.fill(tenant, entries, absent, locked)

    def unlock(self, tenant: str, user_ids) -> None:
        self.inner.unlock(tenant, user_ids)

    def get(self, tenant: str, user_id: str) -> Cached | None:
        # One user, the API's hottest call: get_many's steps without its lists.
        self._ensure_listener()
        key = self.inner.key(tenant, user_id)
        now = time.monotonic()
        with self._lock:
            held = self._recall(key, now)
            if held is not None:
                return held
            token = self._expect(key)
        entry = self.inner.get(tenant, user_id)
        with self._lock:
            self._keep(key, token, entry, now)
        return entry

    def get_many(self, tenant: str, user_ids: list[str]) -> list[Cached | None]:
        self._ensure_listener()
        keys = [self.inner.key(tenant, u) for u in user_ids]
        found: list[Cached | None] = [None] * len(keys)
        absent: list[int] = []
        tokens: dict[str, object | None] = {}
        now = time.monotonic()
        with self._lock:
            for i, key in enumerate(keys):
                found[i] = self._recall(key, now)
                if found[i] is None:
                    absent.append(i)
                    tokens[key] = self._expect(key)
        if not absent:
            return found
        read = self.inner.get_many(tenant, [user_ids[i] for i in absent])
        with self._lock:
            for i, entry in zip(absent, read):
                found[i] = entry
                self._keep(keys[i], tokens[keys[i]], entry, now)
        return found

    # Called with the lock held.
    def _recall(self, key: str, now: float) -> Cached | None:
        held = self._entries.get(key)
        if held is None or held[2] < now:
            return None
        self._entries.move_to_end(key)
        return Cached(held[0], held[1])

    def _expect(self, key: str) -> object | None:
        """A token for reading ``key`` from Redis; None while nothing may be kept."""
        if not self._live:
            return None
        token = self._inflight[key] = object()
        return token

    def _keep(self, key: str, token: object | None, entry: Cached | None, now: float) -> None:
        """Keep what was read for ``key``, unless an announcement for it arrived meanwhile."""
        if token is None or self._inflight.get(key) is not token:
            return
        del self._inflight[key]
        if entry is not None and self._live:
            ttl = self.inner.negative_ttl if entry.body is None else self.inner.ttl
            self._entries[key] = (entry.version, entry.body, now + ttl)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def held(self, tenant: str, user_id: str) -> Cached | None:
        """The user's entry if memory holds it now, without reading Redis (nor starting the listener:
        a process that has not read through :meth:`get` holds nothing)."""
        if not self._live or self._pid != os.getpid():
            return None
        key = self.inner.key(tenant, user_id)
        with self._lock:
            return self._recall(key, time.monotonic())

    def __len__(self) -> int:
        return len(self._entries)

    def holds(self, tenant: str, user_id: str) -> bool:
        """Whether the user's entry is in memory now."""
        return self.inner.key(tenant, user_id) in self._entries

    @property
    def live(self) -> bool:
        """Whether invalidations are being received (and memory is used)."""
        return self._live

    # -- invalidations ----------------------------------------------------------------------------
    def _ensure_listener(self) -> None:
        # Started in the process that reads: gunicorn forks its workers after the app is built.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._live = False
            self._entries.clear()
            threading.Thread(target=self._listen, name="profile-near-cache", daemon=True).start()

    def _forget(self, keys: list[str] | None) -> None:
        with self._lock:
            if keys is None:  # FLUSHDB / FLUSHALL, or the announcements were lost
                self._entries.clear()
                self._inflight.clear()
                return
            for key in keys:
                self._entries.pop(key, None)
                self._inflight.pop(key, None)

    def _connect(self) -> tuple[redis.client.PubSub, redis.Redis]:
        """The subscribed listener, and the connection whose tracking redirects to it."""
        name = f"retain-near-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # RESP2: announcements arrive as ordinary pub/sub messages (redis-py hands RESP3 push
        # messages to a handler instead of get_message).
        listener = redis.Redis.from_url(self.url, protocol=2, client_name=name, decode_responses=True,
                                        socket_connect_timeout=5).pubsub()
        listener.subscribe(CHANNEL)
        listener.get_message(timeout=5.0)  # the subscription's confirmation
        tracker = redis.Redis.from_url(self.url, protocol=2, single_connection_client=True, decode_responses=True,
                                       socket_timeout=5, socket_connect_timeout=5)
        ids = [client["id"] for client in tracker.client_list(_type="pubsub") if client.get("name") == name]
        if len(ids) != 1:
            raise redis.ResponseError(f"could not find the invalidation listener {name} among Redis's clients")
        tracker.execute_command("CLIENT", "TRACKING", "ON", "REDIRECT", ids[0], "BCAST",
                                "PREFIX", f"{self.inner.prefix}profile:")
        return listener, tracker

    def _listen(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            listener = tracker = None
            try:
                listener, tracker = self._connect()
                self._forget(None)
                self._live, attempt = True, 0
                log.info("profile near cache: receiving invalidations")
                while not self._stop.is_set():
                    message = listener.get_message(timeout=_CHECK_SECONDS)
                    if message is None:
                        # Quiet: make sure the tracking connection is still there, or its
                        # announcements would stop without a word.
                        tracker.ping()
                    elif message["type"] == "message":
                        keys = message["data"]
                        self._forget(None if keys is None else [_text(k) for k in keys])
                    elif message["type"] == "subscribe":
                        # redis-py reconnected and subscribed again on its own: a new client,
                        # which the tracking connection does not redirect to.
                        raise redis.ConnectionError("the invalidation listener reconnected")
            except (redis.RedisError, OSError) as exc:
                if self._live:
                    log.warning("profile near cache: lost the invalidation stream (%s); reading Redis only "
                                "until it is back", exc)
            finally:
                # Nothing is kept while announcements may be missed.
                self._live = False
                self._forget(None)
                if listener is not None:
                    listener.close()
                    listener.connection_pool.disconnect()
                if tracker is not None:
                    tracker.close()
            self._stop.wait(_RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)])
            attempt += 1

    def close(self) -> None:
        self._stop.set()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
