"""Users and their true behaviour: traits drawn from the population's distributions, and the days
they visit, simulated as a BG/NBD process.

Time runs in each user's own days: a visit on local day ``d`` happens on the calendar date
``start + d`` in the user's time zone, at a time of day drawn from their hour-of-week preference.
That makes "active days" the same thing for the generator and for a model that counts distinct
local dates, and lets the send-time model find the preferred hour in the user's time zone.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from retain.generator.params import PLANS, TIMEZONES, GeneratorParams

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
# No session lasts this long, so visits at least this far apart never interleave.
MIN_VISIT_SPACING_MS = 2 * HOUR_MS
# Where preferred hours cluster on weekdays: commute, lunch, evening.
_PEAK_HOURS = (7, 8, 12, 13, 18, 19, 20, 21, 22)
_PEAK_WEIGHTS = (3, 3, 2, 2, 2, 3, 4, 3, 2)


@dataclass(slots=True)
class User:
    """One user's true traits, their observed visits and what rendering them produced."""

    index: int
    user_id: str
    timezone: str
    plan: str
    lam: float
    p_dropout: float
    nu: float
    purchase_prob: float
    email_propensity: float
    push_propensity: float
    email_subscribed: bool
    push_subscribed: bool
    mobile_share: float
    affinity: list[float]
    peaks: list[tuple[float, float]]  # (local hour centre, weight) on weekdays
    weekend_shift: float
    anonymous_id: str | None
    visits_ms: list[int] = field(default_factory=list)
    alive_at_end: bool = True
    orders: int = 0
    revenue: float = 0.0

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def preferred_hour(self) -> int:
        return int(max(self.peaks, key=lambda peak: peak[1])[0]) % 24

    @property
    def preferred_hour_weekend(self) -> int:
        return int(max(self.peaks, key=lambda peak: peak[1])[0] + self.weekend_shift) % 24


def _dirichlet(rng: random.Random, concentration: float, size: int) -> list[float]:
    draws = [rng.gammavariate(concentration, 1.0) for _ in range(size)]
    total = sum(draws)
    if total <= 0.0:  # every draw underflowed: possible with tiny concentrations
        return [1.0 / size] * size
    return [value / total for value in draws]


def _peaks(rng: random.Random) -> list[tuple[float, float]]:
    first = rng.choices(_PEAK_HOURS, _PEAK_WEIGHTS)[0]
    # +0.5 centres the bell inside the hour, so the preferred hour is also the most frequent one.
    peaks = [(first + 0.5, 1.0)]
    if rng.random() < 0.5:
        others = [h for h in _PEAK_HOURS if abs(h - first) >= 4]
        second = rng.choice(others)
        peaks = [(first + 0.5, 0.7), (second + 0.5, 0.3)]
    return peaks


def draw_user(rng: random.Random, index: int, params: GeneratorParams) -> User:
    """A user's traits, drawn from the population distributions (rates per day, Gamma as shape/rate)."""
    return User(
        index=index,
        user_id=f"u{index + 1:06d}",
        timezone=rng.choice(TIMEZONES),
        plan=rng.choices(PLANS, (6, 3, 1))[0],
        lam=rng.gammavariate(params.r, 1.0 / params.alpha),
        p_dropout=rng.betavariate(params.a, params.b),
        nu=rng.gammavariate(params.q, 1.0 / params.gamma),
        purchase_prob=rng.betavariate(params.purchase_a, params.purchase_b),
        email_propensity=rng.betavariate(params.email_open_a, params.email_open_b),
        push_propensity=rng.betavariate(params.push_tap_a, params.push_tap_b),
        email_subscribed=rng.random() < params.email_optin,
        push_subscribed=rng.random() < params.push_optin,
        mobile_share=rng.betavariate(2.0, 2.0),
        affinity=_dirichlet(rng, params.affinity_concentration, len(params.categories)),
        peaks=_peaks(rng),
        weekend_shift=rng.choice((0.0, 1.0, 2.0, 2.0, 3.0)),
        anonymous_id=(str(uuid.UUID(int=rng.getrandbits(128), version=4))
                      if rng.random() < params.anonymous_first_share else None),
    )


def local_seconds(rng: random.Random, user: User, weekend: bool, background: float) -> float:
    """Seconds after local midnight at which the user is active, from their hour-of-week preference."""
    if rng.random() < background:
        return rng.uniform(0.0, 86_400.0)
    centre = rng.choices(user.peaks, [weight for _, weight in user.peaks])[0][0]
    if weekend:
        centre += user.weekend_shift
    hour = rng.gauss(centre, 0.8) % 24.0
    return hour * 3600.0


def local_to_ms(day: date, seconds: float, zone: ZoneInfo) -> int:
    """Epoch milliseconds of ``seconds`` after midnight of ``day`` on the wall clock of ``zone``."""
    wall = datetime.combine(day, time.min, zone) + timedelta(seconds=seconds)
    return int(round(wall.timestamp() * 1000))


def local_date(ms: int, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(ms / 1000, zone).date()


def _visit_ms(rng: random.Random, user: User, zone: ZoneInfo, day: date, background: float) -> int:
    return local_to_ms(day, local_seconds(rng, user, day.weekday() >= 5, background), zone)


def simulate_visits(rng: random.Random, user: User, params: GeneratorParams, start: date, days: int,
                    start_ms: int, end_ms: int) -> None:
    """Fill ``user.visits_ms`` and ``alive_at_end`` by running the user's BG/NBD process.

    Acquisition is uniform over the window. Afterwards visits arrive as a Poisson process of rate
    lambda per day; a transaction on a day that is already active is absorbed (one visit session a
    day), and after each repeat active day the user drops out with probability p. Visits past the
    end of the window are never observed, so the process stops there without a dropout draw.
    """
    zone = user.zone
    for _ in range(50):  # a first visit near the window's edges can fall outside it in UTC
        t = rng.uniform(0.0, days)
        first = _visit_ms(rng, user, zone, start + timedelta(days=int(t)), params.background_activity)
        if start_ms <= first < end_ms - MIN_VISIT_SPACING_MS:
            break
    else:
        first = min(max(first, start_ms), end_ms - MIN_VISIT_SPACING_MS)
    user.visits_ms = [first]
    last_day = int(t)
    while True:
        t += rng.expovariate(user.lam) if user.lam > 0 else float("inf")
        if t >= days:
            return
        day = int(t)
        if day == last_day:
            continue
        ms = max(_visit_ms(rng, user, zone, start + timedelta(days=day), params.background_activity),
                 user.visits_ms[-1] + MIN_VISIT_SPACING_MS)
        if ms >= end_ms:
            return
        if local_date(ms, zone) == local_date(user.visits_ms[-1], zone):
            continue  # pushed back onto the previous visit's date: still one active day
        user.visits_ms.append(ms)
        last_day = day
        if rng.random() < user.p_dropout:
            user.alive_at_end = False
            return


def populate(rng: random.Random, params: GeneratorParams, users: int, start: date, days: int,
             start_ms: int, end_ms: int) -> list[User]:
    population = []
    for index in range(users):
        user = draw_user(rng, index, params)
        simulate_visits(rng, user, params, start, days, start_ms, end_ms)
        population.append(user)
    return population
