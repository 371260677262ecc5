"""Spot interruption drain: a real worker watching a metadata stand-in on loopback.

A notice stops the worker from taking tasks; what it runs finishes, or is stopped before the
deadline and redelivered to another worker; the worker is gone before the deadline either way.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid

import pytest
import redis

from retain.autoscaler.busy import busy_instances
from retain.autoscaler.queues import UNACKED, waiting
from retain.probe import probe_state
from retain.worker.app import create_celery
from retain.worker.imds import Imds, InstanceAction, MetadataUnavailable, Rebalance
from tests.harness import crash_settings, free_port, poll, start_worker
from tests.imds_standin import INSTANCE_ACTION, ImdsStandIn

BROKER_DB = 5  # and 6 for results


@pytest.fixture
def imds():
    with ImdsStandIn(instance_id=f"i-{uuid.uuid4().hex[:17]}") as server:
        yield server


def test_imds_client_uses_a_token_and_reads_notices(imds) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{imds.url}{INSTANCE_ACTION}", timeout=5)
    assert refused.value.code == 401, "the stand-in, like IMDSv2, answers nothing without a token"

    client = Imds(imds.url)
    assert client.instance_id() == imds.instance_id
    assert client.instance_action() is None, "404 is no notice"
    assert client.rebalance() is None
    assert len(imds.tokens) == 1, "one token serves every request"

    at = int(time.time()) + 120
    imds.interrupt(at, action="stop")
    imds.recommend_rebalance(at - 60)
    imds.revoke_tokens()  # a restarted metadata service: the client gets a new token and carries on
    assert client.instance_action() == InstanceAction("stop", float(at))
    assert client.rebalance() == Rebalance(float(at - 60))

    with pytest.raises(MetadataUnavailable):
        Imds(f"http://127.0.0.1:{free_port()}", timeout=1).instance_action()


def _own(settings, imds, name: str):
    return crash_settings(settings, settings.cassandra_keyspace, BROKER_DB, name, worker_concurrency=2,
                          worker_spot_watch=True, worker_imds_url=imds.url, worker_spot_poll_seconds=0.5,
                          worker_spot_margin_seconds=6.0)


def _noticed(worker, text: str):
    return lambda: text in worker.log_tail(400)


@pytest.mark.parametrize("notice", ["interruption", "rebalance"])
def test_notice_lets_the_running_task_finish_and_takes_no_new_one(stack, settings, imds, notice: str) -> None:
    own = _own(settings, imds, f"spot-{uuid.uuid4().hex[:6]}")
    broker, data = redis.Redis.from_url(own.broker_url), redis.Redis.from_url(own.redis_url, decode_responses=True)
    producer = create_celery(own)
    worker = start_worker(own, f"spot-{uuid.uuid4().hex[:6]}", queues="maintenance")
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    try:
        running = producer.send_task("maintenance.probe", args=[first, 4], queue="maintenance")
        poll(lambda: probe_state(data, own, first)["attempts"] == 1, 60, "the long task starts")
        poll(lambda: imds.instance_id in busy_instances(data, own.redis_prefix), 30,
             "the worker reports its instance busy while it holds a task")

        deadline = time.time() + 40
        if notice == "interruption":
            imds.interrupt(deadline)
            poll(_noticed(worker, "spot interruption notice"), 30, "the worker logs the interruption notice")
        else:
            imds.recommend_rebalance(time.time())
            poll(_noticed(worker, "spot rebalance recommendation"), 30, "the worker logs the recommendation")
        # The worker has a free pool process, yet must leave this one in the queue.
        producer.send_task("maintenance.probe", args=[second, 0], queue="maintenance")

        poll(lambda: not worker.is_running(), max(1.0, deadline - time.time()),
             "the worker finishes its task and exits before the notice's deadline")
        assert worker.exit_status() in ("exit code 0", "exited"), worker.log_tail(40)
        assert running.get(timeout=10)["attempt"] == 1
        state = probe_state(data, own, first)
        assert state["attempts"] == 1 and state["log"][-1].startswith("done 1"), state
        assert probe_state(data, own, second)["attempts"] == 0, "a draining worker took a new task"
        assert waiting(broker, ["maintenance"])["maintenance"] == 1, "the new task waits for another worker"
        assert imds.instance_id not in busy_instances(data, own.redis_prefix), "the drained instance is idle"
    finally:
        worker.stop(30)
        producer.close()
        broker.close()
        data.close()


def test_task_past_the_deadline_is_redelivered_and_the_worker_exits_in_time(stack, settings, imds) -> None:
    own = _own(settings, imds, f"spot-{uuid.uuid4().hex[:6]}")
    broker, data = redis.Redis.from_url(own.broker_url), redis.Redis.from_url(own.redis_url, decode_responses=True)
    producer = create_celery(own)
    victim = start_worker(own, f"spot-{uuid.uuid4().hex[:6]}", queues="maintenance")
    heir = None
    token = uuid.uuid4().hex
    try:
        result = producer.send_task("maintenance.probe", args=[token, 8], queue="maintenance")
        poll(lambda: probe_state(data, own, token)["attempts"] == 1, 60, "the long task starts")

        deadline = time.time() + 7.5  # the task would need 8 s; the margin is 6 s
        imds.interrupt(deadline)
        poll(lambda: not victim.is_running(), max(1.0, deadline - time.time()),
             "the worker stops the task and exits before the notice's deadline")
        state = probe_state(data, own, token)
        assert state["attempts"] == 1 and not any(line.startswith("done") for line in state["log"]), state
        # Put back in the queue as the worker closed its channel, not left for the visibility timeout.
        assert waiting(broker, ["maintenance"])["maintenance"] == 1, victim.log_tail(60)
        assert broker.hlen(UNACKED) == 0

        heir = start_worker(own.replace(worker_spot_watch=False), f"heir-{uuid.uuid4().hex[:6]}",
                            queues="maintenance")
        value = result.get(timeout=60)
        state = probe_state(data, own, token)
        assert value["attempt"] == 2 and state["attempts"] == 2, state
        assert state["log"][-1].startswith("done 2"), state
    finally:
        for proc in (victim, heir):
            if proc is not None:
                proc.stop(30)
        producer.close()
        broker.close()
        data.close()
