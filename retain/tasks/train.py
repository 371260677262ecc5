"""Tasks of the `train` queue."""

from __future__ import annotations

from datetime import date, datetime, timezone

from retain.worker import resources
from retain.worker.app import app


@app.task(name="train.tenant")
def tenant(tenant_id: str, cutoff: str | None = None, holdout_days: int = 30) -> dict:
    """Train, evaluate and store a new version of one tenant's models."""
    from retain.spark.train import run_training

    day = date.fromisoformat(cutoff) if cutoff else None
    config = _config(str(tenant_id))
    with resources.spark_jobs(f"train-{tenant_id}") as spark:
        return run_training(resources.settings(), str(tenant_id), day, int(holdout_days), spark=spark,
                            config=config).to_dict()


@app.task(name="train.score")
def score(tenant_id: str, as_of: str | None = None) -> dict:
    """Score every user of a tenant in Spark and write the profiles (backfill, check, after a promotion)."""
    from retain.spark.scoring import run_scoring

    moment = datetime.fromisoformat(as_of) if as_of else None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    config = _config(str(tenant_id))
    with resources.spark_jobs(f"score-{tenant_id}") as spark:
        return run_scoring(resources.settings(), str(tenant_id), spark=spark, as_of=moment, config=config).to_dict()


def _config(tenant_id: str):
    """The tenant's configuration, read before the process's Spark session is asked for: an unknown
    tenant fails without starting one."""
    from retain.tenancy.registry import TenantRegistry

    return TenantRegistry(resources.cassandra()).get(tenant_id).config


@app.task(name="train.nightly")
def nightly() -> list[str]:
    """Fan out one training task per tenant (beat runs this every night)."""
    from retain.tenancy.registry import TenantRegistry

    tenants = [t.tenant_id for t in TenantRegistry(resources.cassandra()).list()]
    for name in tenants:
        app.send_task("train.tenant", args=[name], queue="train")
    return tenants
