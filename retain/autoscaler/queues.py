"""What is waiting for a pool: Celery's Redis queues, read straight from the broker.

kombu keeps a queue as a Redis list, plus one list per non-zero priority step (``<queue>\\x06\\x16<p>``);
a task a worker has taken but not acknowledged sits in the ``unacked`` hash as [message, exchange,
routing key] until it is acked or restored. Both are read without asking the workers, so a dead
worker's reserved tasks still count, and a controller never waits on a broadcast.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable

import redis

PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)  # kombu's default for the Redis transport
UNACKED = "unacked"


def queue_keys(queue: str) -> list[str]:
    return [queue if step == 0 else f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS]


def waiting(broker: redis.Redis, queues: Iterable[str]) -> dict[str, int]:
    """Tasks waiting in each queue, every priority included."""
    names = list(queues)
    pipe = broker.pipeline(transaction=False)
    for queue in names:
        for key in queue_keys(queue):
            pipe.llen(key)
    lengths = pipe.execute()
    steps = len(PRIORITY_STEPS)
    return {queue: int(sum(lengths[i * steps:(i + 1) * steps])) for i, queue in enumerate(names)}


def reserved(broker: redis.Redis) -> Counter:
    """Tasks taken by workers and not yet acknowledged, per queue (routing key)."""
    counts: Counter = Counter()
    for _, value in broker.hscan_iter(UNACKED, count=1000):
        try:
            counts[json.loads(value)[2]] += 1
        except (ValueError, IndexError, TypeError):
            continue  # not a kombu entry: nothing to count
    return counts
