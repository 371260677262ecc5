"""The journal of accepted batches: at-least-once delivery even when the broker loses a message.

Celery on Redis acknowledges late, but a worker killed between popping a message from the queue
and recording it as unacknowledged loses it (kombu registers the message in its unacked set
only after the pop). An acknowledged batch must never be lost, so every accepted batch is also
written here before it is sent, and removed by the worker once processed. A sweep re-sends
batches still here after ``ingest_redeliver_after_seconds``; the ledger makes a second delivery
harmless, so the effect stays exactly once.
"""

from __future__ import annotations

import json
import time

import redis

from retain.config import Settings


class Journal:
    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.entries = f"{settings.redis_prefix}ingest:journal"
        self.due = f"{settings.redis_prefix}ingest:journal:due"
        self.redeliver_after = settings.ingest_redeliver_after_seconds

    def record(self, batch_id: str, payload: dict) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.entries, batch_id, json.dumps(payload, separators=(",", ":")))
        pipe.zadd(self.due, {batch_id: time.time()})
        pipe.execute()

    def done(self, batch_id: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self.entries, batch_id)
        pipe.zrem(self.due, batch_id)
        pipe.execute()

    def overdue(self, older_than: float | None = None, limit: int = 500) -> list[tuple[str, dict]]:
        """Batches recorded (or last re-sent) longer ago than ``older_than`` seconds."""
        cutoff = time.time() - (self.redeliver_after if older_than is None else older_than)
        ids = self.client.zrangebyscore(self.due, "-inf", cutoff, start=0, num=limit)
        if not ids:
            return []
        payloads = self.client.hmget(self.entries, ids)
        found = []
        for batch_id, raw in zip(ids, payloads):
            if raw is None:
                self.client.zrem(self.due, batch_id)  # finished between the two reads
            else:
                found.append((batch_id, json.loads(raw)))
        return found

    def touch(self, batch_id: str) -> None:
        self.client.zadd(self.due, {batch_id: time.time()}, xx=True)

    def pending(self, since: float | None = None) -> int:
        """Batches not yet processed; with ``since`` (a time.time()), only those recorded or re-sent
        since then."""
        if since is None:
            return int(self.client.hlen(self.entries))
        return int(self.client.zcount(self.due, since, "+inf"))
