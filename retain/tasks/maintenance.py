"""Tasks of the `maintenance` queue."""

from __future__ import annotations

from retain.probe import run_probe
from retain.worker import resources
from retain.worker.app import app


@app.task(name="maintenance.probe")
def probe(token: str, hold_seconds: float = 0.0) -> dict:
    """Record an attempt for ``token`` and hold the worker for ``hold_seconds``."""
    return run_probe(resources.data_redis(), resources.settings(), str(token), float(hold_seconds))
