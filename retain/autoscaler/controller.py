"""The control loop: every interval, for each pool, read its queues and its workers' service rate,
ask the policy, resize the fleet, and log and publish the decision.

The last decision of each pool is kept in the data Redis (``autoscaler:status:<pool>``, JSON with
desired and actual capacity and the reason) for dashboards and the metrics exporter.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import redis

from retain.autoscaler.fleet import Fleet, FleetError
from retain.autoscaler.policy import History, Observation, PoolPolicy, decide
from retain.autoscaler.queues import reserved, waiting
from retain.autoscaler.stats import service_rate
from retain.config import Settings

log = logging.getLogger("retain.autoscaler")


def pools_from_settings(settings: Settings) -> list[PoolPolicy]:
    return [PoolPolicy(name, tuple(queues.split("+")), settings.autoscaler_min_workers.get(name, 0),
                       settings.autoscaler_max_workers.get(name, 8), settings.autoscaler_target_latency,
                       settings.autoscaler_fallback_rate, settings.autoscaler_stabilization_seconds,
                       settings.autoscaler_scale_in_step, settings.autoscaler_activation_backlog,
                       slots_per_worker=settings.worker_concurrency, startup=settings.autoscaler_startup_seconds)
            for name, queues in settings.autoscaler_pools.items()]


@dataclass(frozen=True)
class Step:
    """One pool's look: what was seen and what was decided (and done, unless a dry run)."""

    pool: str
    at: float
    waiting: int
    reserved: int
    rate: float | None
    current: int
    desired: int
    reason: str
    applied: bool

    def to_dict(self) -> dict:
        return asdict(self)


class Controller:
    def __init__(self, settings: Settings, fleets: dict[str, Fleet], broker: redis.Redis, data: redis.Redis,
                 pools: list[PoolPolicy] | None = None, dry_run: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings, self.fleets, self.broker, self.data = settings, fleets, broker, data
        self.pools = pools or pools_from_settings(settings)
        self.dry_run, self.clock = dry_run, clock
        self.history = {pool.name: History() for pool in self.pools}

    def look(self) -> list[Step]:
        """One pass over every pool."""
        now = self.clock()
        queued = waiting(self.broker, [q for pool in self.pools for q in pool.queues])
        taken = reserved(self.broker)
        steps = []
        for pool in self.pools:
            fleet = self.fleets[pool.name]
            seen = Observation(now, sum(queued[q] for q in pool.queues), sum(taken[q] for q in pool.queues),
                               fleet.current(),
                               service_rate(self.data, self.settings.redis_prefix, list(pool.queues), now))
            decision = decide(pool, seen, self.history[pool.name])
            applied = decision.desired != seen.current and not self.dry_run
            if applied:
                fleet.resize(decision.desired)
            if decision.desired != seen.current:
                log.info("pool %s: %s%s", pool.name, decision.reason, " (dry run)" if self.dry_run else "")
            step = Step(pool.name, now, seen.waiting, seen.reserved, seen.rate, seen.current, decision.desired,
                        decision.reason, applied)
            self.data.set(f"{self.settings.redis_prefix}autoscaler:status:{pool.name}", json.dumps(step.to_dict()),
                          ex=max(int(self.settings.autoscaler_interval_seconds * 10), 60))
            steps.append(step)
        return steps

    def run(self, stop: threading.Event, on_step: Callable[[list[Step]], None] | None = None) -> None:
        """Look every interval until ``stop`` is set."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                steps = self.look()
            except redis.RedisError as exc:
                # The broker may be restarting: skip this look, keep the fleet as it is.
                log.warning("autoscaler could not read the broker: %s", exc)
            except FleetError as exc:
                # A throttled or unreachable cloud API: the next look reads the fleet afresh.
                log.warning("autoscaler could not read or resize a fleet: %s", exc)
            else:
                if on_step:
                    on_step(steps)
            stop.wait(max(self.settings.autoscaler_interval_seconds - (time.monotonic() - started), 0.0))
