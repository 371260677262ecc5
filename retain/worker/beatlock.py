"""A beat scheduler that makes a second `retain beat` a harmless standby.

Every tick, a beat holds (or tries to take) one lock in the broker Redis: ``SET NX PX`` with a
token of its own, extended only while the token still matches, deleted only by its holder on a
clean exit. Only the holder sends; a standby asks again every third of the lock's lifetime and
takes over once a dead holder's lock has expired.

The lock alone is not enough: a holder that stalls past its lock's expiry (a long GC or network
pause) still believes it holds it. So each firing is also claimed in Redis before it is sent: a
Lua script accepts it only from the lock's current holder and only if the entry's run count is
still the one the sender started from, then records the run (count, time, sender). A given run
of an entry is thus sent at most once, whoever is running. Last-run times live in that record
rather than in a per-instance shelve file, so a beat that takes over continues exactly where the
holder stopped instead of firing again what the holder had just fired.

The broker Redis holds the lock because it is what the beats share by definition: beats that
send to the same broker are the ones that could duplicate, and without the broker nothing can be
sent anyway, so the lock adds no dependency.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property

import redis
from celery.beat import Scheduler
from celery.utils.time import maybe_make_aware

from retain.config import Settings

log = logging.getLogger(__name__)

# 1: renewed (we held it), 2: acquired (it was free), 0: someone else holds it.
_HOLD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 2
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# The run number of this firing; 0 if another beat fired this run already, -1 if we lost the lock.
_CLAIM = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local runs = tonumber(redis.call('HGET', KEYS[2], ARGV[2] .. ':runs') or '0')
if runs ~= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2] .. ':runs', runs + 1, ARGV[2] .. ':at', ARGV[4], ARGV[2] .. ':by', ARGV[1])
return runs + 1
"""


def broker_redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.broker_url, socket_timeout=5, socket_connect_timeout=5,
                                decode_responses=True)


def lock_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}beat:lock"


def runs_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}beat:runs"


@dataclass(frozen=True)
class Run:
    """The last firing of a schedule entry, as recorded by the beat that sent it."""

    runs: int
    at: datetime
    by: str


@dataclass(frozen=True)
class Holder:
    token: str
    ttl_seconds: float

    @property
    def instance(self) -> str:
        """``host:pid`` of the holding beat."""
        return self.token.rsplit(":", 1)[0]


def holder(client: redis.Redis, settings: Settings) -> Holder | None:
    """The beat holding the lock, or None if no beat is running (or the last one died long ago)."""
    with client.pipeline() as pipe:
        token, ttl_ms = pipe.get(lock_key(settings)).pttl(lock_key(settings)).execute()
    return Holder(token, max(ttl_ms, 0) / 1000) if token else None


def last_runs(client: redis.Redis, settings: Settings) -> dict[str, Run]:
    """Every entry's last recorded firing, by entry name."""
    fields = client.hgetall(runs_key(settings))
    found = {}
    for field, value in fields.items():
        name, _, kind = field.rpartition(":")
        if kind == "runs":
            found[name] = Run(int(value), datetime.fromtimestamp(float(fields.get(f"{name}:at", 0)), timezone.utc),
                              fields.get(f"{name}:by", ""))
    return found


class BeatLock:
    """The lock itself, and the claim of a firing under it."""

    def __init__(self, client: redis.Redis, settings: Settings, seconds: float, token: str | None = None) -> None:
        self.client = client
        self.settings = settings
        self.ttl_ms = int(seconds * 1000)
        self.token = token or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._hold = client.register_script(_HOLD)
        self._release = client.register_script(_RELEASE)
        self._claim = client.register_script(_CLAIM)

    def hold(self) -> int:
        """Renew the lock (1), take it if free (2), or find another beat holding it (0)."""
        return int(self._hold(keys=[lock_key(self.settings)], args=[self.token, self.ttl_ms]))

    def release(self) -> bool:
        return bool(self._release(keys=[lock_key(self.settings)], args=[self.token]))

    def claim(self, entry: str, runs_before: int, at: datetime) -> int:
        """Record a firing of ``entry``: its run number, 0 if already fired, -1 if not the holder."""
        return int(self._claim(keys=[lock_key(self.settings), runs_key(self.settings)],
                               args=[self.token, entry, runs_before, f"{at.timestamp():.6f}"]))


class LockedScheduler(Scheduler):
    """Celery beat scheduler: sends only while it holds the beat lock (see the module docstring)."""

    def __init__(self, app, *args, **kwargs) -> None:
        self.settings: Settings = app.retain_settings
        self.step = self.settings.beat_lock_seconds / 3
        self.holding = False
        super().__init__(app, *args, **kwargs)
        # The lock must be renewed well within its lifetime, whatever beat_max_loop_interval says.
        self.max_interval = min(self.max_interval, self.step)

    @cached_property
    def lock(self) -> BeatLock:
        # Made on first use: Celery also builds schedulers lazily, just to describe them.
        return BeatLock(broker_redis(self.settings), self.settings, self.settings.beat_lock_seconds)

    def tick(self, *args, **kwargs) -> float:
        try:
            state = self.lock.hold()
        except redis.RedisError as exc:
            # Whether we still hold the lock is unknown, so send nothing until Redis answers.
            self._stand_by(f"cannot reach the lock: {exc}")
            return self.step
        if state == 0:
            self._stand_by("another beat holds the lock")
            return self.step
        if state == 2 or not self.holding:
            # Newly taken (even by a holder that had lost it meanwhile): another beat may have sent.
            try:
                self._continue_from_record()
            except redis.RedisError as exc:
                log.warning("beat: cannot read the last runs (%s); trying again", exc)
                return self.step
            self.holding = True
            log.info("beat: holding the lock as %s; sending due tasks", self.lock.token)
        return min(super().tick(*args, **kwargs), self.step)

    def _stand_by(self, why: str) -> None:
        if self.holding:
            log.warning("beat: standing by (%s)", why)
        self.holding = False

    def _continue_from_record(self) -> None:
        """Take every entry's last run from Redis, so the schedule resumes where the holder left it."""
        recorded = last_runs(self.lock.client, self.settings)
        for name, entry in self.schedule.items():
            run = recorded.get(name)
            if run is not None:
                entry.last_run_at, entry.total_run_count = run.at, run.runs
        self._heap = None  # rebuilt from the entries on the next tick

    def apply_entry(self, entry, producer=None) -> None:
        # ``entry`` is the run about to be sent; tick() has already put its successor in the schedule.
        successor = self.schedule[entry.name]
        try:
            run = self.lock.claim(entry.name, entry.total_run_count, maybe_make_aware(successor.last_run_at))
        except redis.RedisError as exc:
            self._stand_by(f"cannot claim {entry.name}: {exc}")
            return
        if run < 0:
            self._stand_by(f"lost the lock before sending {entry.name}")
            return
        if run == 0:
            log.warning("beat: %s run %d was already sent by another beat; reloading the last runs",
                        entry.name, entry.total_run_count + 1)
            self.holding = False  # reloads from the record on the next tick
            return
        successor.total_run_count = run
        headers = {**entry.options.get("headers", {}), "beat_entry": entry.name, "beat_run": run,
                   "beat_sender": self.lock.token}
        super().apply_entry(entry.__class__(**dict(entry, options={**entry.options, "headers": headers})), producer)

    def close(self) -> None:
        try:
            if self.holding and self.lock.release():
                log.info("beat: released the lock")
        except redis.RedisError as exc:
            log.warning("beat: could not release the lock (it expires by itself): %s", exc)
        finally:
            self.holding = False
            super().close()

    @property
    def info(self) -> str:
        return f"    . lock -> {lock_key(self.settings)} in the broker Redis ({self.settings.beat_lock_seconds:g} s)"
