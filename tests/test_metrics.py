"""Prometheus metrics of real processes: a gunicorn API summing its workers (dead ones included), a
worker's exporter counting tasks, events, dead letters, rebuilt profiles and failures, and the
autoscaler's desired and current capacity."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from retain.worker.app import create_celery
from tests.harness import (child_env, children, crash_settings, free_port, poll, retain_process, start_api,
                           start_worker)
from tests.ingest_helpers import message, post
from tests.test_profiles_api import rebuilt

BROKER_DB = 24  # and 25 for results: this module's own databases
PROFILE_ROUTE = "/v1/profiles/<user_id>"


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a /metrics page, keyed by name and labels."""
    text = requests.get(url, timeout=10).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def observed(stack, settings, schema):
    """An API (two gunicorn workers) and a worker with its exporter, on brokers of their own."""
    own = crash_settings(settings, settings.cassandra_keyspace, BROKER_DB, "metrics-test",
                         worker_metrics_port=free_port(), api_workers=2, log_format="json")
    worker = start_worker(own, "metrics-worker", queues="ingest,profiles")
    api, url = start_api(own, "metrics-api")
    producer = create_celery(own)
    yield own, url, api, f"http://127.0.0.1:{own.worker_metrics_port}/metrics", producer
    producer.close()
    api.stop(30)
    worker.stop(60)


def test_api_histogram_by_route_template_summed_over_workers(observed, tenant, schema) -> None:
    own, url, api, _, _ = observed
    user = f"u-{uuid.uuid4().hex[:8]}"
    rebuilt(schema, own, tenant["id"], user)

    def lookup(who: str) -> int:
        return requests.get(f"{url}/v1/profiles/{who}", auth=(tenant["read"], ""), timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(lookup, [user] * 12 + ["nobody-" + user] * 5)) == [200] * 12 + [404] * 5
    assert requests.get(f"{url}/no/such/path/{user}", timeout=10).status_code == 404
    before = scrape(f"{url}/metrics")
    count = "retain_http_request_duration_seconds_count"
    assert value(before, count, route=PROFILE_ROUTE, method="GET", status="200") == 12
    assert value(before, count, route=PROFILE_ROUTE, method="GET", status="404") == 5
    assert value(before, count, route="(unmatched)", method="GET", status="404") == 1
    assert value(before, "retain_http_request_duration_seconds_bucket", route=PROFILE_ROUTE, method="GET",
                 status="200", le="+Inf") == 12
    assert not [key for key in before if any(user in v for _, v in key[1])], "a raw path became a label"
    assert value(before, "retain_http_requests_in_flight") == 0

    # Every worker that served those requests dies; gunicorn starts others. The dead workers'
    # counts stay, the new ones' add to them.
    master = api.pid()
    old = children(master)
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    poll(lambda: len(children(master) - old) == own.api_workers, 30, "gunicorn replaces its killed workers")
    poll(lambda: requests.get(f"{url}/healthz", timeout=2).status_code == 200, 30, "the new workers answer")
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lookup, [user] * 4)) == [200] * 4
    after = scrape(f"{url}/metrics")
    assert value(after, count, route=PROFILE_ROUTE, method="GET", status="200") == 16
    assert value(after, "retain_http_requests_in_flight") == 0
    assert requests.post(f"{url}/metrics", timeout=10).status_code == 405


def test_worker_exporter_counts_tasks_events_and_failures(observed, tenant) -> None:
    own, url, _, exporter, producer = observed
    users = [f"u-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    anonymous = {"type": "track", "event": "Read", "messageId": str(uuid.uuid4())}  # no user id: dead letter
    batch = [message(u) for u in users]
    answer = post(url, "/v1/batch", tenant["write"], {"batch": batch + [anonymous]})
    assert answer.status_code == 200 and answer.json()["accepted"] == 3, answer.text
    t = tenant["id"]
    poll(lambda: value(scrape(exporter), "retain_events_ingested_total", tenant=t) == 3, 60,
         "the worker's exporter counts the 3 events it stored")
    samples = scrape(exporter)
    assert value(samples, "retain_dead_letters_total", tenant=t, field="userId") == 1
    assert value(samples, "retain_events_duplicates_total", tenant=t) == 0
    assert value(samples, "retain_task_duration_seconds_count", task="ingest.batch", state="SUCCESS") >= 1

    # The same events again: not stored twice, counted as duplicates.
    assert post(url, "/v1/batch", tenant["write"], {"batch": batch}).status_code == 200
    poll(lambda: value(scrape(exporter), "retain_events_duplicates_total", tenant=t) == 3, 60,
         "the exporter counts the 3 events sent again as duplicates")
    producer.send_task("profiles.rebuild", args=[t, users], queue="profiles").get(timeout=60)
    poll(lambda: value(scrape(exporter), "retain_profiles_rebuilt_total", tenant=t) == 3, 30,
         "the exporter counts the 3 rebuilt profiles")

    failing = producer.send_task("ingest.batch", args=[{"no": "tenant"}], queue="ingest")
    with pytest.raises(Exception, match="ingest.batch takes"):
        failing.get(timeout=60)
    poll(lambda: value(scrape(exporter), "retain_task_failures_total", task="ingest.batch",
                       exception="ValueError") >= 1, 30, "the exporter counts the failed task")
    samples = scrape(exporter)
    assert value(samples, "retain_task_duration_seconds_count", task="ingest.batch", state="FAILURE") >= 1
    assert value(samples, "retain_task_duration_seconds_count", task="profiles.rebuild", state="SUCCESS") >= 1
    assert value(samples, "retain_events_ingested_total", tenant=t) == 3


def test_a_worker_whose_port_is_taken_still_works(observed) -> None:
    own, _, _, _, producer = observed
    second = start_worker(own, "metrics-second", queues="ingest")
    try:
        poll(lambda: "worker metrics not served" in second.log_file.read_text(), 30,
             "the second worker warns that the exporter's port is taken")
        assert second.is_running()
    finally:
        second.stop(60)


def test_autoscaler_gauges(observed) -> None:
    own = observed[0].replace(autoscaler_pools={"batch": "train"}, autoscaler_metrics_port=free_port(),
                              autoscaler_interval_seconds=0.5, autoscaler_fallback_rate=0.01,
                              autoscaler_target_latency=10.0)
    producer = create_celery(own)
    for _ in range(5):
        producer.send_task("train.nightly", queue="train")  # no worker consumes `train` here
    producer.close()
    proc = retain_process(own, "metrics-autoscaler")
    proc.spawn([sys.executable, "-m", "retain", "autoscaler", "run", "--dry-run"], env=child_env(own))
    exporter = f"http://127.0.0.1:{own.autoscaler_metrics_port}/metrics"
    try:
        def exported() -> dict | None:
            assert proc.is_running(), f"the autoscaler exited:\n{proc.log_tail(30)}"
            samples = scrape(exporter)
            return samples if value(samples, "retain_autoscaler_queue_waiting", pool="batch") == 5 else None

        samples = poll(exported, 60, "the autoscaler exports the 5 waiting tasks of pool batch")
        # 5 tasks at the fallback 0.01/s per slot within 10 s: workers wanted, none running.
        assert value(samples, "retain_autoscaler_desired_workers", pool="batch") >= 1
        assert value(samples, "retain_autoscaler_current_workers", pool="batch") == 0
        assert value(samples, "retain_autoscaler_last_look_timestamp_seconds", pool="batch") > 0
    finally:
        proc.stop(30)
