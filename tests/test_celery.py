"""Celery with real worker processes on the real Redis broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest
from celery import Celery

from retain.probe import probe_state
from retain.store.redis import redis_client
from tests.harness import poll, start_worker

SENDER = """
import json, sys
from celery import Celery
app = Celery(broker=sys.argv[1], backend=sys.argv[2])
app.conf.update(task_serializer="json", accept_content=["json"], result_accept_content=["json"])
result = app.send_task("maintenance.probe", args=[sys.argv[3], 0], queue="maintenance")
value = result.get(timeout=90)
print(json.dumps({"result": value, "retain_modules": sorted(m for m in sys.modules if m.startswith("retain"))}))
"""


def test_task_sent_by_name_from_a_process_without_retain(worker, settings) -> None:
    token = uuid.uuid4().hex
    out = subprocess.run([sys.executable, "-c", SENDER, settings.broker_url, settings.result_backend, token],
                         capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["retain_modules"] == []
    assert report["result"]["token"] == token and report["result"]["attempt"] == 1


def _isolated(settings, db: int):
    """Settings on a broker database no other worker consumes, with short redelivery times."""
    return settings.replace(
        broker_url=f"redis://127.0.0.1:6390/{db}", result_backend=f"redis://127.0.0.1:6390/{db + 1}",
        task_time_limits={q: 15 for q in ("ingest", "profiles", "train", "maintenance")},
        broker_visibility_timeout=20, home=settings.home / f"iso{db}",
    )


def _flush(settings) -> None:
    for url in (settings.broker_url, settings.result_backend):
        client = redis_client(settings.replace(redis_url=url))
        client.flushdb()
        client.close()


@pytest.mark.parametrize("victim", ["whole worker", "pool process"])
def test_task_survives_kill_9_of_its_worker(stack, settings, victim: str) -> None:
    iso = _isolated(settings, 5 if victim == "whole worker" else 7)
    _flush(iso)
    data = redis_client(iso)
    first = start_worker(iso, f"victim-{uuid.uuid4().hex[:6]}", queues="maintenance")
    second = None
    producer = Celery(broker=iso.broker_url, backend=iso.result_backend)
    producer.conf.update(accept_content=["json"], result_accept_content=["json"])
    token = uuid.uuid4().hex
    try:
        result = producer.send_task("maintenance.probe", args=[token, 6], queue="maintenance")
        poll(lambda: probe_state(data, iso, token)["attempts"] == 1, 60, "the task starts on the first worker")
        if victim == "whole worker":
            os.killpg(first.pid(), signal.SIGKILL)
            poll(lambda: not first.is_running(), 10, "the first worker dies")
            second = start_worker(iso, f"heir-{uuid.uuid4().hex[:6]}", queues="maintenance")
        else:
            children = subprocess.run(["pgrep", "-P", str(first.pid())], capture_output=True, text=True).stdout.split()
            busy = [pid for pid in children if _runs_probe(int(pid))] or children
            assert busy, "the worker has no pool process"
            for pid in busy:
                os.kill(int(pid), signal.SIGKILL)
        value = result.get(timeout=120)
        state = probe_state(data, iso, token)
        assert value["attempt"] == 2, state
        assert state["attempts"] == 2
        assert state["log"][-1].startswith("done 2"), state
        assert not any(line.startswith("done 1") for line in state["log"]), "the killed attempt cannot finish"
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.stop(30)
        producer.close()
        data.close()


def _runs_probe(pid: int) -> bool:
    # A prefork child holding the task is the one sleeping in the probe; any child will do if unsure.
    try:
        with open(f"/proc/{pid}/wchan") as handle:
            return "sleep" in handle.read()
    except OSError:
        return False
