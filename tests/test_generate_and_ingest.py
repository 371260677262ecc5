"""Generated behaviour sent with `retain ingest` through the real API lands with its history intact."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone

from tests.harness import ROOT, child_env, poll


def test_generated_events_are_ingested_with_their_own_times(settings, api, worker, tenant, schema, tmp_path) -> None:
    out_dir = tmp_path / "events"
    env = child_env(settings)
    gen = subprocess.run([sys.executable, "-m", "retain", "generate", "--tenant", tenant["id"], "--users", "30",
                          "--days", "20", "--seed", "7", "--out", str(out_dir), "--start", "2025-03-01", "--json"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert gen.returncode == 0, gen.stderr
    total = json.loads(gen.stdout)["events"]
    sent = subprocess.run([sys.executable, "-m", "retain", "ingest", str(out_dir), "--url", api,
                           "--write-key", tenant["write"], "--batch-size", "200", "--json"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert sent.returncode == 0, sent.stderr
    report = json.loads(sent.stdout)
    assert report["events"] == total and report["rejected_count"] == 0
    first = json.loads((out_dir / "events-00001.ndjson").read_text().splitlines()[0])

    def stored_first():
        return schema.read("SELECT event_time FROM events_by_user WHERE tenant_id = ? AND user_id = ? "
                           "AND event_time = ? AND message_id = ?",
                           (tenant["id"], first["userId"],
                            datetime.fromisoformat(first["timestamp"].replace("Z", "+00:00")), first["messageId"])).one()

    row = poll(stored_first, 120, "the first generated event is stored at its own (2025) time")
    assert row.event_time.replace(tzinfo=timezone.utc).year == 2025
