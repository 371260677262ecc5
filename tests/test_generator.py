"""The synthetic generator: deterministic bytes, well-formed Segment messages, and data that
follows the truth it reports (so models can later be checked against it)."""

from __future__ import annotations

import json
import random
import statistics
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from retain.commands.generate import generate_command
from retain.generator import GeneratorError, GeneratorParams, generate

START = datetime(2025, 3, 1)  # spans the American and European DST changes
RESPONSES = {"Email Opened": "Email Delivered", "Push Notification Tapped": "Push Notification Received"}


def _parse_ts(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value[:-1]).replace(tzinfo=timezone.utc)


def _files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> dict:
    """2,000 users over 90 days: the scale the generator must handle in seconds."""
    out = tmp_path_factory.mktemp("gen")
    report = generate("acme", 2000, 90, 11, out, start=START)
    messages = []
    for path in report.files:
        with open(path, encoding="utf-8") as handle:
            messages.append([json.loads(line) for line in handle])
    users = {u["user_id"]: u for u in map(json.loads, (out / "users.ndjson").read_text().splitlines())}
    truth = json.loads((out / "truth.json").read_text())
    return {"report": report, "files": messages, "messages": [m for f in messages for m in f],
            "users": users, "truth": truth, "out": out}


# -- determinism and files ----------------------------------------------------------------------
def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    first = generate("acme", 150, 21, 5, tmp_path / "a", start=START, events_per_file=700)
    generate("acme", 150, 21, 5, tmp_path / "b", start=START, events_per_file=700)
    generate("acme", 150, 21, 6, tmp_path / "c", start=START, events_per_file=700)
    a, b, c = (_files(tmp_path / name) for name in "abc")
    assert len(first.files) > 1 and set(a) >= {"truth.json", "users.ndjson", "events-00001.ndjson"}
    assert a == b
    assert a["events-00001.ndjson"] != c["events-00001.ndjson"]
    assert a["users.ndjson"] != c["users.ndjson"]


def test_files_hold_at_most_the_limit_in_sequence(tmp_path: Path) -> None:
    report = generate("acme", 120, 14, 3, tmp_path, start=START, events_per_file=250)
    assert [p.name for p in report.files] == [f"events-{n:05d}.ndjson" for n in range(1, len(report.files) + 1)]
    sizes = [len(p.read_text().splitlines()) for p in report.files]
    assert all(size == 250 for size in sizes[:-1]) and 0 < sizes[-1] <= 250
    assert sum(sizes) == report.events


def test_a_used_directory_is_refused_unless_overwritten(tmp_path: Path) -> None:
    generate("acme", 50, 7, 1, tmp_path, start=START, events_per_file=40)
    with pytest.raises(GeneratorError, match="already holds generated events"):
        generate("acme", 50, 7, 1, tmp_path, start=START)
    report = generate("acme", 50, 7, 1, tmp_path, start=START, overwrite=True)
    assert sorted(tmp_path.glob("events-*.ndjson")) == report.files == [tmp_path / "events-00001.ndjson"]


@pytest.mark.parametrize("users, days", [(0, 10), (10, 0)])
def test_sizes_below_one_are_refused(tmp_path: Path, users: int, days: int) -> None:
    with pytest.raises(GeneratorError, match="at least 1"):
        generate("acme", users, days, 1, tmp_path, start=START)


# -- structure ----------------------------------------------------------------------------------
def test_every_message_is_a_well_formed_segment_message(dataset: dict) -> None:
    truth, messages = dataset["truth"], dataset["messages"]
    start, end = _parse_ts(truth["window"]["start"]), _parse_ts(truth["window"]["end"])
    assert (start, end - start) == (START.replace(tzinfo=timezone.utc), timedelta(days=90))
    ids = set()
    for m in messages:
        assert m["type"] in ("track", "page", "identify")
        assert m["userId"].startswith("u") and m["userId"] in dataset["users"]
        assert m["anonymousId"] is None or len(m["anonymousId"]) == 36
        ids.add(m["messageId"])
        assert uuid.UUID(m["messageId"]).version == 5
        at, sent = _parse_ts(m["timestamp"]), _parse_ts(m["sentAt"])
        assert start <= at < end and timedelta(0) <= sent - at <= timedelta(seconds=5)
        context = m["context"]
        assert context["library"]["name"] == "retain-generator"
        assert context["channel"] in ("web", "mobile", "email", "push")
        ZoneInfo(context["timezone"])
        if m["type"] == "track":
            assert m["event"] and isinstance(m["properties"], dict)
        elif m["type"] == "page":
            assert m["name"] and m["properties"]["url"].endswith(m["properties"]["path"])
        else:
            assert m["traits"]["email"] == f"{m['userId']}@example.com"
    assert len(ids) == len(messages) == truth["counts"]["events"]
    identified = Counter(m["userId"] for m in messages if m["type"] == "identify")
    assert identified == Counter(dict.fromkeys(dataset["users"], 1))
    assert dict(Counter(m.get("event") or m["type"] for m in messages)) == truth["counts"]["by_event"]


def test_messages_are_chronological_within_and_across_files(dataset: dict) -> None:
    stamps = [m["timestamp"] for m in dataset["messages"]]  # same-width ISO strings sort as times
    assert stamps == sorted(stamps)
    assert all(len(f) <= 50_000 for f in dataset["files"]) and len(dataset["files"]) >= 2


def test_orders_carry_positive_revenue_in_cents(dataset: dict) -> None:
    orders = [m["properties"] for m in dataset["messages"] if m.get("event") == "Order Completed"]
    assert orders
    assert len({o["order_id"] for o in orders}) == len(orders)
    for order in orders:
        assert order["currency"] == "USD" and order["revenue"] > 0
        assert round(order["revenue"], 2) == order["revenue"]


def test_responses_follow_their_sends(dataset: dict) -> None:
    seen: dict[tuple, str] = {}
    responses = Counter()
    for m in dataset["messages"]:
        event = m.get("event")
        key = (m["userId"], m.get("properties", {}).get("campaign_id"))
        if event in ("Email Delivered", "Push Notification Received"):
            assert m["context"]["campaign"]["name"] == m["properties"]["campaign_name"]
            seen[key + (event,)] = m["timestamp"]
        elif event in RESPONSES:
            sent = seen[key + (RESPONSES[event],)]
            assert sent < m["timestamp"]
            seen[key + (event,)] = m["timestamp"]
            responses[key + (event,)] += 1
        elif event == "Email Link Clicked":
            assert seen[key + ("Email Opened",)] < m["timestamp"]
    assert responses and max(responses.values()) == 1


# -- the data follows its truth ------------------------------------------------------------------
def _pages_by_user(dataset: dict) -> dict[str, list[dict]]:
    pages = defaultdict(list)
    for m in dataset["messages"]:
        if m["type"] == "page":
            pages[m["userId"]].append(m)
    return pages


def test_active_days_orders_and_first_visits_match_users_truth(dataset: dict) -> None:
    pages = _pages_by_user(dataset)
    orders = Counter(m["userId"] for m in dataset["messages"] if m.get("event") == "Order Completed")
    for user_id, user in dataset["users"].items():
        zone = ZoneInfo(user["timezone"])
        days = {_parse_ts(p["timestamp"]).astimezone(zone).date() for p in pages[user_id]}
        assert len(days) == user["visits"], user_id
        assert pages[user_id][0]["timestamp"] == user["first_visit"]
        assert orders[user_id] == user["orders"]


def _reference_repeat_visits(params: GeneratorParams, days: int, n: int, rng: random.Random) -> list[int]:
    """Repeat active days of an independent BG/NBD simulation with the same parameters."""
    counts = []
    for _ in range(n):
        lam = rng.gammavariate(params.r, 1 / params.alpha)
        p = rng.betavariate(params.a, params.b)
        t = rng.uniform(0, days)
        last, x = int(t), 0
        while True:
            t += rng.expovariate(lam)
            if t >= days:
                break
            if int(t) != last:
                last, x = int(t), x + 1
                if rng.random() < p:
                    break
        counts.append(x)
    return counts


def test_repeat_visits_follow_bgnbd(dataset: dict) -> None:
    params = GeneratorParams()
    users = list(dataset["users"].values())
    assert statistics.mean(u["lambda"] for u in users) == pytest.approx(params.r / params.alpha, rel=0.15)
    assert statistics.mean(u["p_dropout"] for u in users) == pytest.approx(params.a / (params.a + params.b), rel=0.15)
    observed = [u["repeat_visits"] for u in users]
    reference = _reference_repeat_visits(params, 90, 20_000, random.Random(1))
    zero = sum(x == 0 for x in observed) / len(observed)
    assert zero == pytest.approx(sum(x == 0 for x in reference) / len(reference), abs=0.05)
    assert statistics.mean(observed) == pytest.approx(statistics.mean(reference), rel=0.2)
    alive = [u for u in users if u["alive_at_end"]]
    assert 0.2 < len(alive) / len(users) < 0.95


def test_order_values_follow_gamma_gamma(dataset: dict) -> None:
    by_user = defaultdict(list)
    for m in dataset["messages"]:
        if m.get("event") == "Order Completed":
            by_user[m["userId"]].append(m["properties"]["revenue"])
    values = [v for vs in by_user.values() for v in vs]
    expected = dataset["truth"]["params"]["gamma_gamma"]["mean_order_value"]
    assert statistics.mean(values) == pytest.approx(expected, rel=0.2)
    repeat = [u for u in by_user if len(by_user[u]) >= 2]
    truth = [dataset["users"][u]["mean_spend"] for u in repeat]
    assert statistics.correlation(truth, [statistics.mean(by_user[u]) for u in repeat]) > 0.5


def test_channel_responses_follow_each_users_propensity(dataset: dict) -> None:
    users = dataset["users"]
    for send, response, channel in (("Email Delivered", "Email Opened", "email"),
                                    ("Push Notification Received", "Push Notification Tapped", "push")):
        sends = [m["userId"] for m in dataset["messages"] if m.get("event") == send]
        expected = sum(users[u]["channels"][channel]["propensity"] for u in sends)
        observed = sum(1 for m in dataset["messages"] if m.get("event") == response)
        assert all(users[u]["channels"][channel]["subscribed"] for u in sends)
        assert observed == pytest.approx(expected, rel=0.15), channel


def _hours_apart(a: int, b: int) -> int:
    return min((a - b) % 24, (b - a) % 24)


def test_visits_happen_at_the_preferred_hour_in_the_users_time_zone(dataset: dict) -> None:
    local_hits = utc_hits = total = 0
    for user_id, pages in _pages_by_user(dataset).items():
        user = dataset["users"][user_id]
        zone = ZoneInfo(user["timezone"])
        for page in pages:
            if page["name"] != "Home":
                continue
            at = _parse_ts(page["timestamp"])
            local = at.astimezone(zone)
            if local.weekday() >= 5:
                continue
            total += 1
            local_hits += _hours_apart(local.hour, user["preferred_hour"]) <= 1
            utc_hits += _hours_apart(at.hour, user["preferred_hour"]) <= 1
    assert local_hits / total > 0.55
    assert local_hits / total > utc_hits / total + 0.2


def test_most_viewed_category_is_the_top_affinity_for_most_users(dataset: dict) -> None:
    views = defaultdict(Counter)
    for m in dataset["messages"]:
        category = m.get("properties", {}).get("category")
        if m["type"] == "page" and category:
            views[m["userId"]][category] += 1
    engaged = [u for u, counts in views.items() if sum(counts.values()) >= 5]
    agree = sum(views[u].most_common(1)[0][0] == dataset["users"][u]["top_category"] for u in engaged)
    assert len(engaged) > 200 and agree / len(engaged) > 0.5


def test_truth_reports_parameters_window_and_counts(dataset: dict) -> None:
    truth = dataset["truth"]
    bgnbd = truth["params"]["bgnbd"]
    assert (bgnbd["r"], bgnbd["alpha"], bgnbd["a"], bgnbd["b"], bgnbd["unit"]) == (0.9, 8.0, 0.8, 2.5, "days")
    assert truth["params"]["gamma_gamma"]["p"] == 6.0 and truth["params"]["channels"]["email"]["beta_a"] == 2.0
    assert len(truth["catalog"]) == 60 and len({i["category"] for i in truth["catalog"]}) == 8
    assert truth["counts"]["users"] == len(dataset["users"]) == 2000
    assert truth["seed"] == 11 and truth["window"]["days"] == 90
    assert truth["files"] == [p.name for p in dataset["report"].files]


# -- command ------------------------------------------------------------------------------------
def test_generate_command_prints_one_json_document(tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir"
    result = CliRunner().invoke(generate_command, ["--tenant", "acme", "--users", "30", "--days", "10", "--seed", "4",
                                                   "--out", str(out), "--start", "2025-03-01", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["users"] == 30 and document["start"].startswith("2025-03-01")
    assert document["params"]["bgnbd"]["r"] == 0.9 and document["events"] > 0
    assert (out / "truth.json").is_file() and (out / "events-00001.ndjson").is_file()
    text = CliRunner().invoke(generate_command, ["--tenant", "acme", "--users", "30", "--days", "10",
                                                 "--out", str(tmp_path / "t")])
    assert text.exit_code == 0 and "BG/NBD" in text.stdout


def test_generate_command_rejects_zero_users(tmp_path: Path) -> None:
    result = CliRunner().invoke(generate_command, ["--tenant", "acme", "--users", "0", "--days", "10",
                                                   "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--users" in result.output
