"""Dead letters: events that were rejected, kept with their reason and raw payload per tenant and day.

Ids are derived from the content, so a redelivered batch writes the same records again instead of
new ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from cassandra.concurrent import execute_concurrent_with_args

from retain.store.cassandra import WRITE, CassandraStore

_INSERT = ("INSERT INTO dead_letters (tenant_id, day, received_at, id, source, reason, raw) "
           "VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?")


@dataclass(frozen=True)
class DeadLetter:
    tenant_id: str
    received_at: datetime
    id: str
    source: str
    reason: str
    raw: str

    def to_dict(self) -> dict:
        return {"tenant": self.tenant_id, "received_at": self.received_at.isoformat(), "id": self.id,
                "source": self.source, "reason": self.reason, "raw": self.raw}


def letter_id(received_at: int, index: int, raw: str) -> str:
    return hashlib.sha256(f"{received_at}:{index}:{raw}".encode()).hexdigest()[:24]


def write(store: CassandraStore, tenant: str, source: str, received_at: int, rejected: list[dict], ttl_days: int) -> int:
    """Record the rejections of one batch; returns how many."""
    if not rejected:
        return 0
    moment = datetime.fromtimestamp(received_at / 1000, tz=timezone.utc)
    ttl = ttl_days * 86400
    params = [(tenant, moment.date(), moment, letter_id(received_at, r["index"], r["raw"]), source, r["reason"],
               r["raw"], ttl) for r in rejected]
    execute_concurrent_with_args(store.session, store.prepare(_INSERT), params, concurrency=32,
                                 raise_on_first_error=True)
    return len(params)


def list_letters(store: CassandraStore, tenant: str, days: int = 1, limit: int = 100,
                 until: date | None = None) -> list[DeadLetter]:
    """The newest dead letters of ``tenant`` over the last ``days`` days (UTC)."""
    last = until or datetime.now(timezone.utc).date()
    found: list[DeadLetter] = []
    for offset in range(days):
        day = last - timedelta(days=offset)
        rows = store.read("SELECT received_at, id, source, reason, raw FROM dead_letters "
                          "WHERE tenant_id = ? AND day = ? LIMIT ?", (tenant, day, limit - len(found)))
        found += [DeadLetter(tenant, r.received_at.replace(tzinfo=timezone.utc), r.id, r.source, r.reason, r.raw)
                  for r in rows]
        if len(found) >= limit:
            break
    return found


@dataclass(frozen=True)
class Cleanup:
    """What a dead-letter cleanup removed: whole (tenant, day) partitions before ``before``."""

    before: date
    partitions: list[tuple[str, date]]

    def to_dict(self) -> dict:
        return {"before": self.before.isoformat(), "deleted": len(self.partitions),
                "partitions": [{"tenant": t, "day": d.isoformat()} for t, d in self.partitions]}


def cleanup(store: CassandraStore, ttl_days: int, today: date | None = None,
            tenants: list[str] | None = None) -> Cleanup:
    """Delete the dead letters of every day older than the retention (of ``tenants`` only, if given).

    Rows expire by their TTL, but with the retention in force when they were written: lowering
    ``deadletter_ttl_days`` leaves older rows behind, and this removes them. One partition delete
    per day replaces a tombstone per row. Only partitions that still hold live rows are listed
    (a scan of the partition keys: tenants × retained days), so a run with nothing to do writes
    nothing.
    """
    before = (today or datetime.now(timezone.utc).date()) - timedelta(days=ttl_days)
    wanted = set(tenants) if tenants is not None else None
    # A full scan of partition keys at the write consistency, so a partition on one replica only is seen.
    rows = store.session.execute(store.prepare("SELECT DISTINCT tenant_id, day FROM dead_letters"),
                                 execution_profile=WRITE)
    expired = sorted((r.tenant_id, r.day.date()) for r in rows
                     if r.day.date() < before and (wanted is None or r.tenant_id in wanted))
    if expired:
        delete = store.prepare("DELETE FROM dead_letters WHERE tenant_id = ? AND day = ?")
        execute_concurrent_with_args(store.session, delete, expired, concurrency=16, raise_on_first_error=True)
    return Cleanup(before, expired)
