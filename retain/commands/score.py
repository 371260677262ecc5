"""`retain score`: profiles for every user of a tenant, computed in Spark and written to Cassandra."""

from __future__ import annotations

from datetime import datetime, timezone

import click

from retain.commands.output import json_option, progress, report
from retain.config import Settings


def _as_of(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date or time (YYYY-MM-DD[THH:MM[:SS]][+00:00])",
                                 param_hint="--as-of") from None
    # A bare date means the end of that day: the profile includes all of its events.
    if len(value) == 10:
        moment = moment.replace(hour=23, minute=59, second=59, microsecond=999000)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@click.command("score")
@click.option("--tenant", required=True)
@click.option("--as-of", default=None, help="Score as of this UTC date or time (default: now).")
@json_option
def score_command(tenant: str, as_of: str | None, as_json: bool) -> None:
    """Compute every user's profile from the lake with the current model and write it (Spark)."""
    from retain.spark.scoring import run_scoring

    settings = Settings.from_env()
    moment = _as_of(as_of)
    progress(f"scoring {tenant} as of {(moment or datetime.now(timezone.utc)).isoformat()}, "
             f"Spark {settings.spark_master}")
    result = run_scoring(settings, tenant, as_of=moment)
    report(as_json, result.to_dict(), lambda: (
        f"{tenant}: {result.users} users scored with {result.model_version or 'the tenant-less priors'}, "
        f"{result.written} profiles written in {result.seconds:.1f} s; churn risk "
        + ", ".join(f"{k} {v}" for k, v in result.churn_risk.items())))
