"""Per-user summaries computed by Spark from the lake agree with a plain computation."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timezone

import pytest

from retain.lake import open_lake
from retain.lake.flush import read_events as read_lake
from retain.spark.features import Window, bgnbd_summaries, compressed, spend_summaries, visit_days
from retain.spark.lake import NoEvents, read_events
from tests.lake_helpers import generated_lake


@pytest.fixture
def lake_settings(test_settings, tmp_path):
    return test_settings.replace(lake_url=f"file://{tmp_path}/lake")


def test_summaries_match_a_plain_computation(spark, data_redis, lake_settings, tmp_path) -> None:
    tenant = "acme"
    generated_lake(data_redis, lake_settings, tenant, tmp_path / "gen", users=300, days=60, seed=3,
                   start=datetime(2025, 1, 1, tzinfo=timezone.utc))
    window = Window(cutoff=date(2025, 2, 14), holdout_days=14)
    events = read_events(spark, lake_settings, tenant)
    got = {r.user_id: (r.x, r.t_x, r.T, r.holdout_active_days)
           for r in bgnbd_summaries(visit_days(events, window), window).collect()}

    table = read_lake(open_lake(lake_settings), tenant).to_pylist()
    days = defaultdict(set)
    for row in table:
        if row["visit"]:
            days[row["user_id"]].add(date.fromisoformat(row["date"]))
    expected = {}
    for user, active in days.items():
        calibration = sorted(d for d in active if d <= window.cutoff)
        if not calibration:
            continue
        holdout = [d for d in active if window.cutoff < d <= window.holdout_end]
        first, last = calibration[0], calibration[-1]
        expected[user] = (len(calibration) - 1, (last - first).days, (window.cutoff - first).days, len(holdout))
    assert got == expected
    counts = {(r.x, r.t_x, r.T): r["count"] for r in compressed(
        bgnbd_summaries(visit_days(events, window), window)).collect()}
    assert sum(counts.values()) == len(expected)

    spend = {r.user_id: (r.transactions, r.mean_value) for r in spend_summaries(events, window).collect()}
    orders = defaultdict(list)
    for row in table:
        if row["revenue"] and date.fromisoformat(row["date"]) <= window.cutoff:
            orders[row["user_id"]].append(row["revenue"])
    assert set(spend) == set(orders)
    for user, values in orders.items():
        assert spend[user][0] == len(values) and spend[user][1] == pytest.approx(sum(values) / len(values))


def test_no_events_is_a_clear_error(spark, lake_settings) -> None:
    with pytest.raises(NoEvents, match="no events of tenant 'ghost'"):
        read_events(spark, lake_settings, "ghost")
