"""Channel propensity: each user's response rate per channel, shrunk toward the tenant's by a Beta prior.

For one tenant and channel, user i received s_i sends and responded k_i times. Response rates vary
across users as Beta(alpha, beta) (empirical Bayes: the prior is estimated from all the tenant's users
on that channel), so k_i is beta-binomial, and a user's propensity is the posterior mean
(alpha + k) / (alpha + beta + s): the tenant's rate for users with no sends, their own k / s once
they have many. alpha + beta acts as a number of pseudo-sends.

Responses may outnumber sends in raw counts (several opens of one email, a click whose send fell
before the counting window): ``k`` is clipped to [0, s], i.e. such users responded to every send.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, logit

MIN_USERS = 20
# Too little data to say anything: a weak prior worth 10 pseudo-sends at a 10% response rate, a
# typical order of magnitude for email opens / push taps, so the first few real responses dominate.
DEFAULT_ALPHA = 1.0
DEFAULT_BETA = 9.0
# Bounds on the prior mean and on its strength alpha + beta. An upper bound on the strength is
# reached when users differ no more than binomial noise explains: everyone then gets the pooled rate.
_MEAN_BOUNDS = (1e-6, 1.0 - 1e-6)
_STRENGTH_BOUNDS = (1e-2, 1e5)


@dataclass(frozen=True)
class BetaPrior:
    """A tenant's prior on one channel's response rate; ``method`` says how it was obtained."""

    alpha: float
    beta: float
    users: int = 0
    method: str = "default"

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)


DEFAULT_PRIOR = BetaPrior(DEFAULT_ALPHA, DEFAULT_BETA, 0, "default")


def _counts(s, k) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(s, dtype=float)
    k = np.asarray(k, dtype=float)
    s, k = np.broadcast_arrays(s, k)
    s = np.where(np.isfinite(s), np.rint(s), 0.0).clip(min=0.0)
    k = np.where(np.isfinite(k), np.rint(k), 0.0)
    return s, np.clip(k, 0.0, s)


def _compress(s: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Many users share (s, k); the likelihood costs one digamma per distinct pair, not per user.
    pairs, n = np.unique(np.stack([s, k], axis=1), axis=0, return_counts=True)
    return pairs[:, 0], pairs[:, 1], n.astype(float)


def log_likelihood(prior: BetaPrior | tuple[float, float], s, k, n=None) -> float:
    """Beta-binomial log-likelihood of (s, k) rows weighted by counts ``n`` (including the binomial term)."""
    a, b = (prior.alpha, prior.beta) if isinstance(prior, BetaPrior) else prior
    s, k = _counts(s, k)
    n = np.ones_like(s) if n is None else np.asarray(n, dtype=float)
    log_choose = gammaln(s + 1) - gammaln(k + 1) - gammaln(s - k + 1)
    return float(np.sum(n * (log_choose + betaln(k + a, s - k + b) - betaln(a, b))))


def _negative_ll(theta: np.ndarray, s, k, n, total: float) -> tuple[float, np.ndarray]:
    # Parametrised by logit(mean) and log(strength): nearly orthogonal, so the optimiser converges
    # in a few steps where (alpha, beta) would follow a long ridge.
    mu, kappa = expit(theta[0]), np.exp(theta[1])
    a, b = mu * kappa, (1.0 - mu) * kappa
    ll = np.sum(n * (betaln(k + a, s - k + b) - betaln(a, b)))
    common = digamma(a + b) - digamma(s + a + b)
    d_a = np.sum(n * (digamma(k + a) - digamma(a) + common))
    d_b = np.sum(n * (digamma(s - k + b) - digamma(b) + common))
    d_mu = kappa * (d_a - d_b)
    d_kappa = mu * d_a + (1.0 - mu) * d_b
    grad = np.array([d_mu * mu * (1.0 - mu), d_kappa * kappa])
    return -float(ll) / total, -grad / total


def _mle(s, k, n, total: float, start: tuple[float, float]) -> tuple[float, float] | None:
    mu0 = float(np.clip(start[0], *_MEAN_BOUNDS))
    kappa0 = float(np.clip(start[1], *_STRENGTH_BOUNDS))
    bounds = [tuple(logit(_MEAN_BOUNDS)), tuple(np.log(_STRENGTH_BOUNDS))]
    res = minimize(_negative_ll, np.array([logit(mu0), np.log(kappa0)]), args=(s, k, n, total),
                   jac=True, method="L-BFGS-B", bounds=bounds)
    if not (res.success and np.all(np.isfinite(res.x)) and np.isfinite(res.fun)):
        return None
    return float(expit(res.x[0])), float(np.exp(res.x[1]))


def _moments(s, k, n) -> tuple[float, float] | None:
    """Method of moments on observed rates: Var(k/s) = mu(1-mu)[1/s + rho(1 - 1/s)], rho = 1/(kappa+1)."""
    total = n.sum()
    mu = float(np.sum(n * k) / np.sum(n * s))
    if not 0.0 < mu < 1.0:
        return None
    rate = k / s
    spread = float(np.sum(n * (rate - mu) ** 2) / total)
    inv_s = float(np.sum(n / s) / total)
    if inv_s >= 1.0:  # every user had exactly one send: over-dispersion is not identifiable
        return None
    rho = (spread / (mu * (1.0 - mu)) - inv_s) / (1.0 - inv_s)
    rho_min, rho_max = 1.0 / (_STRENGTH_BOUNDS[1] + 1.0), 1.0 / (_STRENGTH_BOUNDS[0] + 1.0)
    kappa = 1.0 / float(np.clip(rho, rho_min, rho_max)) - 1.0
    return mu, kappa


def fit_prior(s, k, min_users: int = MIN_USERS) -> BetaPrior:
    """Empirical-Bayes Beta prior from per-user sends ``s`` and responses ``k`` on one channel.

    Maximum likelihood of the beta-binomial first; the method of moments if that fails; the weak
    default Beta(1, 9) when fewer than ``min_users`` users had sends. When nobody (or everybody)
    ever responded, the spread across users cannot be estimated: the prior is centred on the pooled
    rate (+0.5 response) with the default's strength of 10 pseudo-sends. ``method`` is "mle",
    "moments", "pooled: <counts>" or "default: <why>"; ``users`` counts users with sends.
    """
    s, k = _counts(s, k)
    has_sends = s > 0
    users = int(has_sends.sum())
    if users < min_users:
        return BetaPrior(DEFAULT_ALPHA, DEFAULT_BETA, users, f"default: {users} users with sends < {min_users}")
    sc, kc, n = _compress(s[has_sends], k[has_sends])
    sends, responses = float(sc @ n), float(kc @ n)
    if responses in (0.0, sends):
        # The likelihood then peaks at a rate of exactly 0 or 1, which no later response could move:
        # keep the default strength, centred on the pooled rate smoothed by half a response.
        mu, kappa = (responses + 0.5) / (sends + 1.0), DEFAULT_ALPHA + DEFAULT_BETA
        return BetaPrior(mu * kappa, (1.0 - mu) * kappa, users,
                         f"pooled: {responses:g} responses to {sends:g} sends, default strength")
    moments = _moments(sc, kc, n)
    # Moments are a good start; without them (e.g. nobody had more than one send, so the spread
    # across users is not identified and the likelihood is flat in the strength) start, and stay,
    # at the default's strength.
    start = moments if moments is not None else (responses / sends, DEFAULT_ALPHA + DEFAULT_BETA)
    found, method = _mle(sc, kc, n, float(users), start), "mle"
    if found is None:
        found, method = moments, "moments"
    if found is None:
        return BetaPrior(DEFAULT_ALPHA, DEFAULT_BETA, users, "default: neither MLE nor moments converged")
    mu, kappa = found
    return BetaPrior(mu * kappa, (1.0 - mu) * kappa, users, method)


def propensity(prior: BetaPrior, s, k) -> np.ndarray:
    """Posterior mean response rate (alpha + k) / (alpha + beta + s) of each user."""
    s, k = _counts(s, k)
    return (prior.alpha + k) / (prior.alpha + prior.beta + s)


def best_channel(scores: Mapping[str, np.ndarray], priors: Mapping[str, BetaPrior] | None = None) -> np.ndarray:
    """Each user's channel with the highest score (an object array of names; None where all are NaN).

    Equal scores go to the channel with the higher prior mean (the tenant-wide better channel), then
    to the channel listed first; a NaN score means the channel is unavailable for that user.
    """
    names = list(scores)
    if not names:
        raise ValueError("best_channel needs at least one channel")
    # Order channels so that argmax, which takes the first maximum, breaks ties as documented.
    prior_mean = {c: (priors[c].mean if priors and c in priors else -np.inf) for c in names}
    order = sorted(range(len(names)), key=lambda i: -prior_mean[names[i]])
    stacked = np.stack([np.asarray(scores[names[i]], dtype=float) for i in order], axis=0)
    missing = np.isnan(stacked)
    winner = np.argmax(np.where(missing, -np.inf, stacked), axis=0)
    result = np.array([names[i] for i in order], dtype=object)[winner]
    result[np.all(missing, axis=0)] = None
    return result
