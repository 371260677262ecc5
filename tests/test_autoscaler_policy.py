"""The scaling policy as a table: backlog, rate and current size to desired size, with bounds,
zero, bursts, the stabilization window and the scale-in step; and no thrashing under oscillation."""

from __future__ import annotations

import math

import pytest

from retain.autoscaler.policy import History, Observation, PoolPolicy, decide, workers_needed

POOL = PoolPolicy("profiles", ("profiles",), min_workers=0, max_workers=20, target_latency=10, fallback_rate=2,
                  stabilization=300, scale_in_step=2, activation_backlog=5)


@pytest.mark.parametrize("waiting, reserved, rate, current, desired, why", [
    (0, 0, None, 0, 0, "no change"),                       # idle pool stays at zero
    (3, 0, None, 0, 0, "activation threshold"),            # a stray task does not start a worker
    (5, 0, None, 0, 1, "scale out 0 -> 1"),                # activation reached: ceil(5 / (10 x 2)) = 1
    (100, 0, None, 1, 5, "scale out 1 -> 5"),              # fallback rate 2/s: 100 / 20 = 5
    (100, 4, 4.0, 1, 7, "scale out 1 -> 7"),               # 4 held + 100 / (10 x 4) = 6.5 -> 7
    (0, 6, None, 6, 6, "no change at 6"),                  # a busy steady fleet keeps a slot per task
    (10_000, 0, 1.0, 2, 20, "capped at max 20"),           # a burst is bounded by max
    (40, 0, None, 2, 2, "no change at 2"),                 # exactly enough
    (0, 0, None, 5, 5, "recommended up to 5"),             # first look: the window still holds 5
])
def test_policy_table(waiting, reserved, rate, current, desired, why) -> None:
    history = History()
    decision = decide(POOL, Observation(0.0, waiting, reserved, current, rate), history)
    assert (decision.desired, why in decision.reason) == (desired, True), decision.reason


def test_minimum_is_kept_and_needed_is_exact() -> None:
    pool = PoolPolicy("ingest", ("ingest",), min_workers=2, max_workers=4)
    assert decide(pool, Observation(0, 0, 0, 0), History()).desired == 2
    assert decide(pool, Observation(0, 0, 0, 0), History()).reason.endswith("raised to min 2")
    assert [workers_needed(b, 0, 10, 2) for b in (0, 1, 20, 21, 40)] == [0, 1, 1, 2, 2]
    assert workers_needed(20, 3, 10, 2, slots=2) == 2, "(3 held + 1 to drain) / 2 slots per worker"


def test_scale_in_waits_for_the_window_then_steps() -> None:
    history, now, current = History(), 0.0, 0
    current = decide(POOL, Observation(now, 200, 0, current), history).desired
    assert current == 10
    sizes = []
    for _ in range(40):  # the load is gone: 20 minutes of looks every 30 s
        now += 30
        current = decide(POOL, Observation(now, 0, 0, current), history).desired
        sizes.append(current)
    assert sizes[:9] == [10] * 9, "nothing is shed within the 300 s window"
    assert sizes[10:15] == [8, 6, 4, 2, 0], "then at most 2 workers a decision, down to zero"


def test_an_oscillating_load_does_not_thrash() -> None:
    history, current, flips, last = History(), 0, 0, 0
    for tick in range(240):  # 2 hours, a look every 30 s; load swings every 5 minutes
        backlog = 400 if (tick // 10) % 2 == 0 else 20
        decision = decide(POOL, Observation(tick * 30.0, backlog, 0, current), history)
        direction = int(math.copysign(1, decision.desired - current)) if decision.desired != current else 0
        if direction and last and direction != last:
            flips += 1
        last = direction or last
        current = decision.desired
    assert flips <= 2, f"the fleet changed direction {flips} times"
    assert current == 20, "it holds the peak's size through the dips"


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="min_workers"):
        PoolPolicy("p", ("p",), min_workers=5, max_workers=2)
    with pytest.raises(ValueError, match="positive"):
        PoolPolicy("p", ("p",), target_latency=0)


def test_a_growing_backlog_is_projected_over_the_startup_time() -> None:
    pool = PoolPolicy("profiles", ("profiles",), max_workers=50, target_latency=10, fallback_rate=1, startup=60)
    history = History()
    assert decide(pool, Observation(0.0, 100, 0, 10), history).desired == 10, "no trend yet: 100 / 10"
    # +5 tasks/s over 20 s; in the 60 s a new worker takes to start, 300 more will be waiting.
    decision = decide(pool, Observation(20.0, 200, 0, 10), history)
    assert decision.desired == 50, decision.reason
    assert "+300 expected" in decision.reason
    # A shrinking backlog projects nothing: only what waits now counts.
    assert decide(pool, Observation(40.0, 150, 0, 50), history).needed == 15
