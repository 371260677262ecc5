"""Holdout metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from retain.models.evaluation import auc, calibration, degradations, forecast_errors


def test_auc() -> None:
    assert auc(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 1, 0, 0])) == 1.0
    assert auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([1, 1, 0, 0])) == 0.0
    assert auc(np.array([0.5, 0.5]), np.array([1, 0])) == 0.5
    assert auc(np.array([0.3, 0.4]), np.array([1, 1])) is None
    rng = np.random.default_rng(1)
    labels = rng.random(4000) < 0.3
    assert auc(rng.random(4000), labels) == pytest.approx(0.5, abs=0.03)


def test_calibration_deciles() -> None:
    predicted = np.linspace(0, 1, 100)
    table = calibration(predicted, predicted > 0.5)
    assert len(table) == 10 and sum(row["users"] for row in table) == 100
    assert table[0]["observed"] == 0 and table[-1]["observed"] == 1
    assert table[0]["predicted"] < table[-1]["predicted"]


def test_forecast_errors() -> None:
    errors = forecast_errors(np.array([1.0, 2.0, 3.0]), np.array([1, 1, 2]))
    assert errors["aggregate_error"] == pytest.approx(0.5) and errors["mae"] == pytest.approx(2 / 3)


def test_degradations() -> None:
    current = {"auc": 0.80, "aggregate_error": 0.05}
    assert degradations({"auc": 0.79, "aggregate_error": -0.06}, current, {"auc": 0.02, "aggregate_error": 0.05}) == []
    reasons = degradations({"auc": 0.70, "aggregate_error": 0.2}, current, {"auc": 0.02, "aggregate_error": 0.05})
    assert any("auc fell" in r for r in reasons) and any("aggregate_error worsened" in r for r in reasons)
