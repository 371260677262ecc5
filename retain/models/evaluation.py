"""Holdout evaluation: how well a model's predictions match what users did after the cutoff."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half); None if one class."""
    labels = np.asarray(labels, dtype=bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def calibration(predicted: np.ndarray, observed: np.ndarray, bins: int = 10) -> list[dict]:
    """Deciles of predicted probability: mean predicted vs observed rate, with counts."""
    predicted, observed = np.asarray(predicted, float), np.asarray(observed, float)
    if predicted.size == 0:
        return []
    order = np.argsort(predicted, kind="stable")
    table = []
    for index, part in enumerate(np.array_split(order, min(bins, predicted.size))):
        if part.size:
            table.append({"decile": index + 1, "users": int(part.size), "predicted": float(predicted[part].mean()),
                          "observed": float(observed[part].mean())})
    return table


def forecast_errors(expected: np.ndarray, actual: np.ndarray) -> dict:
    """Aggregate and per-user errors of expected counts (e.g. active days in the holdout)."""
    expected, actual = np.asarray(expected, float), np.asarray(actual, float)
    total_expected, total_actual = float(expected.sum()), float(actual.sum())
    return {
        "users": int(expected.size),
        "expected_total": total_expected,
        "actual_total": total_actual,
        "aggregate_error": (total_expected - total_actual) / total_actual if total_actual else None,
        "mae": float(np.abs(expected - actual).mean()) if expected.size else None,
        "rmse": float(np.sqrt(((expected - actual) ** 2).mean())) if expected.size else None,
    }


def degradations(new: dict, current: dict, tolerances: dict[str, float]) -> list[str]:
    """Reasons ``new`` metrics are worse than ``current`` beyond the tolerances (empty: publish).

    Metrics where higher is better are compared as new >= current - tolerance; ``*_error`` and
    ``mae``/``rmse`` metrics (lower is better, by absolute value) as |new| <= |current| + tolerance.
    """
    reasons = []
    for metric, tolerance in tolerances.items():
        old, fresh = current.get(metric), new.get(metric)
        if old is None or fresh is None:
            continue
        lower_is_better = metric.endswith("error") or metric in ("mae", "rmse")
        if lower_is_better and abs(fresh) > abs(old) + tolerance:
            reasons.append(f"{metric} worsened from {old:.4g} to {fresh:.4g} (tolerance {tolerance:g})")
        elif not lower_is_better and fresh < old - tolerance:
            reasons.append(f"{metric} fell from {old:.4g} to {fresh:.4g} (tolerance {tolerance:g})")
    return reasons
