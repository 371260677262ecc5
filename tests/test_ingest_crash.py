"""kill -9 of an ingest worker in the middle of its batches, then a restart: every acknowledged
event is present exactly once in the event store, the lake staging area and the counters."""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections import Counter

from retain.ingest.counters import summary
from retain.ingest.journal import Journal
from retain.ingest.submit import redeliver, submit
from retain.store.redis import redis_client
from retain.tenancy.registry import TenantRegistry
from retain.worker.app import create_celery
from tests.harness import crash_settings, poll, start_worker
from tests.ingest_helpers import message


def test_acknowledged_events_survive_kill_9_exactly_once(stack, settings, keyspace) -> None:
    iso = crash_settings(settings, keyspace.keyspace, 9, "crash", worker_concurrency=2, lake_flush_events=10**9)
    tenant, _ = TenantRegistry(keyspace).create(f"t-{uuid.uuid4().hex[:8]}")
    data = redis_client(iso)
    users = [f"u{n}" for n in range(25)]
    batches = [[message(users[(b * 7 + i) % 25], f"E{b}-{i}") for i in range(40)] for b in range(30)]
    producer = create_celery(iso)
    journal = Journal(data, iso)
    for batch in batches:
        assert submit(batch, tenant.tenant_id, "http", iso, journal=journal, app=producer).rejected == []
    assert journal.pending() == 30

    first = start_worker(iso, f"ingest-victim-{uuid.uuid4().hex[:6]}", queues="ingest")
    staged_key = f"{iso.redis_prefix}lake:staging"
    poll(lambda: data.xlen(staged_key) > 0, 60, "the first worker starts committing events")
    os.killpg(first.pid(), signal.SIGKILL)
    poll(lambda: not first.is_running(), 10, "the first worker dies")
    assert data.xlen(staged_key) < 30 * 40, "the worker was killed before it finished"
    assert journal.pending() > 0
    second = start_worker(iso, f"ingest-heir-{uuid.uuid4().hex[:6]}", queues="ingest")
    try:
        # The broker redelivers what the victim had reserved once its visibility timeout passes; a
        # message the victim had popped but not yet registered is lost to the broker, and the
        # journal's sweep (beat runs it every minute) sends it again.
        def settled() -> bool:
            redeliver(journal, older_than=iso.broker_visibility_timeout + 5, app=producer)
            return journal.pending() == 0
        poll(settled, 180, "every journaled batch is processed after the restart", interval=1.0)
    finally:
        second.stop(30)
    ids = {m["messageId"] for batch in batches for m in batch}
    staged = Counter(json.loads(fields["r"])["message_id"] for _, fields in data.xrange(staged_key))
    assert set(staged) == ids and set(staged.values()) == {1}, "each event staged exactly once"
    rows = Counter()
    for user in users:
        for row in keyspace.read("SELECT message_id FROM events_by_user WHERE tenant_id = ? AND user_id = ?",
                                 (tenant.tenant_id, user)):
            rows[row.message_id] += 1
    assert set(rows) == ids and set(rows.values()) == {1}, "each event stored exactly once in Cassandra"
    day = batches[0][0]["timestamp"][:10]
    assert summary(data, iso, tenant.tenant_id, day)["events"] == 1200
    data.close()
