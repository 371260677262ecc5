"""From activities and a model to profiles: the one function both the streaming rebuild and the
Spark batch scoring call, vectorised over a batch of users.

A profile is a flat JSON-able dict (the fields of ../shared/design.md, Profiles). Floats are
rounded to 6 significant digits: nobody acts on the 7th, and the same inputs give the same
profile however the batch they are scored in is composed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np

from retain.models import bgnbd, channel, gammagamma, sendtime
from retain.models.errors import FitError
from retain.profiles.activity import Activity, epoch_day
from retain.profiles.model import ProfileModel

# P(return within H days) below which a user is at high risk of churning, and below which at medium.
CHURN_HIGH, CHURN_MEDIUM = 0.3, 0.6
TOP_CONTENT, TOP_CATEGORIES, TOP_DRIVERS = 10, 3, 3
# Pseudo-counts pulling a user's category shares toward the tenant's (as training's category
# affinity does) and a user's purchases per active day toward the tenant's rate.
CATEGORY_PRIOR_STRENGTH = 5.0
PURCHASE_PRIOR_DAYS = 5.0
SEND_TIME_STRENGTH = 10.0
_MONTH_DAYS = 30


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.6g}")


def churn_risk(p_return: float) -> str:
    return "high" if p_return < CHURN_HIGH else "medium" if p_return < CHURN_MEDIUM else "low"


def _retention(model: ProfileModel, users: Sequence[Activity]) -> tuple[np.ndarray, ...]:
    """P(alive), P(return within H) and expected active days in H; a user never active counts as
    acquired on the day of the profile (x = t_x = T = 0)."""
    as_of = np.array([epoch_day(u.as_of_ms) for u in users])
    first = np.array([u.first_day if u.first_day is not None else d for u, d in zip(users, as_of)])
    last = np.array([u.last_day if u.last_day is not None else d for u, d in zip(users, as_of)])
    x = np.array([max(u.active_days - 1, 0) for u in users], dtype=float)
    t_x, T = (last - first).astype(float), (as_of - first).astype(float)
    h = model.horizon_days
    return (x, t_x, T, bgnbd.p_alive(model.bgnbd, x, t_x, T), bgnbd.p_return(model.bgnbd, h, x, t_x, T),
            bgnbd.expected_visits(model.bgnbd, h, x, t_x, T))


def _lifetime_value(model: ProfileModel, users: Sequence[Activity], x, t_x, T) -> np.ndarray | None:
    """Discounted value over the horizon: expected purchases per month (expected active days times
    the user's purchases per active day, shrunk toward the tenant's) times Gamma-Gamma expected spend."""
    if model.gammagamma is None or model.purchase_rate is None:
        return None
    f = np.array([u.transactions for u in users], dtype=float)
    mean = np.array([u.revenue / u.transactions if u.transactions else np.nan for u in users])
    try:
        spend = gammagamma.expected_spend(model.gammagamma, f, mean)
    except FitError:
        return None
    active = np.array([u.active_days for u in users], dtype=float)
    rate = (f + PURCHASE_PRIOR_DAYS * model.purchase_rate) / (active + PURCHASE_PRIOR_DAYS)
    ends = [min(k * _MONTH_DAYS, model.horizon_days) for k in range(1, -(-model.horizon_days // _MONTH_DAYS) + 1)]
    cumulative = np.stack([bgnbd.expected_visits(model.bgnbd, t, x, t_x, T) for t in ends], axis=1)
    per_month = np.diff(cumulative, axis=1, prepend=0.0) * rate[:, None]
    monthly_discount = (1.0 + model.annual_discount_rate) ** (1 / 12) - 1.0
    return gammagamma.clv(per_month, spend, monthly_discount)


def _channels(model: ProfileModel, users: Sequence[Activity]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    scores = {name: channel.propensity(prior, [u.sends.get(name, 0) for u in users],
                                       [u.responses.get(name, 0) for u in users])
              for name, prior in model.channels.items()}
    return scores, (channel.best_channel(scores, model.channels) if scores else None)


def _send_hours(model: ProfileModel, users: Sequence[Activity]) -> np.ndarray:
    counts = np.stack([u.hours for u in users])
    bucket, _, _ = sendtime.best_hour(sendtime.user_distribution(counts, model.send_time, SEND_TIME_STRENGTH))
    return np.asarray(bucket)


def _categories(model: ProfileModel, user: Activity) -> list[str]:
    shares, total = model.category_shares, sum(user.categories.values())
    candidates = set(user.categories) | set(sorted(shares, key=lambda c: (-shares[c], c))[:TOP_CATEGORIES])

    def score(c: str) -> tuple[float, float, str]:
        own = (user.categories.get(c, 0) + CATEGORY_PRIOR_STRENGTH * shares.get(c, 0.0)) / (total + CATEGORY_PRIOR_STRENGTH)
        return -own, -shares.get(c, 0.0), c

    return sorted(candidates, key=score)[:TOP_CATEGORIES]


def _content(model: ProfileModel, user: Activity) -> list[str]:
    known = model.recommended.get(user.user_id)
    if known is not None:
        return list(known[:TOP_CONTENT])
    return [item for item in model.popular if item not in user.seen][:TOP_CONTENT]


def _drivers(model: ProfileModel, user: Activity) -> list[dict[str, Any]]:
    mine = [(action, impact) for action, impact in model.drivers.items() if action in user.actions]
    mine.sort(key=lambda item: (-abs(item[1]), item[0]))
    return [{"action": action, "impact": _round(impact)} for action, impact in mine[:TOP_DRIVERS]]


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds")


def score(model: ProfileModel, users: Sequence[Activity], computed_at: datetime | None = None) -> list[dict[str, Any]]:
    """The profile of each user, in order.

    ``version`` orders profiles of one user: the newer of the user's snapshot and the moment the
    model became current, in microseconds (see ``Activity.snapshot_us``).
    """
    if not users:
        return []
    stamp = (computed_at or datetime.now(timezone.utc)).isoformat(timespec="milliseconds")
    x, t_x, T, alive, returns, visits = _retention(model, users)
    ltv = _lifetime_value(model, users, x, t_x, T)
    scores, best = _channels(model, users)
    buckets = _send_hours(model, users)
    profiles = []
    for i, user in enumerate(users):
        p_return = float(returns[i])
        profiles.append({
            "tenant_id": model.tenant,
            "user_id": user.user_id,
            "version": max(user.snapshot_us, model.switched_us),
            "model_version": model.version,
            "model": "trained" if model.trained else "priors",
            "computed_at": stamp,
            "as_of": _iso(user.as_of_ms),
            "last_seen": _iso(user.last_seen_ms),
            "horizon_days": model.horizon_days,
            "p_alive": _round(float(alive[i])),
            "p_return_h": _round(p_return),
            "expected_visits_h": _round(float(visits[i])),
            "predicted_ltv": None if ltv is None else _round(float(ltv[i])),
            "churn_risk": churn_risk(p_return),
            "channel_scores": {name: _round(float(v[i])) for name, v in scores.items()},
            "best_channel": None if best is None else best[i],
            "best_send_hour": {"weekday": int(buckets[i] // 24), "hour": int(buckets[i] % 24),
                               "timezone": user.timezone or "UTC"},
            "top_content": _content(model, user),
            "top_categories": _categories(model, user),
            "top_drivers": _drivers(model, user),
        })
    return profiles


# The fields that describe a computation (when, from which snapshot) rather than the user: the
# same events and model give the same profile in every other field.
RUN_FIELDS = ("version", "computed_at", "as_of")
