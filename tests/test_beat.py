"""One beat schedule, sent by one beat at a time: two real `retain beat` processes on a broker of
their own, with the lake flush made to fire every second and no worker consuming, so every firing
stays on the broker's `ingest` list to be counted. Each firing carries its run number; no run may
be sent twice, not even across a kill -9 of the beat holding the lock.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from retain.ingest import deadletter
from retain.worker.beatlock import BeatLock, broker_redis, holder, last_runs, lock_key
from tests.harness import child_env, crash_settings, poll, retain_process, run_cli

BROKER_DB = 3  # and 4 for results: this module's own databases


def firings(client, queue: str, entry: str) -> list[dict]:
    """The beat headers of every message ``entry`` put on ``queue``, oldest first."""
    messages = [json.loads(raw)["headers"] for raw in client.lrange(queue, 0, -1)]
    return [h for h in reversed(messages) if h.get("beat_entry") == entry]


@pytest.fixture(scope="module")
def beat_settings(stack, settings):
    return crash_settings(settings, settings.cassandra_keyspace, BROKER_DB, "beat",
                          lake_flush_seconds=1.0, beat_lock_seconds=6.0)


@pytest.fixture(scope="module")
def broker(beat_settings):
    client = broker_redis(beat_settings)
    yield client
    client.close()


@pytest.fixture(scope="module")
def beats(beat_settings, broker):
    """Two beats started together; returned once one of them holds the lock."""
    procs = [retain_process(beat_settings, name) for name in ("beat-a", "beat-b")]
    for proc in procs:
        proc.spawn([sys.executable, "-m", "retain", "beat"], env=child_env(beat_settings))

    def one_holds() -> bool:
        for proc in procs:
            assert proc.is_running(), f"{proc.name} exited:\n{proc.log_tail(30)}"
        return holder(broker, beat_settings) is not None

    poll(one_holds, 60, "one of two beats takes the beat lock")
    yield procs
    for proc in procs:
        proc.stop(15)


def holding_process(procs, token: str):
    pid = int(token.split(":")[1])
    return next(proc for proc in procs if proc.pid() == pid)


def test_two_beats_send_every_run_once(beats, beat_settings, broker):
    lock = holder(broker, beat_settings)
    sent = poll(lambda: (f := firings(broker, "ingest", "lake-flush")) and len(f) >= 6 and f, 60,
                "six lake flushes are sent")
    sweeps = firings(broker, "ingest", "profiles-sweep")

    for name, fired in (("lake-flush", sent), ("profiles-sweep", sweeps)):
        runs = [h["beat_run"] for h in fired]
        assert runs == list(range(1, len(runs) + 1)), f"{name}: every run sent once, in order: {runs}"
        assert {h["beat_sender"] for h in fired} == {lock.token}, f"{name}: only the lock holder sends"
    assert all(proc.is_running() for proc in beats), "the standby keeps running"
    assert last_runs(broker, beat_settings)["lake-flush"].runs >= len(sent)


def test_schedule_show_lists_every_entry_and_the_running_beat(beats, beat_settings, broker):
    poll(lambda: firings(broker, "ingest", "lake-flush"), 60, "a lake flush is sent")
    shown = json.loads(run_cli(beat_settings, "schedule", "show", "--json").stdout)
    rows = {row["name"]: row for row in shown["entries"]}
    assert {name: (row["task"], row["queue"], row["when"]) for name, row in rows.items()} == {
        "lake-flush": ("ingest.flush_lake", "ingest", "every 1 s"),
        "ingest-redeliver": ("ingest.redeliver", "ingest", "every 60 s"),
        "profiles-sweep": ("ingest.sweep_dirty", "ingest", "every 1 s"),
        "train-nightly": ("train.nightly", "train", "daily at 02:00 UTC"),
        "repair-daily": ("maintenance.repair", "maintenance", "daily at 03:00 UTC"),
        "deadletters-cleanup": ("maintenance.cleanup_deadletters", "maintenance", "daily at 04:30 UTC"),
    }
    assert rows["lake-flush"]["runs"] >= 1 and rows["lake-flush"]["last_run"]
    assert rows["repair-daily"]["last_run"] is None and rows["repair-daily"]["next_run"].endswith("03:00:00+00:00")
    assert shown["beat"]["holder"] == holder(broker, beat_settings).instance

    text = run_cli(beat_settings, "schedule", "show").stdout
    assert "maintenance.repair" in text and "daily at 03:00 UTC" in text
    assert f"beat: {shown['beat']['holder']} is sending" in text


def test_standby_takes_over_from_a_killed_holder_without_sending_a_run_twice(beats, beat_settings, broker):
    old = holder(broker, beat_settings)
    victim = holding_process(beats, old.token)
    poll(lambda: firings(broker, "ingest", "lake-flush"), 60, "a lake flush is sent")
    os.killpg(victim.pid(), signal.SIGKILL)

    new = poll(lambda: (h := holder(broker, beat_settings)) and h.token != old.token and h, 30,
               f"the standby takes the lock after {old.instance} was killed")
    survivor = holding_process(beats, new.token)
    assert survivor is not victim
    poll(lambda: len([h for h in firings(broker, "ingest", "lake-flush") if h["beat_sender"] == new.token]) >= 3, 30,
         "the new holder sends three lake flushes")

    sent = firings(broker, "ingest", "lake-flush")
    runs = [h["beat_run"] for h in sent]
    assert len(runs) == len(set(runs)), f"a run was sent twice: {runs}"
    before = [h["beat_run"] for h in sent if h["beat_sender"] == old.token]
    after = [h["beat_run"] for h in sent if h["beat_sender"] == new.token]
    assert {h["beat_sender"] for h in sent} == {old.token, new.token}
    # The new holder continues from the recorded runs instead of starting over; a run the killed
    # holder had claimed but not yet sent is lost, never sent twice.
    assert after[0] - before[-1] in (1, 2), f"runs before the kill {before}, after {after}"
    assert after == list(range(after[0], after[0] + len(after)))


def test_lock_is_exclusive_renewable_expiring_and_fences_claims(stack, beat_settings, broker):
    own = beat_settings.replace(redis_prefix=f"retain:t{uuid.uuid4().hex[:10]}:")
    a = BeatLock(broker, own, 1.0, token="host-a:1:x")
    b = BeatLock(broker, own, 1.0, token="host-b:2:y")
    now = datetime.now(timezone.utc)
    try:
        assert (a.hold(), b.hold(), a.hold()) == (2, 0, 1), "taken, refused, renewed"
        assert a.claim("job", 0, now) == 1
        assert a.claim("job", 0, now) == 0, "run 1 was already sent"
        assert b.claim("job", 1, now) == -1, "only the holder may send"
        assert not b.release() and holder(broker, own).token == a.token, "only the holder may release"
        assert a.release() and holder(broker, own) is None

        assert b.hold() == 2 and b.claim("job", 1, now) == 2
        assert (last_runs(broker, own)["job"].runs, last_runs(broker, own)["job"].by) == (2, b.token)
        poll(lambda: a.hold() == 2, 10, "a lock its holder stopped renewing expires and is taken over")
        assert b.hold() == 0 and b.claim("job", 2, now) == -1
    finally:
        broker.delete(lock_key(own), f"{own.redis_prefix}beat:runs")


def test_deadletter_cleanup_deletes_days_past_the_retention(schema, tenant):
    tid, other = tenant["id"], f"other-{uuid.uuid4().hex[:8]}"
    today = datetime.now(timezone.utc).date()

    def write(who: str, days_ago: int) -> None:
        moment = datetime.combine(today - timedelta(days=days_ago), datetime.min.time(), timezone.utc)
        deadletter.write(schema, who, "test", int(moment.timestamp() * 1000) + 3_600_000,
                         [{"index": 0, "raw": f"bad {days_ago}", "reason": "invalid"}], ttl_days=365)

    for days_ago in (45, 40, 2):
        write(tid, days_ago)
    write(other, 45)

    done = deadletter.cleanup(schema, 30, today=today, tenants=[tid])
    assert done.partitions == [(tid, today - timedelta(days=45)), (tid, today - timedelta(days=40))]
    left = deadletter.list_letters(schema, tid, days=50, until=today)
    assert [letter.raw for letter in left] == ["bad 2"]
    assert deadletter.list_letters(schema, other, days=50, until=today), "another tenant's letters are left alone"
    assert deadletter.cleanup(schema, 30, today=today, tenants=[tid]).partitions == [], "nothing left to delete"

    assert deadletter.cleanup(schema, 30, today=today, tenants=[other]).to_dict()["deleted"] == 1


def test_every_entry_sends_an_existing_task_to_its_own_queue(settings):
    import importlib

    from retain.worker.app import TASK_MODULES, app
    from retain.worker.schedule import beat_schedule

    for module in TASK_MODULES:
        importlib.import_module(module)
    for name, entry in beat_schedule(settings).items():
        assert entry["task"] in app.tasks, f"{name} sends {entry['task']}, which no worker knows"
        assert entry["options"]["queue"] == entry["task"].split(".")[0], f"{name} goes to its task's queue"
        assert entry["options"]["expires"] > 0, f"{name}: a firing nobody took in time is dropped, not piled up"
