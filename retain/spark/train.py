"""Training a tenant's models: Spark computes per-user summaries from the lake, the models'
plain functions fit them, the holdout window after the cutoff evaluates them, and the version is
published only if it does not degrade against the current one.

A version holds what profiles need (see retain.profiles.model): every model's parameters, the
content model's per-user recommendations as a Parquet table, and the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np

from retain.config import Settings
from retain.models import bgnbd, channel, gammagamma, sendtime
from retain.models.errors import FitError
from retain.models.report import ReportData, predicted_cumulative, write_report
from retain.models.evaluation import auc, calibration, degradations, forecast_errors
from retain.models.store import FAILED, PUBLISHED, REJECTED, ModelStore, new_version
from retain.profiles.model import RECOMMENDATIONS
from retain.spark.content import category_shares, fit_content
from retain.spark.engagement import channel_summaries, send_time_counts
from retain.spark.features import (Window, bgnbd_summaries, compressed, repeat_activity_by_day, spend_summaries,
                                   visit_days)
from retain.spark.importance import action_impacts, feature_importance, user_features
from retain.spark.lake import read_events
from retain.tenancy.config import TenantConfig

# How much worse than the current version a new one may be and still be published.
TOLERANCES = {"p_return_auc": 0.02, "visits_aggregate_error": 0.10}


@dataclass
class TrainResult:
    tenant: str
    version: str
    status: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    not_fitted: dict[str, str] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    # Tables stored beside version.json (name under the version -> bytes), e.g. ALS recommendations.
    artifacts: dict[str, bytes] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "version": self.version, "status": self.status, "params": self.params,
                "metrics": self.metrics, "not_fitted": self.not_fitted, "reasons": self.reasons}


def _retention(summaries, window: Window, result: TrainResult) -> dict[str, np.ndarray] | None:
    rows = compressed(summaries).toPandas()
    users = summaries.select("x", "t_x", "T", "holdout_active_days").toPandas()
    result.metrics["users"] = int(len(users))
    result.metrics["active_days"] = int((users["x"] + 1).sum())
    try:
        params = bgnbd.fit(rows["x"].to_numpy(float), rows["t_x"].to_numpy(float), rows["T"].to_numpy(float),
                           rows["count"].to_numpy(float))
    except FitError as exc:
        result.not_fitted["bgnbd"] = str(exc)
        return None
    result.params["bgnbd"] = params.to_dict()
    x, t_x, T = (users[c].to_numpy(float) for c in ("x", "t_x", "T"))
    actual = users["holdout_active_days"].to_numpy(float)
    h = window.holdout_days
    returned = bgnbd.p_return(params, h, x, t_x, T)
    expected = bgnbd.expected_visits(params, h, x, t_x, T)
    result.metrics["p_return_auc"] = auc(returned, actual > 0)
    result.metrics["p_return_calibration"] = calibration(returned, actual > 0)
    errors = forecast_errors(expected, actual)
    result.metrics["visits_aggregate_error"] = errors["aggregate_error"]
    result.metrics["visits_per_user"] = errors
    return {"params": params, "T": T}


def _spend(spend, result: TrainResult) -> None:
    table = spend.select("transactions", "mean_value").toPandas()
    result.metrics["buyers"] = int(len(table))
    try:
        params = gammagamma.fit(table["transactions"].to_numpy(float), table["mean_value"].to_numpy(float))
    except FitError as exc:
        result.not_fitted["gammagamma"] = str(exc)
        return
    # Lifetime value turns expected active days into purchases with this tenant-wide rate.
    purchase_rate = float(table["transactions"].sum()) / max(result.metrics.get("active_days", 0), 1)
    result.params["gammagamma"] = {"p": params.p, "q": params.q, "gamma": params.gamma,
                                   "log_likelihood": params.log_likelihood, "users": params.users,
                                   "converged": params.converged, "purchase_rate": purchase_rate}


def _channels(events, window: Window, config: TenantConfig, result: TrainResult) -> None:
    table = channel_summaries(events, window).toPandas()
    priors = {}
    for name in config.channels:
        mine = table[table["channel"] == name]
        if not mine.empty and mine["sends"].sum() > 0:
            priors[name] = channel.fit_prior(mine["sends"].to_numpy(float), mine["responses"].to_numpy(float))
    if not priors:
        result.not_fitted["channel"] = "no channel sends in the calibration period"
        return
    result.params["channel"] = {name: {"alpha": p.alpha, "beta": p.beta, "mean": p.mean, "users": p.users,
                                       "method": p.method} for name, p in priors.items()}


def _send_time(events, window: Window, result: TrainResult) -> None:
    counts = send_time_counts(events, window).toPandas()
    if counts.empty:
        result.not_fitted["send_time"] = "no visits or responses in the calibration period"
        return
    by_bucket = np.bincount(counts["bucket"].to_numpy(int), weights=counts["n"].to_numpy(float), minlength=168)
    tenant = sendtime.tenant_distribution(by_bucket)
    users = counts["user_id"].astype("category")
    matrix = np.zeros((len(users.cat.categories), 168))
    np.add.at(matrix, (users.cat.codes.to_numpy(), counts["bucket"].to_numpy(int)), counts["n"].to_numpy(float))
    best, _, _ = sendtime.best_hour(sendtime.user_distribution(matrix, tenant))
    result.params["send_time"] = {"tenant_distribution": tenant.round(6).tolist(),
                                  "best_bucket_users": np.bincount(np.asarray(best, int), minlength=168).tolist()}


def _importance(events, summaries, window: Window, result: TrainResult) -> None:
    from pyspark.sql import functions as F

    features = user_features(events, summaries, window).cache()
    try:
        labels = features.agg(F.min("label"), F.max("label")).first()
        if labels[0] is None or labels[0] == labels[1]:
            result.not_fitted["importance"] = "every user, or no user, returned in the holdout window"
            return
        result.metrics["feature_importance_bits"] = feature_importance(features)
        result.metrics["action_impact"] = action_impacts(events, features, window)
    finally:
        features.unpersist()


def _content(events, window: Window, result: TrainResult) -> None:
    try:
        content = fit_content(events, window)
    except FitError as exc:
        result.not_fitted["content"] = str(exc)
        return
    try:
        result.metrics["content"] = content.metrics
        result.params["content"] = {"users": content.fit.n_users, "items": content.fit.n_items,
                                    "popular": list(content.popular),
                                    "default_categories": list(content.default_categories),
                                    "category_shares": category_shares(content.interactions)}
        result.artifacts[RECOMMENDATIONS] = _parquet(content.recommendations.toPandas())
    finally:
        content.unpersist()


def _parquet(frame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), out)
    return out.getvalue().to_pybytes()


def _tracking(visits, summaries, window: Window, fitted: dict | None) -> dict:
    """Actual vs predicted cumulative repeat active days of the calibration cohort, per day."""
    if fitted is None:
        return {}
    cutoff = (window.cutoff - date(1970, 1, 1)).days
    first_days = cutoff - fitted["T"]
    days = np.arange(int(first_days.min()), cutoff + window.holdout_days + 1)
    counts = repeat_activity_by_day(visits, summaries).toPandas()
    per_day = np.zeros(days.size)
    inside = counts["day"].between(days[0], days[-1])
    per_day[counts.loc[inside, "day"].to_numpy(int) - days[0]] = counts.loc[inside, "users"].to_numpy(float)
    return {"tracking_days": (days - days[0]).tolist(), "tracking_actual": np.cumsum(per_day).tolist(),
            "tracking_predicted": predicted_cumulative(fitted["params"], first_days, days).tolist(),
            "tracking_cutoff_day": int(cutoff - days[0])}


def _report(store: ModelStore, tenant: str, version: str, info: dict, tracking: dict) -> None:
    metrics, params = info["metrics"], info["params"]
    plots = dict(tracking)
    if metrics.get("feature_importance_bits"):
        plots["feature_importance"] = {k: v["bits"] for k, v in metrics["feature_importance_bits"].items()}
    if metrics.get("action_impact"):
        plots["action_impacts"] = {k: (v["difference"], v["low"], v["high"]) for k, v in metrics["action_impact"].items()}
    if params.get("channel"):
        plots["channel_prior_rates"] = {k: v["mean"] for k, v in params["channel"].items()}
    if params.get("send_time"):
        plots["send_time_share"] = params["send_time"]["tenant_distribution"]
    write_report(store, tenant, version, ReportData.from_version(tenant, {"version": version, **info}, **plots))


def train_tenant(spark, settings: Settings, tenant: str, config: TenantConfig, cutoff: date, holdout_days: int,
                 store: ModelStore | None = None) -> TrainResult:
    """Fit, evaluate and store a new version of ``tenant``'s models."""
    store = store or ModelStore(settings)
    window = Window(cutoff, holdout_days)
    result = TrainResult(tenant, new_version(), PUBLISHED)
    # Every model reads the same events: read the lake's files once.
    events = read_events(spark, settings, tenant, end_date=window.holdout_end.isoformat()).cache()
    visits = visit_days(events, window).cache()
    summaries = bgnbd_summaries(visits, window).cache()
    try:
        fitted = _retention(summaries, window, result)
        tracking = _tracking(visits, summaries, window, fitted)
        _spend(spend_summaries(events, window), result)
        _channels(events, window, config, result)
        _send_time(events, window, result)
        _importance(events, summaries, window, result)
        _content(events, window, result)
    finally:
        for frame in (summaries, visits, events):
            frame.unpersist()
    if "bgnbd" in result.not_fitted:
        result.status = FAILED
        result.reasons.append(f"retention model not fitted: {result.not_fitted['bgnbd']}")
    else:
        current = store.current(tenant)
        if current:
            result.reasons = degradations(result.metrics, store.get(tenant, current).get("metrics", {}), TOLERANCES)
            result.status = REJECTED if result.reasons else PUBLISHED
    info = {"status": result.status, "created_at": datetime.now(timezone.utc).isoformat(),
            "cutoff": cutoff.isoformat(), "holdout_days": holdout_days, "horizon_days": config.horizon_days,
            "params": result.params, "metrics": result.metrics, "not_fitted": result.not_fitted,
            "reasons": result.reasons}
    store.save(tenant, result.version, info)
    for name, data in result.artifacts.items():
        store.put_artifact(tenant, result.version, name, data)
    _report(store, tenant, result.version, info, tracking)
    if result.status == PUBLISHED:
        store.promote(tenant, result.version)
    return result


def default_cutoff(holdout_days: int) -> date:
    """The cutoff whose holdout window ends with yesterday, the last whole day."""
    return datetime.now(timezone.utc).date() - timedelta(days=holdout_days + 1)


def run_training(settings: Settings, tenant: str, cutoff: date | None = None, holdout_days: int = 30,
                 spark=None, config: TenantConfig | None = None) -> TrainResult:
    """What `retain train`, the `train.tenant` task and the spark-submit entry run: the tenant's
    configuration (looked up unless given; an unknown tenant fails before Spark starts), a Spark
    session (the given one, or a new one stopped at the end), then train_tenant."""
    from retain.spark.session import spark_session
    from retain.tenancy.registry import load_config

    config = config or load_config(settings, tenant)
    own = spark is None
    spark = spark or spark_session(settings, f"retain-train-{tenant}")
    try:
        return train_tenant(spark, settings, tenant, config, cutoff or default_cutoff(holdout_days), holdout_days)
    finally:
        if own:
            spark.stop()
