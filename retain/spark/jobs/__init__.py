"""Entry scripts for spark-submit: ``train.py`` and ``score.py`` run one tenant's job in the session
spark-submit started, on whatever master it names (local[*], spark://host:7077, yarn on EMR).

    bin/spark-submit-retain --master yarn retain/spark/jobs/train.py --tenant acme

The scripts import retain, so the driver and the executors need it on their path: ``--py-files``
with the zip bin/spark-submit-retain builds (retain.spark.pyfiles), or retain installed on every
node. retain's dependencies (numpy, pandas, pyarrow, pydantic, ...) must be installed on the nodes.
Settings come from RETAIN_* variables as everywhere else. Each script prints its result as one
JSON line on stdout; a RetainError becomes a one-line message on stderr and its exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, timezone
from typing import Any, Callable

from retain.errors import RetainError


def iso_date(value: str) -> date:
    """argparse type of a YYYY-MM-DD day."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def iso_moment(value: str) -> datetime:
    """argparse type of a UTC date or time; a bare date is the end of that day (all its events)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO date or time (YYYY-MM-DD[THH:MM[:SS]])") from None
    if len(value) == 10:
        moment = moment.replace(hour=23, minute=59, second=59, microsecond=999000)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def run_job(job: Callable[[], dict[str, Any]], failed: Callable[[dict[str, Any]], bool] = lambda _: False) -> int:
    """Run ``job``, print its result as JSON; the process exit code (1 when ``failed`` says so)."""
    try:
        result = job()
    except RetainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(result, default=str), flush=True)
    return 1 if failed(result) else 0
