"""Feature importance and action impact: what goes with retention, and which actions seem to cause it.

Mutual information (bits) between a discretised behavioural feature and the binary retention label
ranks features by how much they tell about the label, in any shape of relationship. Action impact
estimates, for one action, how much more (or less) likely users who did it are to return than users
who did not at the same activity level: activity confounds almost every action (active users do
everything and return anyway), so the comparison is made within activity strata and pooled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_LN2 = np.log(2.0)
_Z95 = 1.959963984540054


@dataclass(frozen=True)
class MIResult:
    """Miller-Madow ``bits`` (clamped at 0), plug-in ``plugin_bits``, sample size ``n`` and H(label) in bits.

    ``label_entropy_bits`` is Miller-Madow corrected like ``bits``, so 0 <= bits <= label_entropy_bits
    and bits / label_entropy_bits is the share of the label's uncertainty the feature removes.
    """

    bits: float
    plugin_bits: float
    n: int
    label_entropy_bits: float


@dataclass(frozen=True)
class Impact:
    """Stratified difference in return rate, did minus did not, with its 95% interval.

    ``sign`` is +1 or -1 when the interval excludes 0, else 0 (no detectable effect); without any
    stratum holding both kinds of user the difference and interval are NaN and ``sign`` 0.
    ``n_did`` and ``n_not`` count all users; ``strata_used`` the strata with both kinds.
    """

    difference: float
    low: float
    high: float
    sign: int
    n_did: int
    n_not: int
    strata_used: int


def _entropy_bits(counts: np.ndarray) -> tuple[float, int]:
    """Plug-in entropy in bits and the number of non-empty cells."""
    nz = counts[counts > 0]
    total = nz.sum()
    prob = nz / total
    return float(-np.sum(prob * np.log2(prob))), int(nz.size)


def mutual_information(table) -> MIResult:
    """I(feature; label) from a (feature bins x 2) table of counts, Miller-Madow corrected.

    Each entropy gets the Miller-Madow correction (m - 1) / (2 N ln 2), m its non-empty cells, and
    I = H(X) + H(Y) - H(X, Y). The plug-in estimate is biased upward by about that much for a
    feature unrelated to the label; the corrected one can dip below 0 by chance, which means no
    detectable dependence and is clamped to 0. An empty table gives 0 bits.
    """
    counts = np.asarray(table, dtype=float)
    if counts.ndim != 2 or counts.shape[1] != 2:
        raise ValueError(f"table must be (feature bins x 2), got shape {counts.shape}")
    if np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise ValueError("table must hold finite, non-negative counts")
    n = counts.sum()
    if n <= 0:
        return MIResult(0.0, 0.0, 0, 0.0)
    hx, mx = _entropy_bits(counts.sum(axis=1))
    hy, my = _entropy_bits(counts.sum(axis=0))
    hxy, mxy = _entropy_bits(counts.ravel())
    corr = 1.0 / (2.0 * n * _LN2)
    hx_mm, hy_mm, hxy_mm = hx + (mx - 1) * corr, hy + (my - 1) * corr, hxy + (mxy - 1) * corr
    plugin = max(hx + hy - hxy, 0.0)  # only rounding can make the plug-in negative
    return MIResult(bits=max(hx_mm + hy_mm - hxy_mm, 0.0), plugin_bits=plugin, n=int(round(n)),
                    label_entropy_bits=hy_mm)


def discretise(values, bins: int = 10) -> np.ndarray:
    """Quantile bins 0..k-1 (k <= bins) of a feature; NaN values get their own last bin k.

    Values equal to a quantile edge share one bin, so heavy ties (e.g. most users at 0) yield fewer,
    never empty, bins, and a constant feature yields one bin. Missing is kept apart because not
    having a value (never purchased) is often informative in itself.
    """
    x = np.asarray(values, dtype=float)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    finite = ~np.isnan(x)
    codes = np.empty(x.shape, dtype=np.int64)
    if finite.any():
        edges = np.unique(np.quantile(x[finite], np.linspace(0.0, 1.0, bins + 1)[1:-1]))
        raw = np.searchsorted(edges, x[finite], side="right")
        # Renumber the bins that occur so that codes are consecutive from 0.
        _, codes[finite] = np.unique(raw, return_inverse=True)
        codes[~finite] = int(codes[finite].max()) + 1
    else:
        codes[:] = 0
    return codes


def contingency(codes, label) -> np.ndarray:
    """(bins x 2) counts of label False/True per bin code, for :func:`mutual_information`."""
    codes = np.asarray(codes, dtype=np.int64)
    label = np.asarray(label).astype(bool)
    if codes.shape != label.shape:
        raise ValueError(f"codes and label must have one shape, got {codes.shape} and {label.shape}")
    bins = int(codes.max()) + 1 if codes.size else 1
    return np.bincount(codes * 2 + label, minlength=2 * bins).reshape(bins, 2)


def impact_from_counts(table) -> Impact:
    """Mantel-Haenszel risk difference over strata from counts shaped (strata, 2, 2).

    ``table[s, 0]`` = users who did the action in stratum s, as [returned, did not return];
    ``table[s, 1]`` = users who did not, likewise. With a, b (did) and c, d (did not), n1 = a + b,
    n0 = c + d, N = n1 + n0, the estimate is

        RD = sum (a n0 - c n1) / N  /  sum w,   w = n1 n0 / N,

    the weighted mean of the stratum differences a/n1 - c/n0 (Greenland & Robins 1985). Its
    variance is Sato's (1989) refinement of theirs, consistent both for many sparse strata (a
    fine-grained activity level) and for few large ones:

        Var = (RD sum P + sum Q) / (sum w)^2,
        P = (n1^2 c - n0^2 a + n1 n0 (n0 - n1) / 2) / N^2,   Q = (a (n0 - c) + c (n1 - a)) / (2 N).

    The interval is RD +- 1.96 sqrt(Var), clipped to [-1, 1].
    """
    t = np.asarray(table, dtype=float)
    if t.ndim != 3 or t.shape[1:] != (2, 2):
        raise ValueError(f"table must be (strata, 2, 2), got shape {t.shape}")
    if np.any(t < 0) or not np.all(np.isfinite(t)):
        raise ValueError("table must hold finite, non-negative counts")
    a, b, c, d = t[:, 0, 0], t[:, 0, 1], t[:, 1, 0], t[:, 1, 1]
    n1, n0 = a + b, c + d
    n_did, n_not = int(round(n1.sum())), int(round(n0.sum()))
    # A stratum where everyone (or no one) did the action says nothing about its effect.
    used = (n1 > 0) & (n0 > 0)
    if not used.any():
        return Impact(float("nan"), float("nan"), float("nan"), 0, n_did, n_not, 0)
    a, c, n1, n0 = a[used], c[used], n1[used], n0[used]
    total = n1 + n0
    w = n1 * n0 / total
    rd = float(np.sum((a * n0 - c * n1) / total) / w.sum())
    p = (n1 ** 2 * c - n0 ** 2 * a + n1 * n0 * (n0 - n1) / 2.0) / total ** 2
    q = (a * (n0 - c) + c * (n1 - a)) / (2.0 * total)
    var = max(float((rd * p.sum() + q.sum()) / w.sum() ** 2), 0.0)
    half = _Z95 * np.sqrt(var)
    low, high = max(rd - half, -1.0), min(rd + half, 1.0)
    sign = 1 if low > 0 else (-1 if high < 0 else 0)
    return Impact(rd, float(low), float(high), sign, n_did, n_not, int(used.sum()))


def stratified_counts(did, strata, label) -> np.ndarray:
    """Per-user arrays to the (strata, 2, 2) counts :func:`impact_from_counts` takes (strata sorted)."""
    did = np.asarray(did).astype(bool)
    label = np.asarray(label).astype(bool)
    strata = np.asarray(strata)
    if not (did.shape == label.shape == strata.shape) or did.ndim != 1:
        raise ValueError(f"did, strata and label must be 1-D of one length, got "
                         f"{did.shape}, {strata.shape}, {label.shape}")
    _, index = np.unique(strata, return_inverse=True)
    k = int(index.max()) + 1 if index.size else 0
    # Cell order within a stratum: did/returned, did/not, not/returned, not/not.
    cell = index * 4 + (~did) * 2 + (~label)
    return np.bincount(cell, minlength=4 * k).reshape(k, 2, 2)


def action_impact(did, strata, label) -> Impact:
    """:func:`impact_from_counts` on users: did the action, activity stratum, returned."""
    return impact_from_counts(stratified_counts(did, strata, label))
