"""The controller driving real worker processes: 2,000 tasks make the local fleet grow, drain the
queue and shrink back to its minimum, and every task runs exactly once."""

from __future__ import annotations

import json
import threading
import uuid

import redis

from retain.autoscaler.controller import Controller
from retain.autoscaler.local import LocalFleet
from retain.autoscaler.queues import waiting
from retain.probe import probe_state
from retain.worker.app import create_celery
from tests.harness import crash_settings, poll, run_cli


def test_local_fleet_follows_the_queue(stack, settings, keyspace) -> None:
    own = crash_settings(settings, keyspace.keyspace, 14, f"fleet-{uuid.uuid4().hex[:6]}", worker_concurrency=2,
                         autoscaler_pools={"batch": "maintenance"}, autoscaler_max_workers={"batch": 3},
                         autoscaler_target_latency=5.0, autoscaler_fallback_rate=20.0,
                         autoscaler_stabilization_seconds=5.0, autoscaler_scale_in_step=2,
                         autoscaler_interval_seconds=1.0)
    broker, data = redis.Redis.from_url(own.broker_url), redis.Redis.from_url(own.redis_url, decode_responses=True)
    fleet = LocalFleet(own, "batch", ("maintenance",))
    controller = Controller(own, {"batch": fleet}, broker, data)
    producer = create_celery(own)
    tokens = [uuid.uuid4().hex for _ in range(2000)]
    for token in tokens:
        producer.send_task("maintenance.probe", args=[token], queue="maintenance")
    sizes: list[int] = []
    stop = threading.Event()
    loop = threading.Thread(target=controller.run, args=(stop, lambda steps: sizes.append(steps[0].desired)))
    loop.start()
    try:
        poll(lambda: max(sizes, default=0) == 3, 60, "the fleet grows to its maximum of 3 for 2,000 tasks")
        poll(lambda: waiting(broker, ["maintenance"])["maintenance"] == 0, 300, "the fleet drains the queue",
             interval=1.0)
        poll(lambda: fleet.current() == 0 and fleet.draining() == 0, 120,
             "the fleet shrinks back to zero once the queue is empty and the window has passed", interval=1.0)
    finally:
        stop.set()
        loop.join(30)
        fleet.stop_all(30)
    attempts = [probe_state(data, own, t)["attempts"] for t in tokens]
    assert attempts.count(1) == len(tokens), f"{sum(a == 0 for a in attempts)} never ran, {sum(a > 1 for a in attempts)} twice"
    shrink = sizes[sizes.index(3):]
    assert sorted(shrink, reverse=True) == shrink, f"it only grew, then shrank: {sizes}"
    status = data.get(f"{own.redis_prefix}autoscaler:status:batch")
    assert status and '"desired": 0' in status
    producer.close()
    broker.close()
    data.close()


def test_dry_run_decides_and_changes_nothing(stack, settings, keyspace) -> None:
    own = crash_settings(settings, keyspace.keyspace, 14, f"dry-{uuid.uuid4().hex[:6]}",
                         autoscaler_pools={"batch": "maintenance"}, autoscaler_target_latency=5.0)
    producer = create_celery(own)
    for _ in range(200):  # 200 / (5 s x 1 task/s) = 40 slots, 20 workers of 2: capped at 8
        producer.send_task("maintenance.probe", args=["dry"], queue="maintenance", priority=6)
    producer.close()
    out = run_cli(own, "autoscaler", "run", "--once", "--dry-run", "--json")
    [step] = json.loads(out.stdout)["pools"]
    assert step["pool"] == "batch" and step["waiting"] == 200 and step["current"] == 0
    assert step["desired"] == 8 and not step["applied"] and "capped at max 8" in step["reason"]
    assert LocalFleet(own, "batch", ("maintenance",)).current() == 0, "a dry run starts nothing"
    bad = run_cli(own.replace(autoscaler_backend="asg"), "autoscaler", "run", "--once", check=2)
    assert "RETAIN_AUTOSCALER_BACKEND" in bad.stderr
