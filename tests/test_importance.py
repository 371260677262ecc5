"""Mutual information (Miller-Madow) and stratified action impact (Mantel-Haenszel, Sato variance)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retain.models.importance import (action_impact, contingency, discretise, impact_from_counts,
                                      mutual_information, stratified_counts)


def entropy_bits(labels: np.ndarray) -> float:
    p = np.bincount(labels.astype(int)) / labels.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


# --- mutual information ------------------------------------------------------------------------


def test_independent_feature_carries_no_information() -> None:
    rng = np.random.default_rng(5)
    n = 10_000
    feature, label = rng.lognormal(size=n), rng.random(n) < 0.3
    table = contingency(discretise(feature), label)
    result = mutual_information(table)
    assert result.n == n
    assert 0.0 <= result.bits < 0.01
    # The plug-in estimate is biased up by roughly the correction; Miller-Madow removes it.
    cells, rows = int((table > 0).sum()), int((table.sum(axis=1) > 0).sum())
    correction = (cells - rows - 2 + 1) / (2 * n * math.log(2))
    assert result.bits == pytest.approx(max(result.plugin_bits - correction, 0.0), abs=1e-12)
    assert result.bits < result.plugin_bits


def test_determining_feature_carries_the_whole_label_entropy() -> None:
    rng = np.random.default_rng(6)
    n = 10_000
    codes = discretise(rng.normal(size=n))
    label = codes >= 7
    result = mutual_information(contingency(codes, label))
    h = entropy_bits(label)
    assert result.plugin_bits == pytest.approx(h, abs=1e-9)
    assert result.bits == pytest.approx(result.label_entropy_bits, abs=1e-9)
    assert result.label_entropy_bits == pytest.approx(h + 1 / (2 * n * math.log(2)), abs=1e-9)


def test_mutual_information_edge_cases() -> None:
    assert mutual_information(np.zeros((3, 2))).bits == 0.0
    constant = mutual_information([[400, 600]])  # one bin: nothing to learn, H(label) still there
    assert constant.bits == 0.0 and constant.label_entropy_bits > 0.9
    with pytest.raises(ValueError, match="bins x 2"):
        mutual_information(np.ones((3, 3)))


def test_discretise_by_quantiles_with_ties_and_missing() -> None:
    codes = discretise(np.arange(1000.0), bins=10)
    assert np.bincount(codes).tolist() == [100] * 10
    assert codes[0] == 0 and codes[-1] == 9 and np.all(np.diff(codes) >= 0)
    # 80% zeros collapse into one bin; the rest still spread over the remaining quantiles.
    skewed = discretise(np.concatenate([np.zeros(800), np.arange(1.0, 201.0)]), bins=10)
    assert np.bincount(skewed)[0] == 800 and skewed.max() == 2
    assert discretise(np.full(50, 3.5)).tolist() == [0] * 50
    assert discretise([1.0, np.nan, 3.0, 2.0], bins=3).tolist() == [0, 3, 2, 1]


# --- action impact -----------------------------------------------------------------------------

BASE = np.array([0.10, 0.20, 0.30, 0.45, 0.60])  # return rate by activity stratum
DOES = np.array([0.10, 0.25, 0.40, 0.60, 0.80])  # more active users do the action more often


def simulate_action(effect: float, users: int, seed: int):
    rng = np.random.default_rng(seed)
    strata = rng.integers(0, BASE.size, users)
    did = rng.random(users) < DOES[strata]
    returned = rng.random(users) < BASE[strata] + effect * did
    return did, strata, returned


def test_planted_effect_is_detected_within_strata() -> None:
    did, strata, returned = simulate_action(0.2, 20_000, seed=8)
    impact = action_impact(did, strata, returned)
    assert impact.sign == 1 and impact.low <= 0.2 <= impact.high
    assert impact.difference == pytest.approx(0.2, abs=0.03)
    assert impact.high - impact.low < 0.05
    assert (impact.n_did, impact.n_not, impact.strata_used) == (int(did.sum()), int((~did).sum()), 5)


def test_harmful_action_gets_a_negative_sign() -> None:
    did, strata, returned = simulate_action(-0.08, 20_000, seed=9)
    impact = action_impact(did, strata, returned)
    assert impact.sign == -1 and impact.low <= -0.08 <= impact.high


def test_confounded_action_shows_no_effect_within_strata() -> None:
    did, strata, returned = simulate_action(0.0, 20_000, seed=10)
    impact = action_impact(did, strata, returned)
    assert impact.sign == 0 and impact.low <= 0.0 <= impact.high
    # Ignoring activity, doers look far more loyal: one stratum holding everyone.
    crude = action_impact(did, np.zeros_like(strata), returned)
    assert crude.sign == 1 and crude.low > 0.1
    assert crude.difference == pytest.approx(returned[did].mean() - returned[~did].mean())


def test_counts_layout_and_single_stratum_formula() -> None:
    # One stratum reduces to the plain difference and the binomial variance a b / n1^3 + c d / n0^3.
    a, b, c, d = 30, 70, 10, 90
    impact = impact_from_counts([[[a, b], [c, d]]])
    assert impact.difference == pytest.approx(0.3 - 0.1)
    se = math.sqrt(a * b / 100 ** 3 + c * d / 100 ** 3)
    assert (impact.low, impact.high) == pytest.approx((0.2 - 1.959964 * se, 0.2 + 1.959964 * se), abs=1e-6)
    did = np.array([True] * 100 + [False] * 100)
    returned = np.array([True] * a + [False] * b + [True] * c + [False] * d)
    assert stratified_counts(did, np.full(200, 42), returned).tolist() == [[[a, b], [c, d]]]


def test_strata_without_both_kinds_are_skipped() -> None:
    table = [[[5, 5], [0, 0]], [[3, 1], [2, 2]], [[0, 0], [7, 1]]]
    impact = impact_from_counts(table)
    assert impact.strata_used == 1 and impact.difference == pytest.approx(0.75 - 0.5)
    assert (impact.n_did, impact.n_not) == (14, 12)
    nobody = action_impact(np.zeros(50, bool), np.arange(50) % 3, np.arange(50) % 2 == 0)
    assert nobody.sign == 0 and nobody.strata_used == 0 and math.isnan(nobody.difference)


@pytest.mark.parametrize("strata, mean_size", [(5, 400), (300, 6)])
def test_interval_covers_the_truth_95_percent_of_the_time(strata: int, mean_size: int) -> None:
    # Sato's variance holds both for few large strata and for many sparse ones.
    rng = np.random.default_rng(strata)
    covered, runs = 0, 2000
    for _ in range(runs):
        base, does = rng.uniform(0.1, 0.7, strata), rng.uniform(0.2, 0.8, strata)
        size = rng.poisson(mean_size, strata) + 2
        n1 = rng.binomial(size, does)
        n0 = size - n1
        a, c = rng.binomial(n1, base + 0.1), rng.binomial(n0, base)
        table = np.stack([np.stack([a, n1 - a], 1), np.stack([c, n0 - c], 1)], 1)
        impact = impact_from_counts(table)
        covered += impact.low <= 0.1 <= impact.high
    assert 0.93 <= covered / runs <= 0.97
