"""BG/NBD fit on compressed (x, t_x, T) rows against the same fit with one row per user.

Simulates users from r=0.9, alpha=8, a=0.8, b=2.5 (days) and, in the same run, times the compressed
fit (compress step included) and ``fit_per_row`` on the same data; prints one JSON document with wall
times, the speedup, the parameters' relative differences (they must stay within 1e-4; the exit status
is 1 otherwise) and the number of distinct rows. Two populations, because compression depends on how
many distinct summaries there are:

- ``cohort``: every user observed for ``--days`` days (one acquisition cohort): T is the same for
  everyone, so distinct rows saturate at a few tens of thousands however many users there are;
- ``spread``: ages uniform over 1..``--days`` (users acquired every day of the window), the harder
  case: up to days**2/2 (t_x, T) pairs times the spread of x.

    python3 bench/bgnbd_fit.py --users 100000 1000000 [--days 365] [--populations cohort spread] [--repeats 3]

Each fit is timed ``--repeats`` times and the fastest run reported (the machine is shared and noisy;
the load average at the start and end is in the output).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retain.models.bgnbd import compress, fit, fit_per_row, simulate  # noqa: E402

TRUE = (0.9, 8.0, 0.8, 2.5)
NAMES = ("r", "alpha", "a", "b")
TOLERANCE = 1e-4


def timed(fn, *args, repeats: int = 1):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn(*args)
        best = min(best, time.perf_counter() - start)
    return value, best


def compressed_fit(x, t_x, T):
    rows = compress(x, t_x, T)
    return fit(*rows), len(rows[0])


def run(users: int, days: int, population: str, seed: int, repeats: int) -> dict:
    (x, t_x, T), sim_seconds = timed(simulate, TRUE, users, days, seed, 1 if population == "spread" else None)
    (squeezed, rows), squeezed_seconds = timed(compressed_fit, x, t_x, T, repeats=repeats)
    per_row, per_row_seconds = timed(fit_per_row, x, t_x, T, repeats=repeats)
    rel = {name: abs(getattr(squeezed, name) / getattr(per_row, name) - 1) for name in NAMES}
    return {
        "users": users,
        "population": population,
        "days": days,
        "distinct_rows": rows,
        "repeaters_share": round(float(np.mean(x > 0)), 4),
        "simulate_seconds": round(sim_seconds, 3),
        "compressed_fit_seconds": round(squeezed_seconds, 4),
        "per_row_fit_seconds": round(per_row_seconds, 3),
        "speedup": round(per_row_seconds / squeezed_seconds, 1),
        "param_rel_diff": {name: float(f"{v:.3g}") for name, v in rel.items()},
        "param_max_rel_diff": float(f"{max(rel.values()):.3g}"),
        "within_tolerance": max(rel.values()) <= TOLERANCE,
        "log_likelihood_rel_diff": float(f"{abs(squeezed.log_likelihood / per_row.log_likelihood - 1):.3g}"),
        "compressed": squeezed.to_dict(),
        "per_row": per_row.to_dict(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--populations", nargs="+", choices=["cohort", "spread"], default=["cohort", "spread"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()
    compressed_fit(*simulate(TRUE, 2000, 100, 0))  # warm-up: scipy's lazy imports, first-call costs
    results = [run(n, args.days, pop, args.seed, args.repeats) for n in args.users for pop in args.populations]
    print(json.dumps({
        "benchmark": "bgnbd_fit",
        "true_params": dict(zip(NAMES, TRUE)),
        "tolerance": TOLERANCE,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                    "scipy": scipy.__version__, "load_average_before": load_before,
                    "load_average_after": os.getloadavg()},
        "results": results,
    }, indent=2))
    sys.exit(0 if all(r["within_tolerance"] for r in results) else 1)


if __name__ == "__main__":
    main()
