"""Putting generated behaviour into a lake through the real staging and flush path (no API, no
Cassandra): what training tests and benchmarks start from."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import redis

from retain.config import Settings
from retain.events import from_dict
from retain.generator import generate
from retain.ingest.pipeline import Ingestor
from retain.ingest.submit import prepare
from retain.lake import open_lake
from retain.lake.flush import flush, staging_key
from retain.lake.schema import lake_row
from retain.store.cassandra import CassandraStore
from retain.tenancy.config import TenantConfig, classify


def stage_messages(client: redis.Redis, settings: Settings, tenant: str, messages: list[dict],
                   config: TenantConfig | None = None) -> int:
    config = config or TenantConfig()
    sub = prepare(messages, tenant, "backfill", settings, history=True)
    assert not sub.rejected, sub.rejected[:3]
    pipe = client.pipeline(transaction=False)
    for data in sub.events:
        event = from_dict(data)
        pipe.xadd(staging_key(settings), {"r": json.dumps(lake_row(event, classify(event, config), event.timestamp))})
    pipe.execute()
    return len(sub.events)


def _flush_all(client: redis.Redis, settings: Settings, total: int) -> None:
    lake = open_lake(settings)
    moved = 0
    while moved < total:
        report = flush(client, settings, lake, max_events=200_000)
        assert not report.skipped or moved == total, report
        moved += report.rows


def _generated_messages(tenant: str, out_dir: Path, users: int, days: int, seed: int, start: datetime):
    """Generate behaviour; yields it in chunks of 5,000 messages."""
    generate(tenant, users, days, seed, out_dir, start=start, overwrite=True)
    for path in sorted(out_dir.glob("events-*.ndjson")):
        lines = path.read_text().splitlines()
        for i in range(0, len(lines), 5000):
            yield [json.loads(line) for line in lines[i:i + 5000]]


def generated_lake(client: redis.Redis, settings: Settings, tenant: str, out_dir: Path, users: int, days: int,
                   seed: int, start: datetime, config: TenantConfig | None = None) -> dict:
    """Generate behaviour, stage it and flush it into the settings' lake; returns the truth."""
    total = sum(stage_messages(client, settings, tenant, chunk, config)
                for chunk in _generated_messages(tenant, out_dir, users, days, seed, start))
    _flush_all(client, settings, total)
    truth = json.loads((out_dir / "truth.json").read_text())
    truth["staged_events"] = total
    return truth


def ingested_lake(client: redis.Redis, settings: Settings, store: CassandraStore, tenant: str, out_dir: Path,
                  users: int, days: int, seed: int, start: datetime) -> int:
    """Generate behaviour and put it through the ingest pipeline (event store, lake staging,
    counters, dirty users), then flush the lake; returns the number of events."""
    ingestor = Ingestor(settings, store, client)
    total = 0
    for chunk in _generated_messages(tenant, out_dir, users, days, seed, start):
        sub = prepare(chunk, tenant, "backfill", settings, history=True)
        assert not sub.rejected, sub.rejected[:3]
        total += ingestor.process(sub.payload()).committed
    _flush_all(client, settings, total)
    return total
