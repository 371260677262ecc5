"""spark-submit entry: train, evaluate and store a new version of one tenant's models.

    spark-submit --master <any> retain/spark/jobs/train.py --tenant T [--cutoff DATE] [--holdout-days N]

Exits 1 when the retention model could not be fitted (status "failed"), as `retain train` does.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from typing import Any

from retain.spark.jobs import iso_date, run_job


def train(tenant: str, cutoff: date | None, holdout_days: int) -> dict[str, Any]:
    from retain.config import Settings
    from retain.spark.session import submitted_session
    from retain.spark.train import run_training
    from retain.tenancy.registry import load_config

    settings = Settings.from_env()
    config = load_config(settings, tenant)  # an unknown tenant fails before Spark starts
    spark = submitted_session(settings, f"retain-train-{tenant}")
    try:
        result = run_training(settings, tenant, cutoff, holdout_days, spark=spark, config=config)
        return {**result.to_dict(), "spark_master": spark.sparkContext.master}
    finally:
        spark.stop()


def _days(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 365:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days between 1 and 365")
    return int(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="train.py", description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--cutoff", type=iso_date, help="last day of the calibration period "
                                                        "(default: the holdout window ends yesterday)")
    parser.add_argument("--holdout-days", type=_days, default=30)
    args = parser.parse_args(argv)
    return run_job(lambda: train(args.tenant, args.cutoff, args.holdout_days),
                   failed=lambda result: result["status"] == "failed")


if __name__ == "__main__":
    sys.exit(main())
