"""Tasks of the `ingest` queue."""

from __future__ import annotations

import time

from retain.worker import resources
from retain.worker.app import app


@app.task(name="ingest.batch")
def batch(payload: dict) -> dict:
    """Write one accepted batch (events and rejections) exactly once."""
    if not isinstance(payload, dict) or "tenant" not in payload or "received_at" not in payload:
        raise ValueError("ingest.batch takes the payload of retain.ingest.submit.Submission")
    ingestor = resources.ingestor()
    result = ingestor.process(payload)
    resources.request_lake_flush_if_due(ingestor)
    return result.to_dict()


@app.task(name="ingest.sweep_dirty")
def sweep_dirty() -> dict:
    """Claim every tenant's users due for a profile rebuild and queue them in batches on `profiles`
    (beat runs this). An ingest task because ingest workers always run: a profile fleet scaled to
    zero then starts on the rebuilds waiting for it."""
    from retain.profiles.dirty import sweep

    def send(tenant: str, users: list[str], claimed_ms: int) -> None:
        app.send_task("profiles.rebuild", args=[tenant, users, claimed_ms], queue="profiles")

    return sweep(resources.dirty_users(), resources.settings(), send, int(time.time() * 1000))


@app.task(name="ingest.redeliver")
def redeliver(older_than: float | None = None) -> int:
    """Re-send accepted batches that no worker finished (see retain.ingest.journal)."""
    from retain.ingest.journal import Journal
    from retain.ingest.submit import redeliver as resend

    return resend(Journal(resources.data_redis(), resources.settings()), older_than)


@app.task(name="ingest.flush_lake")
def flush_lake(max_events: int | None = None) -> dict:
    """Move staged rows into the Parquet lake (one flusher at a time)."""
    from retain.lake import open_lake
    from retain.lake.flush import flush

    settings = resources.settings()
    return flush(resources.data_redis(), settings, open_lake(settings), max_events).to_dict()
