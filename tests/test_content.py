"""The content model on real Spark: ALS finds planted taste groups that popularity cannot,
category affinity shrinks thin evidence toward the tenant, and too little data is a clear FitError."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pandas as pd
import pytest

from retain.models.errors import FitError
from retain.spark.content import (category_affinity, fit_content, interactions, precision_at_k, top_items,
                                  train_als)
from retain.spark.features import Window
from retain.spark.lake import spark_schema

WINDOW = Window(cutoff=date(2025, 3, 28), holdout_days=7)
START = date(2025, 3, 1)
# Six taste groups, each preferring its own 10 of 60 items 85% of the time and picking any item
# otherwise; calibration and holdout are drawn from the same preferences. Groups share categories
# unevenly, so the tenant's category distribution is skewed (news ~40%, science ~12%).
GROUP_SIZES = (70, 55, 50, 45, 45, 35)
GROUP_CATEGORIES = ("news", "news", "sport", "sport", "culture", "science")
ITEMS_PER_GROUP = 10
N_ITEMS = 60
NOISE = 0.15
HOLDOUT_DRAWS = 10


def _row(user: str | None, day: date, content: str | None, category: str | None, name: str = "Article") -> tuple:
    return user, day.isoformat(), content, category, name


def _events(spark, rows: list[tuple]):
    """Lake rows (the lake's schema, the columns content uses filled in) as a Spark DataFrame."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    given = pd.DataFrame(rows, columns=["user_id", "date", "content_id", "content_category", "name"])
    given["tenant_id"], given["type"] = "acme", "page"
    given["event_time"] = pd.to_datetime(given["date"]).dt.tz_localize("UTC") + pd.Timedelta(hours=12)
    # Through pandas and Arrow: much faster than Spark converting Python tuples one by one.
    frame = spark.createDataFrame(given)
    schema = StructType.fromDDL(spark_schema())
    return frame.select(*((F.col(f.name) if f.name in given.columns else F.lit(None)).cast(f.dataType).alias(f.name)
                          for f in schema.fields))


def _item(index: int) -> tuple[str, str]:
    return f"i{index:02d}", GROUP_CATEGORIES[index // ITEMS_PER_GROUP]


def _draws(rng: random.Random, group: int, n: int) -> list[int]:
    return [rng.randrange(N_ITEMS) if rng.random() < NOISE else group * ITEMS_PER_GROUP + rng.randrange(ITEMS_PER_GROUP)
            for _ in range(n)]


def _planted_rows(seed: int = 5) -> list[tuple]:
    rng = random.Random(seed)
    rows = []
    holdout_days = [WINDOW.cutoff + timedelta(days=d) for d in range(1, WINDOW.holdout_days + 1)]
    calibration_days = [START + timedelta(days=d) for d in range((WINDOW.cutoff - START).days + 1)]
    user = 0
    for group, size in enumerate(GROUP_SIZES):
        for _ in range(size):
            uid = f"u{user:03d}"
            user += 1
            for index in _draws(rng, group, rng.randint(8, 14)):
                rows.append(_row(uid, rng.choice(calibration_days), *_item(index)))
            for index in _draws(rng, group, HOLDOUT_DRAWS):
                rows.append(_row(uid, rng.choice(holdout_days), *_item(index)))
            # Not content, or after the holdout window: never counted.
            rows.append(_row(uid, rng.choice(calibration_days), None, None, "Home"))
            rows.append(_row(uid, WINDOW.holdout_end + timedelta(days=1), *_item(rng.randrange(N_ITEMS))))
    # A heavy reader who saw 50 of the 60 items: asked for recommendations apart from everyone else.
    for index in range(50):
        rows.append(_row("reader", rng.choice(calibration_days), *_item(index)))
    # One interaction, in the rarest category (science).
    rows.append(_row("solo", WINDOW.cutoff, *_item(5 * ITEMS_PER_GROUP)))
    rows.append(_row(None, WINDOW.cutoff, *_item(0)))  # anonymous: no user to recommend to
    return rows


@pytest.fixture(scope="module")
def planted(spark):
    events = _events(spark, _planted_rows()).cache()
    yield events
    events.unpersist()


@pytest.fixture(scope="module")
def content(planted):
    result = fit_content(planted, WINDOW, k=10, seed=3)
    yield result
    result.unpersist()


def test_als_beats_popularity_on_planted_groups(content) -> None:
    metrics = content.metrics
    print(metrics)
    assert metrics["users_evaluated"] >= 280
    # Measured over data seeds 1-5: ALS 0.21-0.22, popularity 0.08-0.09 (it serves only the
    # largest group; ALS serves every group), i.e. 2.5-2.9x and +0.13-0.15.
    assert metrics["als_precision_at_k"] > 0.15
    assert metrics["als_precision_at_k"] >= 1.5 * metrics["popularity_precision_at_k"]
    assert metrics["als_precision_at_k"] - metrics["popularity_precision_at_k"] > 0.1
    assert metrics["coverage"] > 0.95
    assert content.popular[0].startswith("i0")  # the largest group's items are the most popular


def test_recommendations_exclude_seen_items_and_follow_the_group(content) -> None:
    recs = {row["user_id"]: list(row["items"]) for row in content.recommendations.collect()}
    seen = {(row["user_id"], row["content_id"]) for row in content.interactions.collect()}
    assert "solo" in recs and len(recs) == sum(GROUP_SIZES) + 2
    assert all(len(items) == 10 for items in recs.values())
    assert set(recs["reader"]) == {_item(index)[0] for index in range(50, 60)}
    assert not any((user, item) in seen for user, items in recs.items() for item in items)
    # u299 is in the last (smallest) group: its items 50-59 lead its list.
    assert sum(item >= "i50" for item in recs["u299"][:3]) >= 2
    # Without the exclusion, a user's own favourites come back.
    again = {row["user_id"]: list(row["items"]) for row in top_items(content.fit, 5, exclude_seen=False).collect()}
    assert all(len(items) == 5 for items in again.values())
    assert sum((user, item) in seen for user, items in again.items() for item in items) > len(again)


def test_category_affinity_shrinks_thin_evidence(content) -> None:
    assert content.default_categories == ["news", "sport", "culture"]  # the tenant's, for users with no history
    shrunk = {row["user_id"]: list(row["categories"]) for row in content.categories.collect()}  # prior 5
    assert shrunk["u299"][0] == "science"  # ~10 interactions mostly in the rarest category: keeps it
    assert shrunk["solo"][0] == "news"  # one interaction: the tenant's favourite leads
    assert "science" in shrunk["solo"]  # ... but their own evidence still counts
    unshrunk = {row["user_id"]: list(row["categories"])
                for row in category_affinity(content.interactions, 3, 0.0).collect()}
    assert unshrunk["solo"][0] == "science"  # no prior: their one interaction decides


def test_interactions_count_calibration_events_per_user_and_item(spark) -> None:
    day, later = WINDOW.cutoff, WINDOW.cutoff + timedelta(days=1)
    rows = [_row("a", day, "x", "news"), _row("a", day, "x", "news"), _row("a", day, "x", "sport"),
            _row("b", day, "x", "news"), _row("a", later, "y", "news"), _row("a", day, None, None, "Home")]
    frame = _events(spark, rows)
    got = {(r.user_id, r.content_id): (r.content_category, r.weight)
           for r in interactions(frame, WINDOW).collect()}
    assert got == {("a", "x"): ("news", 3.0), ("b", "x"): ("news", 1.0)}
    scaled = {r.user_id: r.weight for r in interactions(frame, WINDOW, log_scale=True).collect()}
    assert scaled["a"] == pytest.approx(1.3862944)  # log1p(3)


def test_tiny_input_is_a_fit_error(spark) -> None:
    rows = [_row("only", WINDOW.cutoff, "x", "news"), _row("only", WINDOW.cutoff, "y", "news")]
    frame = _events(spark, rows)
    with pytest.raises(FitError, match="1 user"):
        train_als(interactions(frame, WINDOW))
    with pytest.raises(FitError, match="too few content interactions"):
        fit_content(frame, WINDOW)


def test_precision_at_k() -> None:
    held = {"a": {"x", "y"}, "b": {"z"}, "c": set()}
    assert precision_at_k({"a": ["x", "q", "y"], "b": ["q"]}, held, k=2) == pytest.approx((1 / 2 + 0) / 2)
    assert precision_at_k({}, held, k=10) == 0.0
    assert precision_at_k({"a": ["x"]}, {"c": set()}) is None
