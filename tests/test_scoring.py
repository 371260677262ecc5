"""Profiles from plain functions: activities from lake-shaped rows, scoring with the tenant-less
priors. (The Spark batch scoring is tested against the streaming rebuild in test_profiles.py.)"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from retain.profiles.activity import activity
from retain.profiles.model import ProfileModel
from retain.profiles.scoring import score
from retain.tenancy.config import TenantConfig

DAY = 86_400_000
T0 = int(datetime(2025, 3, 3, 9, tzinfo=timezone.utc).timestamp() * 1000)  # a Monday, 09:00 UTC


def rows(*events: dict) -> dict[str, list]:
    """Lake-shaped columns from a few events (fields not given are empty)."""
    names = ("type", "name", "event_time", "received_at", "visit", "revenue", "channel", "send", "response",
             "content_id", "content_category", "timezone")
    base = {"type": "page", "name": None, "received_at": None, "visit": False, "revenue": None, "channel": None,
            "send": False, "response": False, "content_id": None, "content_category": None, "timezone": None}
    full = [{**base, "received_at": e["event_time"] + 5, **e} for e in events]
    return {n: [e[n] for e in full] for n in names}


def test_activity_counts_days_channels_hours_and_ignores_the_future() -> None:
    columns = rows(
        {"event_time": T0, "visit": True, "timezone": "Europe/Paris"},
        {"event_time": T0 + 3 * 3600_000, "visit": True},  # same day: one active day
        {"event_time": T0 + 2 * DAY, "type": "track", "name": "Order Completed", "visit": True, "revenue": 30.0},
        {"event_time": T0 + 3 * DAY, "type": "track", "name": "Email Delivered", "channel": "email", "send": True},
        {"event_time": T0 + 3 * DAY + 60_000, "type": "track", "name": "Email Opened", "channel": "email",
         "response": True},
        {"event_time": T0 + 4 * DAY, "type": "track", "name": "Video Playback Started", "visit": True,
         "content_id": "v1", "content_category": "drama"},
        {"event_time": T0 + 30 * DAY, "visit": True},  # after as_of
    )
    user = activity("u1", columns, as_of_ms=T0 + 10 * DAY)
    assert (user.active_days, user.last_day - user.first_day) == (3, 4)
    assert (user.transactions, user.revenue) == (1, 30.0)
    assert user.sends == {"email": 1} and user.responses == {"email": 1}
    assert user.hours.sum() == 5, "four visits and one response, the event after as_of left out"
    assert user.hours[10] == 1, "09:00 UTC on a Monday is 10:00 in Paris (bucket 10)"
    assert user.timezone == "Europe/Paris" and user.seen == {"v1"} and user.categories == {"drama": 1}
    assert {"event:Order Completed", "category:drama"} <= user.actions
    assert user.snapshot_us == (T0 + 4 * DAY + 5) * 1000, "newest receive time among the events used"


def test_priors_score_every_kind_of_user_and_say_so() -> None:
    model = ProfileModel.priors("acme", TenantConfig())
    as_of = T0 + 20 * DAY
    users = [activity("regular", rows(*({"event_time": T0 + d * DAY, "visit": True} for d in range(0, 20, 2))), as_of),
             activity("gone", rows({"event_time": T0, "visit": True}, {"event_time": T0 + DAY, "visit": True}), as_of),
             activity("only-sends", rows({"event_time": T0, "type": "track", "name": "Email Delivered",
                                          "channel": "email", "send": True}), as_of),
             activity("nothing", rows(), as_of, snapshot_us=7)]
    profiles = {p["user_id"]: p for p in score(model, users)}
    assert all(p["model"] == "priors" and p["model_version"] is None for p in profiles.values())
    assert profiles["regular"]["p_return_h"] > profiles["gone"]["p_return_h"]
    assert profiles["regular"]["expected_visits_h"] > profiles["gone"]["expected_visits_h"]
    assert profiles["nothing"]["version"] == 7 and profiles["nothing"]["last_seen"] is None
    for p in profiles.values():
        assert 0 <= p["p_alive"] <= 1 and 0 <= p["p_return_h"] <= 1 and p["predicted_ltv"] >= 0
        assert p["churn_risk"] in ("low", "medium", "high")
        assert set(p["channel_scores"]) == {"email", "push", "web", "sms"} and p["best_channel"] in p["channel_scores"]
        assert 0 <= p["best_send_hour"]["hour"] < 24
        json.dumps(p)  # what the store and the API hand out


def test_rebuild_columns_are_the_lake_rows_columns() -> None:
    """The streaming rebuild builds only the columns a profile reads; they must equal the lake's."""
    from retain.events import Event, encode
    from retain.lake.schema import lake_row
    from retain.profiles.activity import COLUMNS
    from retain.profiles.rebuild import event_columns
    from retain.tenancy.config import classify

    config = TenantConfig()
    events = [
        Event(tenant_id="t", user_id="u", type="track", name="Order Completed", message_id="m1", timestamp=T0,
              received_at=T0 + 9, properties={"revenue": 12.5, "product_id": "p1", "category": "shoes"},
              context={"timezone": "Asia/Tokyo"}),
        Event(tenant_id="t", user_id="u", type="track", name="Email Opened", message_id="m2", timestamp=T0 + 1,
              received_at=T0 + 10, context={"timezone": 7}),
        Event(tenant_id="t", user_id="u", type="page", name="Home", message_id="m3", timestamp=T0 + 2,
              received_at=T0 + 11),
    ]
    columns = event_columns([encode(e).decode() for e in events], config)
    rows = [lake_row(e, classify(e, config), e.timestamp) for e in events]
    assert columns == {name: [row[name] for row in rows] for name in COLUMNS}
