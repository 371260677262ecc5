"""Per-user behavioural summaries as of a cutoff, computed in Spark.

Days are UTC calendar days. The calibration period ends with the whole day ``cutoff``; the
holdout window is the ``holdout_days`` days after it. In BG/NBD terms, for each user with a visit
in the calibration period: x = active days after the first, t_x = last active day − first,
T = cutoff − first (so a user first seen on the cutoff day has T = 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class Window:
    cutoff: date
    holdout_days: int

    @property
    def holdout_end(self) -> date:
        return self.cutoff + timedelta(days=self.holdout_days)


def _day_index(col):
    from pyspark.sql import functions as F

    return F.datediff(F.to_date(col), F.lit("1970-01-01"))


def visit_days(events, window: Window):
    """Distinct (user_id, day) with a visit, up to the end of the holdout window."""
    from pyspark.sql import functions as F

    return (events.where(F.col("visit") & (F.col("date") <= window.holdout_end.isoformat()))
            .select("user_id", _day_index(F.col("date")).alias("day")).distinct())


def bgnbd_summaries(visits, window: Window):
    """(user_id, x, t_x, T, holdout_days_active) for users active in the calibration period."""
    from pyspark.sql import functions as F

    cutoff = (window.cutoff - date(1970, 1, 1)).days
    calibration = visits.where(F.col("day") <= cutoff)
    holdout = (visits.where(F.col("day") > cutoff).groupBy("user_id")
               .agg(F.count("*").alias("holdout_active_days")))
    summary = (calibration.groupBy("user_id")
               .agg(F.min("day").alias("first"), F.max("day").alias("last"), F.count("*").alias("days"))
               .select("user_id", (F.col("days") - 1).alias("x"), (F.col("last") - F.col("first")).alias("t_x"),
                       (F.lit(cutoff) - F.col("first")).alias("T")))
    return (summary.join(holdout, "user_id", "left")
            .fillna({"holdout_active_days": 0}))


def compressed(summaries):
    """Distinct (x, t_x, T) with their user counts: what the BG/NBD fit takes."""
    return summaries.groupBy("x", "t_x", "T").count()


def spend_summaries(events, window: Window):
    """(user_id, transactions, mean_value, total_value) over the calibration period."""
    from pyspark.sql import functions as F

    return (events.where((F.col("date") <= window.cutoff.isoformat()) & (F.col("revenue") > 0))
            .groupBy("user_id")
            .agg(F.count("*").alias("transactions"), F.avg("revenue").alias("mean_value"),
                 F.sum("revenue").alias("total_value")))


def repeat_activity_by_day(visits, summaries):
    """(day, users): how many users of the calibration cohort were active that day after their
    first day, across calibration and holdout (the actual curve of the BG/NBD tracking plot)."""
    from pyspark.sql import functions as F

    cohort = summaries.select("user_id")
    firsts = visits.join(cohort, "user_id").groupBy("user_id").agg(F.min("day").alias("first"))
    return (visits.join(firsts, "user_id").where(F.col("day") > F.col("first"))
            .groupBy("day").count().withColumnRenamed("count", "users"))
