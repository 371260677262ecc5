"""The true parameters of a synthetic tenant, and the fixed world its users live in.

Everything a model is later asked to recover is a parameter here, so a test can compare the fitted
value with the one that generated the data. Rates are per day; Gamma distributions are (shape, rate),
as in the papers, and converted to Python's (shape, scale) only where they are drawn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

CATEGORIES = ("news", "sports", "tech", "culture", "business", "travel", "food", "science")
CHANNELS = ("email", "push")
# Few enough to keep the data readable, spread enough that "best hour in the user's time zone"
# differs from the best hour in UTC by up to half a day.
TIMEZONES = ("America/New_York", "America/Los_Angeles", "Europe/Paris", "Europe/London", "Asia/Tokyo", "UTC")
PLANS = ("free", "plus", "premium")


@dataclass(frozen=True)
class GeneratorParams:
    """True parameters of the population; the defaults give a plausible media/commerce tenant."""

    # BG/NBD (Fader, Hardie & Lee 2005): lambda ~ Gamma(r, rate alpha) visits per day,
    # dropout probability after each repeat visit ~ Beta(a, b).
    r: float = 0.9
    alpha: float = 8.0
    a: float = 0.8
    b: float = 2.5
    # Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV"): order value z ~ Gamma(p, rate nu),
    # nu ~ Gamma(q, rate gamma); a user's mean order value is p / nu.
    p: float = 6.0
    q: float = 4.0
    gamma: float = 15.0
    # Probability that a visit ends in an order, per user ~ Beta(purchase_a, purchase_b).
    purchase_a: float = 2.0
    purchase_b: float = 8.0
    # Response propensity per channel ~ Beta: email opens per delivery, push taps per receipt.
    email_open_a: float = 2.0
    email_open_b: float = 18.0
    push_tap_a: float = 1.5
    push_tap_b: float = 12.0
    email_click_given_open: float = 0.3
    # Share of users reachable on each channel, and share of a campaign's channel audience targeted.
    email_optin: float = 0.85
    push_optin: float = 0.5
    campaign_reach: float = 0.7
    # Campaigns per week, per channel.
    email_per_week: int = 2
    push_per_week: int = 2
    # Dirichlet concentration of category affinities (below 1: most users have one or two favourites).
    affinity_concentration: float = 0.4
    # Content views per visit: 1 + Geometric with this mean of extra views.
    extra_views_mean: float = 1.5
    # Share of a user's activity drawn outside their preferred hours.
    background_activity: float = 0.1
    # Share of users whose first session is tracked anonymously before they identify.
    anonymous_first_share: float = 0.3
    content_items: int = 60
    categories: tuple[str, ...] = field(default=CATEGORIES)

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["categories"] = list(self.categories)
        return document

    def truth(self) -> dict[str, Any]:
        """The parameters grouped by the model that should recover them."""
        return {
            "bgnbd": {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b, "unit": "days",
                      "mean_lambda": self.r / self.alpha, "mean_dropout": self.a / (self.a + self.b)},
            "gamma_gamma": {"p": self.p, "q": self.q, "gamma": self.gamma,
                            "mean_order_value": self.p * self.gamma / (self.q - 1) if self.q > 1 else None},
            "purchase": {"a": self.purchase_a, "b": self.purchase_b},
            "channels": {
                "email": {"beta_a": self.email_open_a, "beta_b": self.email_open_b, "response": "Email Opened",
                          "click_given_open": self.email_click_given_open, "optin": self.email_optin,
                          "per_week": self.email_per_week},
                "push": {"beta_a": self.push_tap_a, "beta_b": self.push_tap_b, "response": "Push Notification Tapped",
                         "optin": self.push_optin, "per_week": self.push_per_week},
                "campaign_reach": self.campaign_reach,
            },
            "content": {"categories": list(self.categories), "items": self.content_items,
                        "affinity_concentration": self.affinity_concentration},
            "send_time": {"background_activity": self.background_activity},
        }


@dataclass(frozen=True)
class ContentItem:
    content_id: str
    category: str
    kind: str  # "article" (page only), "video" or "product" (page and a track event)
    title: str
    popularity: float

    @property
    def path(self) -> str:
        return f"/{self.category}/{self.content_id}"


_KINDS = ("article", "article", "video", "product")


def catalog(params: GeneratorParams) -> tuple[ContentItem, ...]:
    """The tenant's content: a fixed function of the parameters, not of the seed.

    Popularity within a category falls off like Zipf so that a few items dominate, as in real
    catalogues, which gives a recommender something to learn beyond category affinity.
    """
    items = []
    for index in range(params.content_items):
        category = params.categories[index % len(params.categories)]
        rank = index // len(params.categories) + 1
        kind = _KINDS[(index * 7 + rank) % len(_KINDS)]
        items.append(ContentItem(f"c{index + 1:04d}", category, kind, f"{category.title()} {kind} #{rank}",
                                 1.0 / rank))
    return tuple(items)
