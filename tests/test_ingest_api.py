"""Segment-compatible ingestion through a real gunicorn API and a real Celery worker."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter

import requests

from retain.ingest.counters import dirty_users, summary
from retain.lake import open_lake
from retain.lake.flush import flush, read_events
from retain.lake.schema import COLUMNS
from retain.store.redis import redis_client
from tests.harness import poll
from tests.ingest_helpers import message, post, stored


def test_segment_library_sends_to_retain(api, worker, tenant, schema) -> None:
    import segment.analytics as analytics

    client = analytics.Client(write_key=tenant["write"], host=api, sync_mode=True, gzip=True, max_retries=1)
    client.track("reader-1", "Article Read", {"category": "news", "content_id": "a1"})
    client.page("reader-1", "Home", "Front page", {"path": "/"})
    client.identify("reader-1", {"plan": "premium"})
    client.flush()
    rows = poll(lambda: len(stored(schema, tenant["id"], "reader-1")) == 3 and stored(schema, tenant["id"], "reader-1"),
                60, "three events sent by segment-analytics-python are stored")
    assert sorted(r.name for r in rows) == ["", "Article Read", "Front page"]


def test_batch_answer_and_exactly_once_on_redelivery(api, worker, tenant, schema, settings, tmp_path) -> None:
    user = f"u-{uuid.uuid4().hex[:6]}"
    batch = {"batch": [message(user, f"Step {i}") for i in range(20)]}
    before = time.time() * 1000
    first = post(api, "/v1/batch", tenant["write"], batch, gz=True)
    assert first.status_code == 200, first.text
    assert first.json() == {"success": True, "accepted": 20, "rejected": []}
    # The same batch again (a client retry after a timeout): nothing new is stored.
    assert post(api, "/v1/batch", tenant["write"], batch).status_code == 200
    poll(lambda: len(stored(schema, tenant["id"], user)) >= 20, 60, "20 events stored")
    client = redis_client(settings)
    poll(lambda: summary(client, settings, tenant["id"], batch["batch"][0]["timestamp"][:10])["events"] >= 20, 30,
         "the counters count 20 events")
    assert len(stored(schema, tenant["id"], user)) == 20
    day = batch["batch"][0]["timestamp"][:10]
    counts = summary(client, settings, tenant["id"], day)
    assert counts["events"] == 20 and counts["active_users"] == 1
    staged = [json.loads(fields["r"]) for _, fields in client.xrange(f"{settings.redis_prefix}lake:staging")]
    mine = Counter(row["message_id"] for row in staged if row["tenant_id"] == tenant["id"])
    assert len(mine) == 20 and set(mine.values()) == {1}, "each event is staged for the lake exactly once"
    assert set(next(r for r in staged if r["tenant_id"] == tenant["id"])) == {name for name, _ in COLUMNS}
    dirty = dirty_users(client, settings, tenant["id"])
    assert set(dirty) == {user}, "the user awaits a profile rebuild"
    assert before - 1000 <= dirty[user] <= time.time() * 1000, "scored by arrival time, not event time"
    lake_settings = settings.replace(lake_url=f"file://{tmp_path}/lake")
    flush(client, lake_settings, open_lake(lake_settings))
    table = read_events(open_lake(lake_settings), tenant["id"])
    assert sorted(table.column("message_id").to_pylist()) == sorted(m["messageId"] for m in batch["batch"])


def test_bad_events_in_a_batch_are_dead_lettered(api, worker, tenant, schema) -> None:
    user = f"u-{uuid.uuid4().hex[:6]}"
    good = [message(user, "Good"), message(user, "Also good")]
    bad = [
        {"type": "track", "event": "No user"},
        {"type": "track", "userId": user, "event": "Future", "timestamp": "2999-01-01T00:00:00Z"},
        {"type": "track", "userId": user, "event": "Stale", "timestamp": "2001-01-01T00:00:00Z"},
        {"type": "track", "userId": user, "event": "Huge", "properties": {"blob": "x" * 40_000}},
        "not an object",
        {"type": "teleport", "userId": user},
    ]
    answer = post(api, "/v1/batch", tenant["write"], {"batch": good + bad})
    assert answer.status_code == 200
    rejected = {r["index"]: r for r in answer.json()["rejected"]}
    assert answer.json()["accepted"] == 2 and sorted(rejected) == [2, 3, 4, 5, 6, 7]
    assert rejected[2]["field"] == "userId" and rejected[3]["field"] == "timestamp"
    assert "past" in rejected[4]["reason"] and "larger than" in rejected[5]["reason"]
    assert rejected[7]["field"] == "type"
    poll(lambda: len(stored(schema, tenant["id"], user)) == 2, 60, "the two good events are stored")
    from retain.ingest.deadletter import list_letters

    letters = poll(lambda: len(list_letters(schema, tenant["id"])) == 6 and list_letters(schema, tenant["id"]), 60,
                   "six dead letters are recorded")
    assert any("Stale" in d.raw and "past" in d.reason for d in letters)


def test_import_accepts_history_as_ndjson(api, worker, tenant, schema) -> None:
    user = f"u-{uuid.uuid4().hex[:6]}"
    lines = [json.dumps(message(user, "Old", timestamp="2019-03-01T10:00:00Z")) for _ in range(3)]
    answer = post(api, "/v1/import", tenant["write"], "\n".join(lines).encode(), gz=True,
                  content_type="application/x-ndjson")
    assert answer.status_code == 200 and answer.json()["accepted"] == 3, answer.text
    rows = poll(lambda: len(stored(schema, tenant["id"], user)) == 3 and stored(schema, tenant["id"], user), 60,
                "three backfilled events are stored")
    assert all(r.event_time.year == 2019 for r in rows)


def test_clock_skew_is_corrected(api, worker, tenant, schema) -> None:
    user = f"u-{uuid.uuid4().hex[:6]}"
    # The device clock is 2 hours behind: both timestamp and sentAt are off by the same amount.
    msg = message(user, "Skewed", minutes_ago=120 + 5)
    from datetime import datetime, timedelta, timezone

    sent = (datetime.now(timezone.utc) - timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    assert post(api, "/v1/batch", tenant["write"], {"batch": [msg], "sentAt": sent}).status_code == 200
    row = poll(lambda: stored(schema, tenant["id"], user), 60, "the skewed event is stored")[0]
    age = datetime.now(timezone.utc) - row.event_time.replace(tzinfo=timezone.utc)
    assert timedelta(minutes=3) < age < timedelta(minutes=8), age


def test_timeline_and_analytics_need_a_read_key_of_the_same_tenant(api, worker, tenant, schema) -> None:
    from retain.tenancy.registry import TenantRegistry

    other, other_keys = TenantRegistry(schema).create(f"t-{uuid.uuid4().hex[:10]}")
    user = f"u-{uuid.uuid4().hex[:6]}"
    assert post(api, "/v1/batch", tenant["write"], {"batch": [message(user, "Seen")]}).status_code == 200
    poll(lambda: stored(schema, tenant["id"], user), 60, "the event is stored")
    mine = requests.get(f"{api}/v1/users/{user}/events?limit=10", auth=(tenant["read"], ""), timeout=10)
    assert mine.status_code == 200 and mine.json()["events"][0]["name"] == "Seen"
    theirs = requests.get(f"{api}/v1/users/{user}/events", auth=(other_keys["read"], ""), timeout=10)
    assert theirs.status_code == 200 and theirs.json()["events"] == [], "tenant B sees nothing of tenant A"
    # Tenant B's write key writes into B, never into A.
    assert post(api, "/v1/batch", other_keys["write"], {"batch": [message(user, "Other tenant")]}).status_code == 200
    poll(lambda: stored(schema, other.tenant_id, user), 60, "B's event is stored under B")
    assert [r.name for r in stored(schema, tenant["id"], user)] == ["Seen"]
    # Keys are for one purpose.
    assert post(api, "/v1/batch", tenant["read"], {"batch": [message(user)]}).status_code == 403
    assert requests.get(f"{api}/v1/users/{user}/events", auth=(tenant["write"], ""), timeout=10).status_code == 403
    summary_answer = requests.get(f"{api}/v1/analytics/summary", auth=(tenant["read"], ""), timeout=10)
    assert summary_answer.status_code == 200 and summary_answer.json()["tenant"] == tenant["id"]
    bad_date = requests.get(f"{api}/v1/analytics/summary?date=yesterday", auth=(tenant["read"], ""), timeout=10)
    assert bad_date.status_code == 400 and bad_date.json()["error"]["field"] == "date"
