"""Training a tenant's models: Spark computes per-user summaries from the lake, the models'
plain functions fit them, the holdout window after the cutoff evaluates them, and the version is
published only if it does not degrade against the current one.

What is built so far: retention (BG/NBD) and spend (Gamma-Gamma) with their evaluation. Channel,
send time, content (ALS), feature importance, the report and batch scoring come next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import numpy as np

from retain.config import Settings
from retain.models import bgnbd, gammagamma
from retain.models.errors import FitError
from retain.models.evaluation import auc, calibration, degradations, forecast_errors
from retain.models.store import FAILED, PUBLISHED, REJECTED, ModelStore, new_version
from retain.spark.features import Window, bgnbd_summaries, compressed, spend_summaries, visit_days
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

    def to_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "version": self.version, "status": self.status, "params": self.params,
                "metrics": self.metrics, "not_fitted": self.not_fitted, "reasons": self.reasons}


def _retention(summaries, window: Window, result: TrainResult) -> dict[str, np.ndarray] | None:
    rows = compressed(summaries).toPandas()
    users = summaries.select("x", "t_x", "T", "holdout_active_days").toPandas()
    result.metrics["users"] = int(len(users))
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
    return {"x": x, "t_x": t_x, "T": T, "p_alive": bgnbd.p_alive(params, x, t_x, T), "p_return": returned,
            "expected": expected, "actual": actual}


def _spend(spend, result: TrainResult) -> None:
    table = spend.select("transactions", "mean_value").toPandas()
    result.metrics["buyers"] = int(len(table))
    try:
        params = gammagamma.fit(table["transactions"].to_numpy(float), table["mean_value"].to_numpy(float))
    except FitError as exc:
        result.not_fitted["gammagamma"] = str(exc)
        return
    result.params["gammagamma"] = {"p": params.p, "q": params.q, "gamma": params.gamma,
                                   "log_likelihood": params.log_likelihood, "users": params.users,
                                   "converged": params.converged}


def train_tenant(spark, settings: Settings, tenant: str, config: TenantConfig, cutoff: date, holdout_days: int,
                 store: ModelStore | None = None) -> TrainResult:
    """Fit, evaluate and store a new version of ``tenant``'s models."""
    store = store or ModelStore(settings)
    window = Window(cutoff, holdout_days)
    result = TrainResult(tenant, new_version(), PUBLISHED)
    events = read_events(spark, settings, tenant, end_date=window.holdout_end.isoformat())
    summaries = bgnbd_summaries(visit_days(events, window), window).cache()
    try:
        _retention(summaries, window, result)
        _spend(spend_summaries(events, window), result)
    finally:
        summaries.unpersist()
    if "bgnbd" in result.not_fitted:
        result.status = FAILED
        result.reasons.append(f"retention model not fitted: {result.not_fitted['bgnbd']}")
    else:
        current = store.current(tenant)
        if current:
            result.reasons = degradations(result.metrics, store.get(tenant, current).get("metrics", {}), TOLERANCES)
            result.status = REJECTED if result.reasons else PUBLISHED
    store.save(tenant, result.version, {
        "status": result.status, "created_at": datetime.now(timezone.utc).isoformat(),
        "cutoff": cutoff.isoformat(), "holdout_days": holdout_days, "horizon_days": config.horizon_days,
        "params": result.params, "metrics": result.metrics, "not_fitted": result.not_fitted, "reasons": result.reasons,
    })
    if result.status == PUBLISHED:
        store.promote(tenant, result.version)
    return result
