"""``generate``: a synthetic tenant's behaviour events, and the truth that produced them."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from retain import __version__
from retain.errors import RetainError
from retain.generator.params import CHANNELS, GeneratorParams, catalog
from retain.generator.population import DAY_MS, User, populate
from retain.generator.sessions import Campaign, Renderer
from retain.generator.writer import EventWriter, iso_ms

TRUTH_FILE = "truth.json"
USERS_FILE = "users.ndjson"
_CAMPAIGN_HOUR_UTC = {"email": 14, "push": 17}


class GeneratorError(RetainError):
    """The generator was asked for something it cannot produce (bad sizes, a used directory)."""


@dataclass
class GenerationReport:
    tenant: str
    seed: int
    users: int
    days: int
    start: datetime
    end: datetime
    out_dir: Path
    files: list[Path]
    events: int
    by_event: dict[str, int]
    truth: dict[str, Any]
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant, "seed": self.seed, "users": self.users, "days": self.days,
            "start": self.start.isoformat(), "end": self.end.isoformat(), "out_dir": str(self.out_dir),
            "files": [str(path) for path in self.files], "truth_file": str(self.out_dir / TRUTH_FILE),
            "users_file": str(self.out_dir / USERS_FILE), "events": self.events, "by_event": self.by_event,
            "params": self.truth, "summary": self.summary, "seconds": round(self.seconds, 3),
        }


def _window_start(start: datetime | None, days: int) -> datetime:
    if start is None:
        # A window ending today: old events would fall outside the event store's TTL.
        today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        return today - timedelta(days=days)
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    return start.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def _campaigns(rng: random.Random, params: GeneratorParams, first_day: date, days: int,
               start_ms: int) -> list[Campaign]:
    per_week = {"email": params.email_per_week, "push": params.push_per_week}
    offsets = {"email": 1, "push": 0}  # Tuesdays and Fridays for email, Mondays and Thursdays for push
    campaigns: list[Campaign] = []
    for day_index in range(days):
        day = first_day + timedelta(days=day_index)
        for channel in CHANNELS:
            n = per_week[channel]
            weekdays = {(offsets[channel] + i * 7 // n) % 7 for i in range(n)} if n > 0 else set()
            if day.weekday() not in weekdays:
                continue
            category = rng.choice(params.categories)
            number = sum(1 for c in campaigns if c.channel == channel) + 1
            minutes = _CAMPAIGN_HOUR_UTC[channel] * 60 + rng.randint(-30, 30)
            campaigns.append(Campaign(
                campaign_id=f"cmp-{channel[0]}{number:04d}", channel=channel,
                name=f"{channel} {day.isoformat()} {category}", subject=f"This week in {category}",
                ms=start_ms + day_index * DAY_MS + minutes * 60_000))
    return campaigns


def _clean(out_dir: Path, overwrite: bool) -> None:
    stale = sorted(out_dir.glob("events-*.ndjson"))
    if stale and not overwrite:
        raise GeneratorError(f"{out_dir} already holds generated events ({stale[0].name}, ...); "
                             "choose an empty directory or overwrite (--overwrite)")
    for path in stale:
        path.unlink()


def _g(value: float) -> float:
    return float(f"{value:.6g}")


def _user_truth(user: User, params: GeneratorParams) -> dict[str, Any]:
    top = max(range(len(params.categories)), key=lambda i: user.affinity[i])
    return {
        "user_id": user.user_id, "timezone": user.timezone, "plan": user.plan,
        "lambda": _g(user.lam), "p_dropout": _g(user.p_dropout), "alive_at_end": user.alive_at_end,
        "first_visit": iso_ms(user.visits_ms[0]), "last_visit": iso_ms(user.visits_ms[-1]),
        "visits": len(user.visits_ms), "repeat_visits": len(user.visits_ms) - 1,
        "nu": _g(user.nu), "mean_spend": _g(params.p / user.nu), "purchase_prob": _g(user.purchase_prob),
        "orders": user.orders, "revenue": round(user.revenue, 2),
        "channels": {"email": {"propensity": _g(user.email_propensity), "subscribed": user.email_subscribed},
                     "push": {"propensity": _g(user.push_propensity), "subscribed": user.push_subscribed}},
        "category_affinity": {cat: _g(w) for cat, w in zip(params.categories, user.affinity)},
        "top_category": params.categories[top],
        "preferred_hour": user.preferred_hour, "preferred_hour_weekend": user.preferred_hour_weekend,
        "mobile_share": _g(user.mobile_share), "anonymous_id": user.anonymous_id,
    }


def generate(tenant: str, users: int, days: int, seed: int, out_dir: Path, start: datetime | None = None,
             params: GeneratorParams | None = None, events_per_file: int = 50_000,
             overwrite: bool = False) -> GenerationReport:
    """Write ``users`` users' behaviour over ``days`` days as Segment NDJSON files in ``out_dir``.

    The window starts at midnight UTC of ``start``'s date (default: ``days`` days before today).
    The same arguments give byte-identical files. Besides ``events-NNNNN.ndjson``, writes
    ``truth.json`` (true parameters, window, counts) and ``users.ndjson`` (each user's true traits).
    """
    if users < 1 or days < 1 or events_per_file < 1:
        raise GeneratorError(f"users, days and events per file must be at least 1 (got {users}, {days}, "
                             f"{events_per_file})")
    if not tenant:
        raise GeneratorError("tenant must not be empty")
    began = time.monotonic()
    params = params or GeneratorParams()
    window_start = _window_start(start, days)
    window_end = window_start + timedelta(days=days)
    start_ms = int(window_start.timestamp() * 1000)
    end_ms = start_ms + days * DAY_MS
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clean(out_dir, overwrite)

    # Independent streams: how messages are rendered never changes who the users are.
    population = populate(random.Random(f"retain-generator:{seed}:population"), params, users,
                          window_start.date(), days, start_ms, end_ms)
    campaigns = _campaigns(random.Random(f"retain-generator:{seed}:campaigns"), params,
                           window_start.date(), days, start_ms)
    items = catalog(params)
    writer = EventWriter(out_dir, tenant, seed, end_ms, events_per_file)
    render_rng = random.Random(f"retain-generator:{seed}:render")
    renderer = Renderer(render_rng, params, items, writer)

    # What starts on each UTC day; campaigns sort before visits at the same instant.
    buckets: list[list[tuple[int, int, int, int]]] = [[] for _ in range(days)]
    for number, campaign in enumerate(campaigns):
        buckets[(campaign.ms - start_ms) // DAY_MS].append((campaign.ms, 0, number, 0))
    for user in population:
        for ordinal, ms in enumerate(user.visits_ms):
            buckets[(ms - start_ms) // DAY_MS].append((ms, 1, user.index, ordinal))
    for day_index, bucket in enumerate(buckets):
        bucket.sort()
        for ms, kind, ref, ordinal in bucket:
            if kind == 1:
                renderer.visit(population[ref], ordinal, ms)
                continue
            campaign = campaigns[ref]
            reach = params.campaign_reach
            for user in population:
                subscribed = user.email_subscribed if campaign.channel == "email" else user.push_subscribed
                if subscribed and user.visits_ms[0] < campaign.ms and render_rng.random() < reach:
                    renderer.send(user, campaign)
        buckets[day_index] = []
        # Everything emitted later starts on a later day, so earlier messages are final.
        writer.flush_before(start_ms + (day_index + 1) * DAY_MS)
    writer.close()

    with open(out_dir / USERS_FILE, "w", encoding="utf-8", newline="\n") as handle:
        for user in population:
            handle.write(json.dumps(_user_truth(user, params), separators=(",", ":")) + "\n")
    summary = {
        "alive_at_end": sum(u.alive_at_end for u in population),
        "visits": sum(len(u.visits_ms) for u in population),
        "users_without_repeat_visit": sum(len(u.visits_ms) == 1 for u in population),
        "orders": sum(u.orders for u in population),
        "revenue": round(sum(u.revenue for u in population), 2),
        "campaigns": {channel: sum(c.channel == channel for c in campaigns) for channel in CHANNELS},
    }
    by_event = dict(sorted(writer.by_event.items()))
    truth = {
        "generator": {"name": "retain-generator", "version": __version__},
        "tenant": tenant, "seed": seed,
        "window": {"start": iso_ms(start_ms), "end": iso_ms(end_ms), "days": days},
        "params": params.truth(), "generator_params": params.to_dict(),
        "catalog": [{"content_id": i.content_id, "category": i.category, "kind": i.kind, "title": i.title}
                    for i in items],
        "counts": {"users": users, "events": writer.events, "by_event": by_event, "files": len(writer.files),
                   **summary},
        "first_event": iso_ms(writer.first_ms) if writer.first_ms is not None else None,
        "last_event": iso_ms(writer.last_ms) if writer.last_ms is not None else None,
        "files": [path.name for path in writer.files], "users_file": USERS_FILE,
    }
    (out_dir / TRUTH_FILE).write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return GenerationReport(tenant, seed, users, days, window_start, window_end, out_dir, list(writer.files),
                            writer.events, by_event, params.truth(), time.monotonic() - began, summary)
