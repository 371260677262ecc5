"""What the controller reads: queue lengths with priorities and reserved tasks from a real broker,
and the per-worker service rate that real workers record."""

from __future__ import annotations

import time
import uuid

import redis

from retain.autoscaler.queues import reserved, waiting
from retain.autoscaler.stats import service_rate
from retain.worker.app import create_celery
from tests.harness import poll


def test_waiting_and_reserved_tasks_per_queue(stack, settings) -> None:
    own = settings.replace(broker_url=settings.broker_url.rsplit("/", 1)[0] + "/13")
    broker = redis.Redis.from_url(own.broker_url)
    broker.flushdb()
    producer = create_celery(own)
    for priority in (0, 0, 0, 6, 9):
        producer.send_task("profiles.rebuild", args=["t", ["u"]], queue="profiles", priority=priority)
    producer.send_task("train.tenant", args=["t"], queue="train")
    assert waiting(broker, ["profiles", "train", "ingest"]) == {"profiles": 5, "train": 1, "ingest": 0}
    with producer.connection_for_read() as conn:
        taken = conn.SimpleQueue("profiles").get(timeout=5)  # delivered, not acknowledged
        assert reserved(broker)["profiles"] == 1
        assert waiting(broker, ["profiles"]) == {"profiles": 4}
        taken.ack()
    assert reserved(broker)["profiles"] == 0
    broker.flushdb()
    broker.close()


def test_workers_record_their_service_rate(worker, settings) -> None:
    from retain.worker.app import app

    for _ in range(6):
        app.send_task("maintenance.probe", args=[uuid.uuid4().hex, 0.1], queue="maintenance").get(timeout=30)
    client = redis.Redis.from_url(settings.redis_url)
    rate = poll(lambda: service_rate(client, settings.redis_prefix, ["maintenance"], time.time()), 10,
                "the worker recorded its busy time")
    assert 1 < rate < 10.5, f"probes hold 0.1 s each: about 10 tasks per busy second at most, got {rate:.2f}"
    client.close()
