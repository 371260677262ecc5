"""Feature importance and action impact from Spark group-by counts.

Features are per-user behaviour in the calibration period; the label is whether the user came
back in the holdout window. Continuous features are cut at Spark's approximate quantiles, and only
the (bin, label) counts reach the driver, whatever the number of users.
"""

from __future__ import annotations

import numpy as np

from retain.models.importance import impact_from_counts, mutual_information
from retain.spark.features import Window

FEATURES = ("frequency", "recency_days", "age_days", "revenue", "responses", "content_interactions", "categories")
# Activity strata for action impact: repeat active days 0, 1-2, 3-5, 6+.
_STRATUM = "CASE WHEN x = 0 THEN 0 WHEN x <= 2 THEN 1 WHEN x <= 5 THEN 2 ELSE 3 END"


def user_features(events, summaries, window: Window):
    """One row per user of the BG/NBD summaries, with behavioural features and the label."""
    from pyspark.sql import functions as F

    calibration = events.where(F.col("date") <= window.cutoff.isoformat())
    extra = calibration.groupBy("user_id").agg(
        F.coalesce(F.sum("revenue"), F.lit(0.0)).alias("revenue"),
        F.sum(F.col("response").cast("int")).alias("responses"),
        F.count("content_id").alias("content_interactions"),
        F.countDistinct("content_category").alias("categories"))
    return (summaries.join(extra, "user_id", "left").fillna(0)
            .select("user_id", "x", F.col("x").alias("frequency"), (F.col("T") - F.col("t_x")).alias("recency_days"),
                    F.col("T").alias("age_days"), "revenue", "responses", "content_interactions", "categories",
                    (F.col("holdout_active_days") > 0).cast("int").alias("label")))


def _bin(name: str, edges: list[float]):
    """The bin of ``name``: how many of the cut points ``edges`` it is above."""
    from pyspark.sql import functions as F

    code = F.lit(0)
    for index, edge in enumerate(sorted(set(edges)), 1):
        code = F.when(F.col(name) > edge, F.lit(index)).otherwise(code)
    return code


def feature_importance(features, bins: int = 10) -> dict[str, dict]:
    """Mutual information (bits, Miller-Madow corrected) of each feature with the label."""
    from pyspark.sql import functions as F

    # Two Spark jobs whatever the number of features: one pass for every feature's cut points, one
    # for every (feature, bin, label) count (two jobs per feature took most of the stage's time).
    cuts = features.approxQuantile(list(FEATURES), [i / bins for i in range(1, bins)], 0.001)
    binned = F.array(*(F.struct(F.lit(name).alias("feature"), _bin(name, edges).alias("bin"))
                       for name, edges in zip(FEATURES, cuts)))
    counts = (features.select(F.explode(binned).alias("f"), "label")
              .groupBy("f.feature", "f.bin", "label").count().collect())
    tables = {name: np.zeros((bins, 2)) for name in FEATURES}
    for row in counts:
        tables[row["feature"]][row["bin"], row["label"]] = row["count"]
    results = {}
    for name, table in tables.items():
        mi = mutual_information(table)  # empty bins (cut points that coincide) count no cells
        results[name] = {"bits": mi.bits, "plugin_bits": mi.plugin_bits, "users": mi.n}
    return results


def action_impacts(events, features, window: Window, top: int = 15) -> dict[str, dict]:
    """For the most common track events and content categories: the difference in return rate
    between users who did it and users who did not, within activity strata, with a 95% interval."""
    from pyspark.sql import functions as F

    calibration = events.where(F.col("date") <= window.cutoff.isoformat())
    actions = (calibration.where(F.col("type") == "track").select("user_id", F.concat(F.lit("event:"), "name").alias("action"))
               .unionByName(calibration.where(F.col("content_category").isNotNull())
                            .select("user_id", F.concat(F.lit("category:"), "content_category").alias("action"))))
    common = [r["action"] for r in actions.groupBy("action").agg(F.countDistinct("user_id").alias("users"))
              .orderBy(F.desc("users")).limit(top).collect()]
    if not common:
        return {}
    did = actions.where(F.col("action").isin(common)).distinct().withColumn("did", F.lit(1))
    base = features.select("user_id", F.expr(_STRATUM).alias("stratum"), "label")
    grid = base.crossJoin(F.broadcast(did.select("action").distinct()))
    counts = (grid.join(did, ["user_id", "action"], "left").fillna({"did": 0})
              .groupBy("action", "stratum", "did", "label").count().collect())
    tables: dict[str, np.ndarray] = {a: np.zeros((4, 2, 2)) for a in common}
    for row in counts:
        # [stratum, 0 = did / 1 = did not, 0 = returned / 1 = did not return]
        tables[row["action"]][row["stratum"], 1 - row["did"], 1 - row["label"]] += row["count"]
    results = {}
    for action, table in tables.items():
        impact = impact_from_counts(table)
        results[action] = {"difference": impact.difference, "low": impact.low, "high": impact.high,
                           "sign": impact.sign, "users_did": impact.n_did, "users_not": impact.n_not}
    return results
