"""How fast a pool's workers serve: busy seconds and completions per queue and minute, recorded by
the workers themselves (retain.worker.signals) in the data Redis.

The rate that matters for sizing is tasks per *busy* worker-second: dividing completions by the
time workers were running tasks (not by wall time) does not mistake an idle fleet for a slow one.
"""

from __future__ import annotations

import redis

_KEEP = 3600


def _key(prefix: str, queue: str, minute: int) -> str:
    return f"{prefix}autoscaler:served:{queue}:{minute}"


def record(client: redis.Redis, prefix: str, queue: str, seconds: float, now: float) -> None:
    """One task of ``queue`` finished after running ``seconds``."""
    key = _key(prefix, queue, int(now // 60))
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(key, "tasks", 1)
    pipe.hincrbyfloat(key, "busy", max(seconds, 0.0))
    pipe.expire(key, _KEEP)
    pipe.execute()


def service_rate(client: redis.Redis, prefix: str, queues: list[str], now: float, window: float = 300.0,
                 min_tasks: int = 5) -> float | None:
    """Tasks per busy worker-second over the last ``window`` seconds; None with too few tasks to say."""
    last = int(now // 60)
    minutes = range(last - max(int(window // 60), 1), last + 1)
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        for minute in minutes:
            pipe.hmget(_key(prefix, queue, minute), "tasks", "busy")
    tasks = busy = 0.0
    for count, seconds in pipe.execute():
        tasks += float(count or 0)
        busy += float(seconds or 0)
    if tasks < min_tasks or busy <= 0:
        return None
    return tasks / busy
