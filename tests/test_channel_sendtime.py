"""Channel propensity (empirical-Bayes Beta priors) and send-time distributions."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from retain.models import channel
from retain.models.channel import BetaPrior, best_channel, fit_prior, propensity
from retain.models.sendtime import best_hour, tenant_distribution, to_local_bucket, user_distribution


def simulate_channel(users: int, seed: int, alpha: float = 2.0, beta: float = 18.0):
    rng = np.random.default_rng(seed)
    sends = rng.poisson(20, users)
    return sends, rng.binomial(sends, rng.beta(alpha, beta, users))


# --- channel -----------------------------------------------------------------------------------


def test_recovers_beta_prior_by_maximum_likelihood() -> None:
    s, k = simulate_channel(5000, seed=7)
    prior = fit_prior(s, k)
    assert prior.method == "mle"
    assert prior.users == int((s > 0).sum())
    # Over seeds, 5,000-user fits land within about 7% of the truth; allow twice that.
    assert prior.alpha == pytest.approx(2.0, rel=0.15)
    assert prior.beta == pytest.approx(18.0, rel=0.15)
    assert prior.mean == pytest.approx(0.1, abs=0.005)
    # The MLE is at least as likely as the truth.
    assert channel.log_likelihood(prior, s, k) >= channel.log_likelihood((2.0, 18.0), s, k) - 1e-6


def test_falls_back_to_method_of_moments(monkeypatch) -> None:
    s, k = simulate_channel(5000, seed=7)
    monkeypatch.setattr(channel, "_mle", lambda *args: None)
    prior = fit_prior(s, k)
    assert prior.method == "moments"
    assert prior.alpha == pytest.approx(2.0, rel=0.2)
    assert prior.beta == pytest.approx(18.0, rel=0.2)


def test_beta_binomial_likelihood_matches_scipy() -> None:
    from scipy.stats import betabinom

    s, k = simulate_channel(300, seed=3)
    expected = betabinom.logpmf(k, s, 2.0, 18.0).sum()
    assert channel.log_likelihood((2.0, 18.0), s, k) == pytest.approx(expected, rel=1e-10)


def test_too_little_data_gives_the_weak_default_prior() -> None:
    s, k = simulate_channel(10, seed=1)
    s[0] = 0
    prior = fit_prior(s, k)
    assert (prior.alpha, prior.beta) == (1.0, 9.0)
    assert prior.method == "default: 9 users with sends < 20"
    assert fit_prior([], []).method.startswith("default")
    # Many users but no sends at all is no data either.
    assert fit_prior(np.zeros(500), np.zeros(500)).method.startswith("default")


def test_nobody_responding_centres_the_prior_near_zero() -> None:
    prior = fit_prior(np.full(100, 20), np.zeros(100))
    assert prior.method.startswith("pooled")
    assert prior.alpha + prior.beta == pytest.approx(10.0)
    assert prior.mean == pytest.approx(0.5 / 2001)


def test_propensity_shrinks_toward_the_prior_mean() -> None:
    prior = BetaPrior(2.0, 18.0)
    s = np.array([0, 2, 20, 2000, 10, 5])
    k = np.array([0, 1, 10, 1000, 0, 8])
    score = propensity(prior, s, k)
    assert score[0] == pytest.approx(0.1)  # no sends: the tenant's rate
    # The same observed rate of 0.5 counts for more the more sends it rests on.
    assert 0.1 < score[1] < score[2] < score[3] < 0.5
    assert score[3] == pytest.approx(0.5, abs=0.005)
    assert score[4] == pytest.approx(2 / 30) and score[4] < 0.1
    assert score[5] == pytest.approx((2 + 5) / (20 + 5))  # k > s is clipped to s


def test_best_channel_breaks_ties_by_prior_mean() -> None:
    scores = {
        "email": np.array([0.30, 0.20, np.nan, 0.25, np.nan]),
        "push": np.array([0.10, 0.20, np.nan, 0.25, 0.05]),
        "sms": np.array([0.10, 0.10, np.nan, 0.25, np.nan]),
    }
    priors = {"email": BetaPrior(1, 9), "push": BetaPrior(2, 8), "sms": BetaPrior(3, 7)}
    chosen = best_channel(scores, priors)
    assert chosen.tolist() == ["email", "push", None, "sms", "push"]
    # Without priors, ties go to the channel listed first.
    assert best_channel(scores).tolist() == ["email", "email", None, "email", "push"]


# --- send time ---------------------------------------------------------------------------------

TUESDAY_10 = 24 + 10
SATURDAY_20 = 5 * 24 + 20


@pytest.fixture()
def tenant() -> np.ndarray:
    counts = np.full(168, 20.0)
    counts[TUESDAY_10] = 500.0
    return tenant_distribution(counts)


def test_tenant_distribution_is_smoothed() -> None:
    dist = tenant_distribution(np.zeros(168))
    assert dist == pytest.approx(np.full(168, 1 / 168))
    counts = np.zeros(168)
    counts[3] = 10
    dist = tenant_distribution(counts)
    assert dist.sum() == pytest.approx(1.0) and dist[3] == pytest.approx(11 / 178) and dist.min() > 0


def test_user_with_strong_evidence_keeps_their_peak(tenant) -> None:
    counts = np.zeros((1, 168))
    counts[0, SATURDAY_20] = 40
    counts[0, TUESDAY_10] = 5
    dist = user_distribution(counts, tenant)
    assert dist.sum() == pytest.approx(1.0)
    bucket, hour, weekday = best_hour(dist)
    assert (bucket[0], hour[0], weekday[0]) == (SATURDAY_20, 20, 5)


def test_user_with_one_event_mostly_follows_the_tenant(tenant) -> None:
    counts = np.zeros((3, 168))
    counts[0, SATURDAY_20] = 1
    counts[2, SATURDAY_20] = 1000
    dist = user_distribution(counts, tenant, strength=10.0)
    # One event against ten pseudo-events: at most 1/11 of the mass moves.
    assert np.abs(dist[0] - tenant).max() <= 1 / 11 + 1e-12
    assert best_hour(dist[0]) == (TUESDAY_10, 10, 1)
    assert dist[1] == pytest.approx(tenant)  # no events: exactly the tenant
    assert best_hour(dist[2])[0] == SATURDAY_20


def _ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp() * 1000)


@pytest.mark.parametrize("zone, utc, bucket", [
    # Paris: CET (+1) in winter, CEST (+2) from 2024-03-31 01:00 UTC to 2024-10-27 01:00 UTC.
    ("Europe/Paris", (2024, 1, 15, 12, 0), 13),                # Monday 13:00
    ("Europe/Paris", (2024, 7, 15, 12, 0), 14),                # Monday 14:00
    ("Europe/Paris", (2024, 3, 31, 0, 59), 6 * 24 + 1),        # Sunday 01:59 CET
    ("Europe/Paris", (2024, 3, 31, 1, 0), 6 * 24 + 3),         # Sunday 03:00 CEST: 02:00 skipped
    ("Europe/Paris", (2024, 10, 27, 0, 30), 6 * 24 + 2),       # Sunday 02:30 CEST
    ("Europe/Paris", (2024, 10, 27, 1, 30), 6 * 24 + 2),       # Sunday 02:30 CET, the repeated hour
    ("Europe/Paris", (2024, 10, 27, 2, 30), 6 * 24 + 3),
    # New York: EST (-5), EDT (-4) from 2024-03-10 07:00 UTC to 2024-11-03 06:00 UTC.
    ("America/New_York", (2024, 1, 15, 12, 0), 7),             # Monday 07:00
    ("America/New_York", (2024, 7, 15, 12, 0), 8),             # Monday 08:00
    ("America/New_York", (2024, 1, 15, 4, 59), 167),           # still Sunday 23:59 locally
    ("America/New_York", (2024, 3, 10, 6, 59), 6 * 24 + 1),    # Sunday 01:59 EST
    ("America/New_York", (2024, 3, 10, 7, 0), 6 * 24 + 3),     # Sunday 03:00 EDT
    ("America/New_York", (2024, 11, 3, 5, 30), 6 * 24 + 1),    # Sunday 01:30 EDT
    ("America/New_York", (2024, 11, 3, 6, 30), 6 * 24 + 1),    # Sunday 01:30 EST, repeated
    (None, (2024, 1, 15, 12, 0), 12),
    ("Not/A_Zone", (2024, 1, 15, 12, 0), 12),
    ("", (2024, 1, 15, 12, 0), 12),
])
def test_local_bucket_follows_daylight_saving(zone, utc, bucket) -> None:
    assert to_local_bucket(np.array([_ms(*utc)]), np.array([zone], dtype=object)).tolist() == [bucket]


def test_local_buckets_match_zoneinfo_row_by_row() -> None:
    rng = np.random.default_rng(11)
    zones = np.array(["Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe",
                      "UTC", None, "Mars/Olympus"], dtype=object)
    start = _ms(2024, 1, 1, 0, 0)
    epoch_ms = start + rng.integers(0, 366 * 86_400_000, 20_000)
    names = zones[rng.integers(0, len(zones), epoch_ms.size)]
    buckets = to_local_bucket(epoch_ms, names)

    def expected(ms: int, name) -> int:
        zone = ZoneInfo(name) if name in ("Europe/Paris", "America/New_York", "Asia/Kolkata",
                                         "Australia/Lord_Howe") else timezone.utc
        local = datetime.fromtimestamp(ms / 1000, timezone.utc).astimezone(zone)
        return local.weekday() * 24 + local.hour

    assert buckets.tolist() == [expected(int(ms), name) for ms, name in zip(epoch_ms, names)]
    assert to_local_bucket(epoch_ms[:5], "Europe/Paris").tolist() == [
        expected(int(ms), "Europe/Paris") for ms in epoch_ms[:5]]
