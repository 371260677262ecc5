"""Profiles: activities from lake rows, scoring with a model or the tenant-less priors, and the
Spark batch scoring that writes them to Cassandra."""

from __future__ import annotations

import io
import json
from datetime import date, datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from retain.lake import open_lake
from retain.lake.flush import committed_files
from retain.models.store import ModelStore
from retain.profiles.activity import activity
from retain.profiles.model import ProfileModel, load_model
from retain.profiles.scoring import RUN_FIELDS, score
from retain.spark.scoring import score_tenant
from retain.spark.train import train_tenant
from retain.store.profiles import ProfileStore
from retain.tenancy.config import TenantConfig
from tests.lake_helpers import generated_lake

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


def lake_profiles(settings, tenant: str, model: ProfileModel, as_of: datetime) -> dict[str, dict]:
    """Profiles computed without Spark from the same lake files: what the streaming path does."""
    lake = open_lake(settings)
    files = committed_files(lake, tenant, None, as_of.date().isoformat())
    table = pa.concat_tables([pq.read_table(io.BytesIO(lake.get(f))) for f in files])
    for column in ("event_time", "received_at"):  # as epoch milliseconds, as the event store has them
        table = table.set_column(table.schema.get_field_index(column), column, table[column].cast(pa.int64()))
    frame = table.to_pandas()
    users = [activity(uid, {c: group[c].tolist() for c in group.columns}, int(as_of.timestamp() * 1000))
             for uid, group in frame.groupby("user_id")]
    return {p["user_id"]: p for p in score(model, users)}


def test_batch_scoring_writes_the_profiles_the_plain_functions_compute(spark, data_redis, schema, test_settings,
                                                                       tmp_path) -> None:
    settings = test_settings.replace(lake_url=f"file://{tmp_path}/lake", model_store_url=f"file://{tmp_path}/models")
    tenant = f"score-{tmp_path.name[-8:]}".lower()
    generated_lake(data_redis, settings, tenant, tmp_path / "gen", users=300, days=90, seed=5,
                   start=datetime(2025, 1, 1, tzinfo=timezone.utc))
    trained = train_tenant(spark, settings, tenant, TenantConfig(), cutoff=date(2025, 3, 1), holdout_days=30)
    assert trained.status == "published", trained.to_dict()
    model = load_model(ModelStore(settings), tenant, TenantConfig())
    assert model.version == trained.version and model.recommended, "the version carries ALS recommendations"
    as_of = datetime(2025, 4, 1, tzinfo=timezone.utc)
    report = score_tenant(spark, settings, tenant, model, as_of)
    expected = lake_profiles(settings, tenant, model, as_of)
    assert report.users == report.written == len(expected) > 250
    store = ProfileStore(schema)
    for user_id, want in expected.items():
        got = store.get(tenant, user_id)
        assert got is not None, f"no profile for {user_id}"
        assert got["version"] == want["version"]
        for name in want:
            if name not in RUN_FIELDS:
                assert got[name] == want[name], f"{user_id}.{name}: batch {got[name]!r}, plain {want[name]!r}"
    assert sum(report.churn_risk.values()) == report.users

    # A profile the streaming path built from newer events stays: rescoring cannot overwrite it.
    user_id = next(iter(expected))
    newer = {**expected[user_id], "version": expected[user_id]["version"] + 10**9, "p_alive": 0.123}
    store.write([newer])
    score_tenant(spark, settings, tenant, model, as_of)
    assert store.get(tenant, user_id)["p_alive"] == 0.123
