"""Tasks of the `profiles` queue (the sweep that feeds it is an ingest task)."""

from __future__ import annotations

from retain.worker import resources
from retain.worker.app import app


@app.task(name="profiles.rebuild")
def rebuild(tenant_id: str, users: list[str], claimed_ms: int | None = None) -> dict:
    """Rebuild a batch of users' profiles, then release the sweep's claim on them."""
    result = resources.rebuilder().rebuild(str(tenant_id), [str(u) for u in users])
    if claimed_ms is not None:
        resources.dirty_users().release(str(tenant_id), int(claimed_ms), [str(u) for u in users])
    return result.to_dict()


@app.task(name="profiles.backfill")
def backfill(tenant_id: str) -> dict:
    """Mark every user of a tenant dirty; the sweeps rebuild them in batches."""
    from retain.profiles.backfill import backfill as mark_all

    return {"tenant": str(tenant_id), "users": mark_all(resources.cassandra(), resources.dirty_users(), str(tenant_id))}
