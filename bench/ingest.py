"""Ingestion throughput, next to a baseline measured in the same run.

    .venv/bin/python bench/ingest.py [--events 20000] [--clients 4] [--seconds 10]

Prints one JSON document:
- baseline: rows/s this Python process inserts into Cassandra alone, with the pipeline's own
  prepared statement and concurrent execution (the ceiling for anything that writes events);
- end_to_end: events/s from the broker into Cassandra + the lake (staging, counters, dirty set,
  then the Parquet flush) with ONE ingest worker process, and its ratio to the baseline
  (target >= 0.5);
- http: events/s the API (gunicorn, RETAIN_API_WORKERS x RETAIN_API_THREADS) accepts into the
  broker from several concurrent clients posting batches of 100 (target >= 10,000).
Runs a stack of its own (Redis on a free port, Cassandra on 127.0.0.31, durable: fsync on).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests
from cassandra.concurrent import execute_concurrent_with_args
from common import bench_settings, free_port

from retain.ingest.journal import Journal
from retain.ingest.pipeline import _INSERT_EVENT
from retain.ingest.submit import prepare, submit
from retain.lake import open_lake
from retain.lake.flush import flush
from retain.stack import Stack
from retain.store.cassandra import CassandraStore
from retain.store.redis import redis_client
from retain.store.schema import migrate
from retain.tenancy.registry import TenantRegistry
from retain.worker.app import create_celery

from tests.harness import poll, start_api, start_worker


def messages(count: int, users: int = 2000, seed: str = "") -> list[dict]:
    base = datetime.now(timezone.utc) - timedelta(hours=2)
    return [{"type": "track", "event": f"Event {i % 20}", "userId": f"u{i % users}",
             "messageId": f"{seed}{uuid.uuid4()}", "timestamp": (base + timedelta(milliseconds=i)).isoformat(),
             "properties": {"category": "news", "content_id": f"c{i % 50}", "revenue": 1.5},
             "context": {"timezone": "Europe/Paris", "channel": "web"}} for i in range(count)]


def baseline(settings, store: CassandraStore, tenant: str, count: int) -> float:
    sub = prepare(messages(count), tenant, "bench", settings)
    rows = [(tenant, e["user_id"], e["timestamp"], e["message_id"], e["type"], e["name"],
             json.dumps(e), 400 * 86400) for e in sub.events]
    statement = store.prepare(_INSERT_EVENT)
    start = time.perf_counter()
    execute_concurrent_with_args(store.session, statement, rows, concurrency=64, raise_on_first_error=True)
    return count / (time.perf_counter() - start)


def end_to_end(settings, tenant: str, count: int) -> dict:
    data = redis_client(settings)
    producer = create_celery(settings)
    journal = Journal(data, settings)
    batch = 100
    all_messages = messages(count, seed="e2e-")
    for i in range(0, count, batch):
        submit(all_messages[i:i + batch], tenant, "bench", settings, journal=journal, app=producer)
    staging = f"{settings.redis_prefix}lake:staging"
    worker = start_worker(settings.replace(worker_concurrency=1), "bench-ingest", queues="ingest")
    start = time.perf_counter()
    try:
        poll(lambda: data.xlen(staging) >= count, 600, f"{count} events committed", interval=0.05)
        committed = time.perf_counter() - start
        report = flush(data, settings, open_lake(settings), max_events=count)
        total = time.perf_counter() - start
    finally:
        worker.stop(60)
    assert report.rows == count, report
    return {"events": count, "committed_s": round(committed, 2), "with_lake_flush_s": round(total, 2),
            "events_per_s": round(count / total)}


def _client(url: str, key: str, body: bytes, seconds: float, out) -> None:
    session = requests.Session()
    session.auth = (key, "")
    sent = errors = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        answer = session.post(f"{url}/v1/batch", data=body, headers={"Content-Type": "application/json"}, timeout=30)
        if answer.status_code == 200:
            sent += 1
        else:
            errors += 1
    out.put((sent, errors))


def http(settings, key: str, clients: int, seconds: float) -> dict:
    body = json.dumps({"batch": messages(100, seed="http-")}).encode()
    api, url = start_api(settings, "bench-api")
    try:
        requests.post(f"{url}/v1/batch", data=body, auth=(key, ""), timeout=30).raise_for_status()  # warm up
        out = multiprocessing.Queue()
        procs = [multiprocessing.Process(target=_client, args=(url, key, body, seconds, out)) for _ in range(clients)]
        start = time.perf_counter()
        for proc in procs:
            proc.start()
        results = [out.get(timeout=seconds + 60) for _ in procs]
        elapsed = time.perf_counter() - start
        for proc in procs:
            proc.join()
    finally:
        api.stop(30)
    batches = sum(sent for sent, _ in results)
    return {"clients": clients, "batch_size": 100, "seconds": round(elapsed, 1), "batches": batches,
            "errors": sum(e for _, e in results), "events_per_s": round(batches * 100 / elapsed)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="retain-bench-ingest-"))
    settings = bench_settings(home, ["127.0.0.31"], 7899, api_port=free_port(), lake_flush_events=10**9)
    stack = Stack(settings)
    try:
        stack.up(1)
        store = CassandraStore(settings)
        migrate(store, settings.cassandra_replication)
        tenant, keys = TenantRegistry(store).create(f"bench-{uuid.uuid4().hex[:6]}")
        raw = baseline(settings, store, tenant.tenant_id, args.events)
        e2e = end_to_end(settings, tenant.tenant_id, args.events)
        web = http(settings, keys["write"], args.clients, args.seconds)
        store.close()
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps({
        "benchmark": "ingest",
        "baseline_cassandra_insert_rows_per_s": round(raw),
        "end_to_end": {**e2e, "ratio_to_baseline": round(e2e["events_per_s"] / raw, 2), "target_ratio": 0.5},
        "http": {**web, "target_events_per_s": 10000},
    }, indent=2))


if __name__ == "__main__":
    main()
