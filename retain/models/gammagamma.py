"""Gamma-Gamma spend model: what a user's next transaction is worth, and their lifetime value.

Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-value Curves for Customer Base Analysis", and
Colombo & Jiang (1999): each transaction value z of a user is Gamma(p, nu) (shape p, rate nu), and nu
varies across users as Gamma(q, gamma) (shape q, rate gamma). Given a user's number of transactions
with a value ``f`` (>= 1) and their mean value ``m``, the posterior expected value of one transaction is

    E[Z | f, m] = (gamma + m f) p / (p f + q - 1),

a weighted average of the population mean p gamma / (q - 1) and the user's own mean m, the weight
on m growing with f. The mean exists only for q > 1; :func:`expected_spend` refuses otherwise.

The model assumes spend is independent of how often a user transacts; Spark computes (f, m) per
user (optionally compressed to distinct rows with counts ``n``), and the BG/NBD model supplies the
expected number of transactions that :func:`clv` turns into money.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, gammaln

from retain.models.errors import FitError

# Bounds on log-parameters: wide enough for any realistic currency scale, narrow enough that the
# optimiser cannot wander into overflow of gammaln / exp.
_LOG_BOUNDS = (-12.0, 12.0)
_MIN_USERS = 2


@dataclass(frozen=True)
class GammaGammaParams:
    """Fitted parameters; ``log_likelihood`` is the total over the users used, ``users`` their count."""

    p: float
    q: float
    gamma: float
    log_likelihood: float = float("nan")
    users: int = 0
    converged: bool = True

    @property
    def mean_spend(self) -> float:
        """Population mean transaction value p gamma / (q - 1); infinite when q <= 1."""
        return self.p * self.gamma / (self.q - 1.0) if self.q > 1.0 else float("inf")


def _arrays(f, m, n=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f = np.asarray(f, dtype=float)
    m = np.asarray(m, dtype=float)
    n = np.ones_like(f) if n is None else np.asarray(n, dtype=float)
    if not (f.shape == m.shape == n.shape) or f.ndim != 1:
        raise ValueError(f"f, m and n must be 1-D arrays of one length, got {f.shape}, {m.shape}, {n.shape}")
    return f, m, n


def _usable(f: np.ndarray, m: np.ndarray, n: np.ndarray) -> np.ndarray:
    # A zero or negative mean (refunds, free orders) has no Gamma density; such users, and users
    # without transactions, tell the model nothing about spend and get the population mean.
    return np.isfinite(f) & np.isfinite(m) & np.isfinite(n) & (f >= 1) & (m > 0) & (n > 0)


def _terms(p: float, q: float, g: float, f: np.ndarray, m: np.ndarray) -> np.ndarray:
    # Density of the mean of f Gamma(p, nu) values, integrated over nu ~ Gamma(q, gamma).
    pf = p * f
    return (gammaln(pf + q) - gammaln(pf) - gammaln(q) + q * np.log(g)
            + (pf - 1.0) * np.log(m) + pf * np.log(f) - (pf + q) * np.log(g + m * f))


def log_likelihood(params: GammaGammaParams | tuple[float, float, float], f, m, n=None) -> float:
    """Total log-likelihood of users' (f, m), each row weighted by its count ``n`` (default 1).

    Rows without a usable mean (f < 1, m <= 0, non-finite) are skipped, as in :func:`fit`.
    """
    p, q, g = (params.p, params.q, params.gamma) if isinstance(params, GammaGammaParams) else params
    if min(p, q, g) <= 0:
        raise ValueError(f"parameters must be positive, got p={p}, q={q}, gamma={g}")
    f, m, n = _arrays(f, m, n)
    keep = _usable(f, m, n)
    return float(np.sum(n[keep] * _terms(p, q, g, f[keep], m[keep])))


def _negative_mean_ll(theta: np.ndarray, f, m, n, total: float) -> tuple[float, np.ndarray]:
    p, q, g = np.exp(theta)
    pf = p * f
    log_gmf = np.log(g + m * f)
    ll = n * _terms(p, q, g, f, m)
    common = digamma(pf + q)
    d_p = f * (common - digamma(pf) + np.log(m) + np.log(f) - log_gmf)
    d_q = common - digamma(q) + np.log(g) - log_gmf
    d_g = q / g - (pf + q) / (g + m * f)
    # Chain rule to log-parameters; dividing by the total weight keeps the scale independent of
    # the tenant's size, so one tolerance suits every tenant.
    grad = np.array([p * np.sum(n * d_p), q * np.sum(n * d_q), g * np.sum(n * d_g)])
    return -float(np.sum(ll)) / total, -grad / total


def fit(f, m, n=None) -> GammaGammaParams:
    """Maximum-likelihood fit on per-user (or compressed, with counts ``n``) frequency and mean value.

    Raises :class:`FitError` when fewer than two users have transactions or when every usable mean is
    the same (the likelihood then grows without bound as p, q -> infinity: there is no spread to model).
    """
    f, m, n = _arrays(f, m, n)
    keep = _usable(f, m, n)
    f, m, n = f[keep], m[keep], n[keep]
    total = float(n.sum())
    if total < _MIN_USERS:
        raise FitError(f"Gamma-Gamma needs at least {_MIN_USERS} users with transaction values, got {total:g}")
    if np.ptp(m) <= 1e-12 * float(np.max(m)):
        raise FitError(f"every user's mean transaction value is {m[0]:g}: no spread for Gamma-Gamma to fit")

    # Start where the population mean matches the data: p = 1, q = 2 gives mean gamma, so
    # gamma = weighted mean of m. A couple of spreads of p guard against a poor first basin.
    mean_m = float(np.sum(n * m) / total)
    best = None
    for p0, q0 in ((1.0, 2.0), (5.0, 3.0), (0.5, 1.5)):
        g0 = mean_m * (q0 - 1.0) / p0
        x0 = np.log([p0, q0, g0]).clip(*_LOG_BOUNDS)
        res = minimize(_negative_mean_ll, x0, args=(f, m, n, total), jac=True, method="L-BFGS-B",
                       bounds=[_LOG_BOUNDS] * 3)
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    if best is None:
        raise FitError("Gamma-Gamma likelihood was not finite at any starting point")
    p, q, g = (float(v) for v in np.exp(best.x))
    at_bound = bool(np.any(np.isclose(best.x, _LOG_BOUNDS[0]) | np.isclose(best.x, _LOG_BOUNDS[1])))
    return GammaGammaParams(p=p, q=q, gamma=g, log_likelihood=-float(best.fun) * total,
                            users=int(round(total)), converged=bool(best.success) and not at_bound)


def expected_spend(params: GammaGammaParams, f, m) -> np.ndarray:
    """Posterior expected value of each user's next transaction.

    Users without a usable mean (f < 1, m missing or <= 0) get the population mean p gamma / (q - 1).
    Raises :class:`FitError` when q <= 1, where that mean (and so the shrinkage target) is infinite.
    """
    if params.q <= 1.0:
        raise FitError(f"Gamma-Gamma q = {params.q:.4g} <= 1: mean transaction value is infinite, "
                       "so expected spend and lifetime value are undefined")
    f = np.asarray(f, dtype=float)
    m = np.asarray(m, dtype=float)
    f, m = np.broadcast_arrays(f, m)
    keep = _usable(f, m, np.ones_like(f))
    fk = np.where(keep, f, 0.0)
    mk = np.where(keep, m, 0.0)
    return (params.gamma + mk * fk) * params.p / (params.p * fk + params.q - 1.0)


def clv(expected_transactions_per_period, spend, discount_rate_per_period: float) -> np.ndarray:
    """Discounted lifetime value over the periods given: sum_k E[transactions in k] spend / (1 + d)^k.

    ``expected_transactions_per_period`` is (users x periods), e.g. BG/NBD's expected increments per
    month; period k = 1, 2, ... is discounted by a full period, as its transactions arrive on average
    through the period and are paid for by its end. ``spend`` is per user (or one value for all).
    """
    e = np.asarray(expected_transactions_per_period, dtype=float)
    if e.ndim != 2:
        raise ValueError(f"expected_transactions_per_period must be users x periods, got shape {e.shape}")
    if not discount_rate_per_period > -1.0:
        raise ValueError(f"discount rate must be > -1, got {discount_rate_per_period}")
    spend = np.asarray(spend, dtype=float)
    if spend.ndim > 1 or (spend.ndim == 1 and spend.shape[0] != e.shape[0]):
        raise ValueError(f"spend must be one value or one per user ({e.shape[0]}), got shape {spend.shape}")
    factors = (1.0 + discount_rate_per_period) ** -np.arange(1, e.shape[1] + 1, dtype=float)
    return (e @ factors) * spend
