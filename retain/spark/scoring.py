"""Batch scoring: every user of a tenant's lake gets a profile from the current model version,
written to Cassandra. For the first backfill, after a promotion, and to check the streaming path.

Spark groups the lake's events per user; each partition builds the users' activities and scores
them with the same functions the profile workers use (retain.profiles), then writes the profiles.
Writes carry the profile's version as their timestamp, so a retried task rewrites the same cells
and a profile the streaming path built from newer events is never overwritten.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from retain.config import Settings
from retain.profiles.activity import COLUMNS, activity
from retain.profiles.model import ProfileModel, load_model
from retain.profiles.scoring import score
from retain.tenancy.config import TenantConfig

# Users scored and written together: big enough to amortise numpy, small enough for memory.
CHUNK = 2000
_TIMES = ("event_time", "received_at")
_RESULT_SCHEMA = "users long, written long, high long, medium long, low long"


@dataclass
class ScoreReport:
    tenant: str
    model_version: str | None
    model: str
    as_of: str
    users: int = 0
    written: int = 0
    churn_risk: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def grouped_events(events):
    """DataFrame(user_id, events: array<struct>) with times as epoch milliseconds."""
    from pyspark.sql import functions as F

    fields = [F.unix_millis(F.col(c)).alias(c) if c in _TIMES else F.col(c) for c in COLUMNS]
    return (events.where(F.col("user_id").isNotNull() & (F.col("user_id") != ""))
            .groupBy("user_id").agg(F.collect_list(F.struct(*fields)).alias("events")))


def _columns(events) -> dict[str, list]:
    return {name: [e[name] for e in events] for name in COLUMNS}


def score_partitions(model: ProfileModel, settings: Settings, as_of_ms: int, computed_at: datetime, write: bool):
    """The function mapInPandas runs on each partition of :func:`grouped_events`."""

    def run(frames: Iterator) -> Iterator:
        import pandas as pd

        from retain.store.cassandra import CassandraStore
        from retain.store.profiles import ProfileStore

        store = CassandraStore(settings) if write else None
        profile_store = ProfileStore(store) if store is not None else None
        try:
            for frame in frames:
                users = [activity(uid, _columns(events), as_of_ms)
                         for uid, events in zip(frame["user_id"], frame["events"])]
                totals = dict.fromkeys(("users", "written", "high", "medium", "low"), 0)
                for start in range(0, len(users), CHUNK):
                    profiles = score(model, users[start:start + CHUNK], computed_at)
                    totals["users"] += len(profiles)
                    for profile in profiles:
                        totals[profile["churn_risk"]] += 1
                    if profile_store is not None:
                        totals["written"] += profile_store.write(profiles)
                yield pd.DataFrame([totals])
        finally:
            if store is not None:
                store.close()

    return run


def score_tenant(spark, settings: Settings, tenant: str, model: ProfileModel, as_of: datetime,
                 write: bool = True) -> ScoreReport:
    """Score every user with events in the lake up to ``as_of`` and write their profiles."""
    from pyspark.sql import functions as F

    from retain.spark.lake import read_events

    started = datetime.now(timezone.utc)
    as_of_ms = int(as_of.timestamp() * 1000)
    events = read_events(spark, settings, tenant, end_date=as_of.date().isoformat())
    counts = (grouped_events(events).mapInPandas(score_partitions(model, settings, as_of_ms, started, write),
                                                 _RESULT_SCHEMA)
              .agg(*(F.coalesce(F.sum(c), F.lit(0)).alias(c) for c in ("users", "written", "high", "medium", "low")))
              .first())
    return ScoreReport(tenant, model.version, "trained" if model.trained else "priors", as_of.isoformat(),
                       counts["users"], counts["written"],
                       {risk: counts[risk] for risk in ("high", "medium", "low")},
                       round((datetime.now(timezone.utc) - started).total_seconds(), 3))


def run_scoring(settings: Settings, tenant: str, spark=None, as_of: datetime | None = None,
                config: TenantConfig | None = None) -> ScoreReport:
    """What `retain score` and the spark-submit entry run: the tenant's configuration (looked up
    unless given) and current model, a Spark session (the given one, or a new one stopped at the
    end), then score_tenant."""
    from retain.models.store import ModelStore
    from retain.spark.session import spark_session
    from retain.tenancy.registry import load_config

    config = config or load_config(settings, tenant)
    model = load_model(ModelStore(settings), tenant, config)
    own = spark is None
    spark = spark or spark_session(settings, f"retain-score-{tenant}")
    try:
        return score_tenant(spark, settings, tenant, model, as_of or datetime.now(timezone.utc))
    finally:
        if own:
            spark.stop()
