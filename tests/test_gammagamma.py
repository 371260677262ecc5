"""Gamma-Gamma spend model: recovery from simulated users, the likelihood, shrinkage and discounting."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from retain.models.errors import FitError
from retain.models.gammagamma import GammaGammaParams, clv, expected_spend, fit, log_likelihood

TRUE = GammaGammaParams(p=6.0, q=4.0, gamma=15.0)


def simulate(users: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-user transaction counts 1..10 and mean values drawn from the model itself."""
    rng = np.random.default_rng(seed)
    f = rng.integers(1, 11, users)
    nu = rng.gamma(TRUE.q, 1.0 / TRUE.gamma, users)
    values = [rng.gamma(TRUE.p, 1.0 / rate, count) for rate, count in zip(nu, f)]
    return f, np.array([v.mean() for v in values])


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray]:
    return simulate(5000, seed=20240501)


def test_recovers_simulated_parameters(sample) -> None:
    f, m = sample
    fitted = fit(f, m)
    assert fitted.converged and fitted.users == 5000
    # Tolerances about twice the spread over seeds of 5,000-user fits: p and gamma trade off
    # along a ridge, q and the population mean are pinned much more tightly.
    assert fitted.p == pytest.approx(TRUE.p, rel=0.20)
    assert fitted.q == pytest.approx(TRUE.q, rel=0.10)
    assert fitted.gamma == pytest.approx(TRUE.gamma, rel=0.25)
    assert fitted.mean_spend == pytest.approx(TRUE.mean_spend, rel=0.03)  # 30
    # The optimiser found a maximum at least as high as the truth's, as an MLE must.
    assert fitted.log_likelihood >= log_likelihood(TRUE, f, m) - 1e-6
    assert fitted.log_likelihood == pytest.approx(log_likelihood(fitted, f, m), rel=1e-12)


def test_log_likelihood_matches_beta_prime_density() -> None:
    # Independently: the sum of f Gamma(p, nu) values is Gamma(pf, nu); mixing the rate nu over
    # Gamma(q, gamma) makes the sum beta-prime(pf, q) with scale gamma; the mean m = sum / f.
    f = np.array([1, 2, 5, 10, 3])
    m = np.array([12.0, 30.5, 7.25, 41.0, 19.9])
    p, q, g = 2.5, 3.5, 20.0
    expected = np.sum(stats.betaprime.logpdf(m * f, p * f, q, scale=g) + np.log(f))
    assert log_likelihood((p, q, g), f, m) == pytest.approx(expected, rel=1e-10)


def test_counts_weight_rows_like_repeated_users() -> None:
    f = np.array([1, 3, 3, 1, 3])
    m = np.array([10.0, 20.0, 20.0, 10.0, 25.0])
    compressed = log_likelihood(TRUE, [1, 3, 3], [10.0, 20.0, 25.0], n=[2, 2, 1])
    assert compressed == pytest.approx(log_likelihood(TRUE, f, m), rel=1e-12)


def test_users_without_transactions_are_ignored_by_the_fit(sample) -> None:
    f, m = sample
    with_empty = fit(np.concatenate([f, [0, 0, 2]]), np.concatenate([m, [np.nan, 0.0, -5.0]]))
    assert with_empty.users == 5000
    assert with_empty.p == pytest.approx(fit(f, m).p, rel=1e-6)


@pytest.mark.parametrize("f, m, reason", [
    ([3], [12.0], "at least 2 users"),
    ([0, 0, 1], [np.nan, np.nan, 5.0], "at least 2 users"),
    ([1, 4, 2], [9.99, 9.99, 9.99], "no spread"),
])
def test_fit_refuses_degenerate_data(f, m, reason) -> None:
    with pytest.raises(FitError, match=reason):
        fit(f, m)


def test_expected_spend_shrinks_toward_population_mean_for_few_transactions() -> None:
    population = TRUE.mean_spend  # 30
    m = np.array([100.0, 100.0, 100.0, 5.0, 5.0, 100.0])
    f = np.array([1, 10, 10_000, 1, 10_000, 0])
    spend = expected_spend(TRUE, f, m)
    # One transaction: pulled from the user's mean toward the population's, from either side;
    # the share kept of the user's own deviation is p f / (p f + q - 1).
    assert population < spend[0] < m[0] and m[3] < spend[3] < population
    kept = (spend - population) / (m - population)
    assert kept[:5] == pytest.approx(6 * f[:5] / (6 * f[:5] + 3))
    # Formula check for f=1: (gamma + m) p / (p + q - 1) = 115 * 6 / 9.
    assert spend[0] == pytest.approx(115 * 6 / 9)
    # More transactions move the estimate toward the user's mean, and in the limit onto it.
    assert population < spend[0] < spend[1] < spend[2] < m[0]
    assert spend[2] == pytest.approx(100.0, rel=1e-3)
    assert spend[4] == pytest.approx(5.0, rel=1e-2)
    assert spend[5] == pytest.approx(population)


def test_noisy_spend_trusts_one_transaction_less() -> None:
    # Small p: single transactions vary a lot around a user's typical value, so one of them says
    # little; the estimate stays nearer the population mean (p gamma / (q - 1) = 0.5 * 180 / 3 = 30).
    noisy = GammaGammaParams(p=0.5, q=4.0, gamma=180.0)
    one = float(expected_spend(noisy, [1], [100.0])[0])
    assert abs(one - noisy.mean_spend) < abs(one - 100.0)
    assert float(expected_spend(noisy, [1], [100.0])[0]) < float(expected_spend(TRUE, [1], [100.0])[0])


def test_expected_spend_needs_q_above_one() -> None:
    with pytest.raises(FitError, match="q = 0.9"):
        expected_spend(GammaGammaParams(p=2.0, q=0.9, gamma=5.0), [1], [10.0])
    assert GammaGammaParams(p=2.0, q=0.9, gamma=5.0).mean_spend == float("inf")


def test_clv_discounts_each_period() -> None:
    expected = np.array([[1.0, 1.0, 1.0], [0.5, 0.0, 2.0]])
    spend = np.array([10.0, 20.0])
    value = clv(expected, spend, 0.1)
    assert value[0] == pytest.approx(10.0 * (1 / 1.1 + 1 / 1.1 ** 2 + 1 / 1.1 ** 3))
    assert value[1] == pytest.approx(20.0 * (0.5 / 1.1 + 2.0 / 1.1 ** 3))
    assert clv(expected, spend, 0.0) == pytest.approx([30.0, 50.0])
    assert np.all(clv(expected, spend, 0.01) > value)
    assert clv(expected, 10.0, 0.0) == pytest.approx([30.0, 25.0])


def test_clv_checks_shapes() -> None:
    with pytest.raises(ValueError, match="users x periods"):
        clv(np.ones(3), np.ones(3), 0.01)
    with pytest.raises(ValueError, match="one per user"):
        clv(np.ones((3, 2)), np.ones(2), 0.01)
