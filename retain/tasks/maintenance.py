"""Tasks of the `maintenance` queue."""

from __future__ import annotations

from retain.probe import run_probe
from retain.worker import resources
from retain.worker.app import app


@app.task(name="maintenance.probe")
def probe(token: str, hold_seconds: float = 0.0) -> dict:
    """Record an attempt for ``token`` and hold the worker for ``hold_seconds``."""
    return run_probe(resources.data_redis(), resources.settings(), str(token), float(hold_seconds))


@app.task(name="maintenance.cleanup_deadletters")
def cleanup_deadletters() -> dict:
    """Delete dead letters older than the retention (beat runs this daily)."""
    from retain.ingest.deadletter import cleanup

    return cleanup(resources.cassandra(), resources.settings().deadletter_ttl_days).to_dict()


@app.task(name="maintenance.repair")
def repair(kind: str = "full", keyspace: str | None = None) -> dict:
    """Repair the keyspace node by node (beat runs this daily); the queue's time limit applies.

    A repair already running covers this one: the task then returns ``refused`` instead of failing.
    A node whose repair failed fails the task, so monitoring sees it.
    """
    from celery.utils.log import get_task_logger

    from retain.errors import RepairError, RepairLocked
    from retain.repair.run import run_repair

    try:
        outcome = run_repair(resources.cassandra(), resources.settings(), str(kind), keyspace,
                             progress=get_task_logger(__name__).info)
    except RepairLocked as exc:
        return {"refused": str(exc)}
    if not outcome.ok:
        raise RepairError(outcome.summary())
    return outcome.to_dict()
