"""Turning a user's visits and the tenant's campaigns into Segment messages.

A visit is a session: a landing page, one or more content views (a page, plus a track event for
videos and products) and sometimes an order. A campaign send is a delivery event, maybe followed by
the user's response at a time drawn from their hour-of-week preference.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from retain.generator.params import ContentItem, GeneratorParams
from retain.generator.population import DAY_MS, User, local_date, local_seconds, local_to_ms
from retain.generator.writer import LIBRARY, EventWriter

SITE = "https://www.example.com"


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    channel: str  # "email" or "push"
    name: str
    subject: str
    ms: int


def _context(user: User, channel: str, **extra: Any) -> dict[str, Any]:
    return {"timezone": user.timezone, "channel": channel, "library": LIBRARY, **extra}


def _sent_delay(rng: random.Random) -> int:
    # Most messages leave the device at once; some wait in a batch for a few seconds.
    return 0 if rng.random() < 0.5 else int(rng.uniform(0.0, 5000.0))


def _gap(rng: random.Random) -> int:
    return int(min(5_000 + rng.expovariate(1 / 45_000), 300_000))


class Renderer:
    """Emits the messages of visits and sends into an :class:`EventWriter`."""

    def __init__(self, rng: random.Random, params: GeneratorParams, catalog: tuple[ContentItem, ...],
                 writer: EventWriter) -> None:
        self.rng = rng
        self.params = params
        self.writer = writer
        self.by_category: dict[str, list[ContentItem]] = {}
        for item in catalog:
            self.by_category.setdefault(item.category, []).append(item)
        self.weights = {cat: [item.popularity for item in items] for cat, items in self.by_category.items()}

    # -- visits --------------------------------------------------------------------------------
    def visit(self, user: User, ordinal: int, ms: int) -> None:
        rng, emit = self.rng, self.writer.emit
        channel = "mobile" if rng.random() < user.mobile_share else "web"
        first = ordinal == 0
        anonymous = user.anonymous_id if first else None
        # A session ends by local midnight, so that one visit is one active day in the user's time zone.
        zone = user.zone
        limit = local_to_ms(local_date(ms, zone) + timedelta(days=1), 0.0, zone) - 1_000
        # Some users arrive anonymously: their first page carries the device's id, which identify links.
        emit(ms, _sent_delay(rng), {
            "type": "page", "name": "Home", "userId": user.user_id,
            "anonymousId": anonymous, "context": _context(user, channel, page={"path": "/", "url": SITE + "/"}),
            "properties": {"path": "/", "url": SITE + "/", "title": "Home"},
        })
        if first:
            emit(ms + 500, _sent_delay(rng), {
                "type": "identify", "userId": user.user_id, "anonymousId": anonymous,
                "context": _context(user, channel),
                "traits": {"email": f"{user.user_id}@example.com", "plan": user.plan},
            })
        views = 1
        while rng.random() < self.params.extra_views_mean / (1 + self.params.extra_views_mean) and views < 6:
            views += 1
        for _ in range(views):
            ms += _gap(rng)
            if ms + 1_500 > limit:
                return
            self._view(user, channel, ms)
            ms += 2_000
        if rng.random() < user.purchase_prob:
            ms += _gap(rng)
            # Gamma-Gamma: the order's value is Gamma(p, rate nu), nu being this user's.
            revenue = max(round(rng.gammavariate(self.params.p, 1.0 / user.nu), 2), 0.01)
            if ms > limit:
                return
            user.orders += 1
            order_id = f"o-{user.user_id}-{user.orders:04d}"
            if emit(ms, _sent_delay(rng), {
                "type": "track", "event": "Order Completed", "userId": user.user_id,
                "context": _context(user, channel),
                "properties": {"order_id": order_id, "revenue": revenue, "currency": "USD"},
            }):
                user.revenue += revenue
            else:
                user.orders -= 1

    def _view(self, user: User, channel: str, ms: int) -> None:
        rng = self.rng
        category = rng.choices(self.params.categories, user.affinity)[0]
        item = rng.choices(self.by_category[category], self.weights[category])[0]
        url = SITE + item.path
        self.writer.emit(ms, _sent_delay(rng), {
            "type": "page", "name": item.title, "userId": user.user_id,
            "context": _context(user, channel, page={"path": item.path, "url": url}),
            "properties": {"path": item.path, "url": url, "title": item.title,
                           "content_id": item.content_id, "category": item.category},
        })
        if item.kind == "article":
            return
        event = "Video Content Playing" if item.kind == "video" else "Product Viewed"
        properties: dict[str, Any] = {"content_id": item.content_id, "category": item.category, "title": item.title}
        if item.kind == "product":
            properties["product_id"] = item.content_id
        self.writer.emit(ms + 1_500, _sent_delay(rng), {
            "type": "track", "event": event, "userId": user.user_id,
            "context": _context(user, channel, page={"path": item.path, "url": url}),
            "properties": properties,
        })

    # -- campaigns -----------------------------------------------------------------------------
    def send(self, user: User, campaign: Campaign) -> None:
        rng, emit = self.rng, self.writer.emit
        # A blast takes minutes to reach everyone.
        delivered = campaign.ms + int(min(rng.expovariate(1 / 120_000), 1_800_000))
        ctx_campaign = {"name": campaign.name, "source": "retain", "medium": campaign.channel}
        properties: dict[str, Any] = {"campaign_id": campaign.campaign_id, "campaign_name": campaign.name}
        if campaign.channel == "email":
            properties |= {"email_id": f"{campaign.campaign_id}-{user.user_id}", "email_subject": campaign.subject}
        context = _context(user, campaign.channel, campaign=ctx_campaign)
        delivery = "Email Delivered" if campaign.channel == "email" else "Push Notification Received"
        if not emit(delivered, 0, {"type": "track", "event": delivery, "userId": user.user_id,
                                   "context": context, "properties": properties}):
            return
        propensity = user.email_propensity if campaign.channel == "email" else user.push_propensity
        if rng.random() >= propensity:
            return
        at = self._response_ms(user, delivered, quick=0.4 if campaign.channel == "email" else 0.7)
        response = "Email Opened" if campaign.channel == "email" else "Push Notification Tapped"
        if not emit(at, _sent_delay(rng), {"type": "track", "event": response, "userId": user.user_id,
                                           "context": context, "properties": properties}):
            return
        if campaign.channel == "email" and rng.random() < self.params.email_click_given_open:
            emit(at + 2_000 + int(rng.expovariate(1 / 60_000)), _sent_delay(rng), {
                "type": "track", "event": "Email Link Clicked", "userId": user.user_id, "context": context,
                "properties": properties | {"link_url": f"{SITE}/?utm_campaign={campaign.campaign_id}"},
            })

    def _response_ms(self, user: User, delivered: int, quick: float) -> int:
        """When the user responds: soon, or at their next preferred time within a day."""
        rng = self.rng
        if rng.random() < quick:
            return delivered + 5_000 + int(rng.expovariate(1 / 900_000))
        zone = user.zone
        day = local_date(delivered, zone)
        seconds = local_seconds(rng, user, day.weekday() >= 5, self.params.background_activity)
        at = local_to_ms(day, seconds, zone)
        if at <= delivered:
            day += timedelta(days=1)
            at = local_to_ms(day, local_seconds(rng, user, day.weekday() >= 5, self.params.background_activity), zone)
        return max(at, delivered + 5_000) if at - delivered < 2 * DAY_MS else delivered + 5_000
