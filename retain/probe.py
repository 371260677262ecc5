"""A diagnostic unit of work: proves that a task travels producer → broker → worker → result.

Each attempt is counted in Redis, so a redelivered task (after a worker was killed mid-task)
shows as a second attempt of the same token. `retain demo` and the tests use it; operators can
send it to a fleet to check it end to end.
"""

from __future__ import annotations

import socket
import time

import redis

from retain.config import Settings
from retain.store.redis import key


def run_probe(client: redis.Redis, settings: Settings, token: str, hold_seconds: float = 0.0) -> dict:
    """Record an attempt for ``token``, hold for ``hold_seconds``, then record completion."""
    if not token or len(token) > 200:
        raise ValueError("token must be 1 to 200 characters")
    if not 0 <= hold_seconds <= 3600:
        raise ValueError("hold_seconds must be between 0 and 3600")
    base = key(settings, "probe", token)
    attempt = client.incr(f"{base}:attempts")
    client.expire(f"{base}:attempts", 86400)
    host = socket.gethostname()
    client.rpush(f"{base}:log", f"start {attempt} {host}")
    time.sleep(hold_seconds)  # stands in for real work
    client.rpush(f"{base}:log", f"done {attempt} {host}")
    client.expire(f"{base}:log", 86400)
    return {"token": token, "attempt": attempt, "host": host}


def probe_state(client: redis.Redis, settings: Settings, token: str) -> dict:
    base = key(settings, "probe", token)
    return {"attempts": int(client.get(f"{base}:attempts") or 0), "log": client.lrange(f"{base}:log", 0, -1)}
