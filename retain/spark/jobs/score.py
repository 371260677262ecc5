"""spark-submit entry: every user's profile of one tenant, from its current model, to Cassandra.

    spark-submit --master <any> retain/spark/jobs/score.py --tenant T [--as-of DATE_OR_TIME]
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from retain.spark.jobs import iso_moment, run_job


def score(tenant: str, as_of: datetime | None) -> dict[str, Any]:
    from retain.config import Settings
    from retain.spark.scoring import run_scoring
    from retain.spark.session import submitted_session
    from retain.tenancy.registry import load_config

    settings = Settings.from_env()
    config = load_config(settings, tenant)  # an unknown tenant fails before Spark starts
    spark = submitted_session(settings, f"retain-score-{tenant}")
    try:
        return {**run_scoring(settings, tenant, spark=spark, as_of=as_of, config=config).to_dict(),
                "spark_master": spark.sparkContext.master}
    finally:
        spark.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="score.py", description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--as-of", type=iso_moment, help="score as of this UTC date or time (default: now)")
    args = parser.parse_args(argv)
    return run_job(lambda: score(args.tenant, args.as_of))


if __name__ == "__main__":
    sys.exit(main())
