"""kill -9 of a profile worker in the middle of its batches, then a restart: every dirty user gets
a profile, and none is lost from the dirty set on the way."""

from __future__ import annotations

import os
import signal
import time
import uuid

from retain.ingest.pipeline import Ingestor
from retain.ingest.submit import prepare
from retain.profiles.cache import ProfileCache
from retain.profiles.dirty import DirtyUsers, sweep
from retain.store.profiles import ProfileStore
from retain.store.redis import redis_client
from retain.worker.app import create_celery
from tests.harness import crash_settings, poll, start_worker
from tests.ingest_helpers import message


def test_dirty_users_survive_kill_9_of_a_profile_worker(stack, settings, keyspace) -> None:
    iso = crash_settings(settings, keyspace.keyspace, 11, "profiles-crash", worker_concurrency=1,
                         profile_debounce_seconds=0, profile_batch_size=100, profile_claim_seconds=10)
    data = redis_client(iso)
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    users = [f"u{n}" for n in range(2000)]
    ingestor = Ingestor(iso, keyspace, data)
    for start in range(0, len(users), 500):
        batch = [message(u, name) for u in users[start:start + 500] for name in ("Product Viewed", "Email Opened")]
        ingestor.process(prepare(batch, tenant, "http", iso).payload())
    dirty = DirtyUsers(data, iso.redis_prefix)
    assert dirty.pending(tenant) == {"dirty": 2000, "claimed": 0}
    producer = create_celery(iso)

    def send(t: str, batch: list[str], claimed_ms: int) -> None:
        producer.send_task("profiles.rebuild", args=[t, batch, claimed_ms], queue="profiles")

    assert sweep(dirty, iso, send, int(time.time() * 1000)) == {tenant: 2000}
    cache = ProfileCache(data, iso.redis_prefix, 3600, 30)
    cached = lambda: sum(e is not None for e in cache.get_many(tenant, users))  # noqa: E731

    victim = start_worker(iso, f"profiles-victim-{uuid.uuid4().hex[:6]}", queues="profiles")
    poll(lambda: cached() > 0, 60, "the first worker starts writing profiles")
    os.killpg(victim.pid(), signal.SIGKILL)
    poll(lambda: not victim.is_running(), 10, "the first worker dies")
    assert cached() < 2000, "the worker was killed before it finished"
    assert sum(dirty.pending(tenant).values()) > 0, "unfinished users are still claimed"
    heir = start_worker(iso, f"profiles-heir-{uuid.uuid4().hex[:6]}", queues="profiles")
    try:
        # Beat's sweep, run here: claims past their lease (their task died with the victim) make
        # their users dirty again, and they are queued anew; the broker also redelivers the
        # victim's unacknowledged task once its visibility timeout passes. Either way, once.
        def settled() -> bool:
            sweep(dirty, iso, send, int(time.time() * 1000))
            return cached() == 2000 and dirty.pending(tenant) == {"dirty": 0, "claimed": 0}
        poll(settled, 180, "every dirty user is rebuilt after the restart and no claim is left", interval=1.0)
    finally:
        heir.stop(30)
    store = ProfileStore(keyspace)
    assert all(store.get(tenant, u) is not None for u in users[::50]), "profiles are in Cassandra too"
    producer.close()
    data.close()
