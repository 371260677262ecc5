"""Replay an arrival trace against a scaling policy and measure latency, cost and churn.

The model, and why:

* Tasks arrive at the trace's per-second counts, spread uniformly within each second, and wait in
  one FIFO queue. Each worker runs one task at a time; service times are lognormal (mean
  ``service_mean``, log-sd ``service_sigma``) and capped at half the spot notice, so a task started
  before a notice always finishes before the reclaim (redelivery of a task cut off by a reclaim is
  the worker drain's job and is tested there, not modelled here). Arrival offsets and service times
  come from one random stream per seed, the same for every policy (common random numbers), so
  policies are compared on identical work.
* The simulation is event-driven per task between control looks: a heap of (time the worker is free,
  worker) hands each task, in arrival order, to the worker free soonest; start = max(arrival, free).
  That is an exact multi-server FIFO queue, O(tasks log workers), so a 24 h day at ~10 tasks/s takes
  about a second. Per-task queue wait = start - arrival.
* Every ``interval`` seconds the controller looks: backlog = waiting + running (``reserved``),
  current = workers requested and not told to stop (booting ones included: otherwise a policy
  orders again every look while they boot), rate = tasks per busy worker-second of the tasks started
  in the last ``rate_window`` seconds (the quantity retain.autoscaler.stats measures from completions;
  started and completed differ by one service time; the policy's fallback with fewer than 5 tasks).
  It applies the policy's desired size at once.
* A new worker boots for uniform(``boot_min``, ``boot_max``) seconds before it takes tasks, except the
  first look's, which stand for a fleet that was already running when the trace starts.
* Scale-in removes booting workers first, then idle ones, then busy ones, which drain: they take no
  new task and leave when the running one ends (Celery's warm shutdown; nothing in flight is killed).
* Spot interruptions: each worker draws its notice time from an exponential at
  ``interruption_rate`` per worker-hour. From the notice it takes no new task and leaves when the
  running one ends; it no longer counts as current, so the policy requests a replacement at its
  next look, as a spot fleet's target capacity does.
* Billing runs from a worker's request to its exit (per-second, booting included), at the spot price;
  the on-demand equivalent of the same worker-hours is reported beside it. After the trace ends the
  simulation runs on until every task has started, so counts are complete.
* Reported: p50/p99 queue wait over all tasks; per minute of the trace, the p99 wait of the tasks
  that arrived in it against the target (``minutes_within_target_pct``); scaling actions = looks that
  changed the requested size (replacing interrupted workers included), ``direction_flips`` = actions
  that reversed the previous action's direction (thrash).

Policies: ``static:N`` (N fixed; ``static`` alone is sized for the trace's peak minute), ``proportional``
(desired = ceil(backlog / (target x rate)) within min/max, at once both ways: KEDA/HPA without a
stabilization window; it sees the same measured rate as ours, so the difference is stabilization,
step and activation) and ``ours`` (:func:`retain.autoscaler.policy.decide` with a History).
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from retain.autoscaler.policy import History, Observation, PoolPolicy, decide, workers_needed
from retain.autoscaler.trace import Trace
from retain.errors import RetainError

POLICIES = ("static", "proportional", "ours")
_MIN_TASKS = 5  # fewer recent tasks than this say nothing about the rate (as stats.service_rate)


class SimulationError(RetainError):
    """The simulation's inputs are invalid or a policy never served its backlog."""


@dataclass(frozen=True)
class SimConfig:
    target_latency: float = 30.0
    interval: float = 15.0
    service_mean: float = 1.0
    service_sigma: float = 0.5
    boot_min: float = 60.0
    boot_max: float = 120.0
    interruption_rate: float = 0.02
    notice: float = 120.0
    min_workers: int = 1
    max_workers: int = 100
    stabilization: float = 300.0
    scale_in_step: int = 1
    activation_backlog: int = 1
    startup: float = 60.0  # what ours assumes a new worker takes to start (the fleet's reality is boot_min..max)
    rate_window: float = 300.0  # as retain.autoscaler.stats.service_rate's default window
    spot_price: float = 0.0125
    on_demand_price: float = 0.0416
    max_drain: float = 6 * 3600.0

    def __post_init__(self) -> None:
        positive = ("target_latency", "interval", "service_mean", "rate_window", "notice")
        for name in positive + ("boot_min", "startup", "service_sigma", "interruption_rate", "spot_price", "on_demand_price"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name in positive and value == 0):
                raise SimulationError(f"simulation setting {name}={value!r}: must be "
                                      f"{'positive' if name in positive else 'zero or more'}")
        if self.boot_max < self.boot_min:
            raise SimulationError(f"simulation settings: boot_max {self.boot_max:g}s is below boot_min {self.boot_min:g}s")
        try:
            self.pool()
        except ValueError as exc:
            raise SimulationError(str(exc)) from None

    def pool(self) -> PoolPolicy:
        return PoolPolicy("simulated", ("simulated",), min_workers=self.min_workers, max_workers=self.max_workers,
                          target_latency=self.target_latency, fallback_rate=1.0 / self.service_mean,
                          stabilization=self.stabilization, scale_in_step=self.scale_in_step,
                          activation_backlog=self.activation_backlog, startup=self.startup)


class Controller(Protocol):
    label: str

    def desired(self, seen: Observation) -> int: ...


@dataclass
class Static:
    workers: int
    label: str = ""

    def __post_init__(self) -> None:
        self.label = f"static:{self.workers}"

    def desired(self, seen: Observation) -> int:
        return self.workers


@dataclass
class Proportional:
    pool: PoolPolicy
    label: str = "proportional"

    def desired(self, seen: Observation) -> int:
        rate = seen.rate if seen.rate else self.pool.fallback_rate
        # KEDA's queue-length scaler: the whole backlog, running tasks included, over target x rate.
        needed = workers_needed(seen.backlog, 0, self.pool.target_latency, rate)
        return min(max(needed, self.pool.min_workers), self.pool.max_workers)


@dataclass
class Ours:
    pool: PoolPolicy
    label: str = "ours"
    history: History = field(default_factory=History)

    def desired(self, seen: Observation) -> int:
        return decide(self.pool, seen, self.history).desired


def peak_workers(trace: Trace, config: SimConfig) -> int:
    """Static provisioning sized for the peak: enough workers for the busiest minute's mean rate."""
    return max(1, math.ceil(trace.peak_rate(60) * config.service_mean - 1e-9))


def controllers(name: str, trace: Trace, config: SimConfig, workers: int | None = None) -> list[Controller]:
    """The controllers ``name`` stands for: static[:N], proportional, ours, or all three."""
    kind, _, count = name.strip().lower().partition(":")
    if count:
        if kind != "static" or not count.isdigit() or int(count) < 1:
            raise SimulationError(f"policy {name!r}: only static takes a size, as static:N with N >= 1")
        workers = int(count)
    static = Static(workers or peak_workers(trace, config))
    made: dict[str, Controller] = {"static": static, "proportional": Proportional(config.pool()),
                                   "ours": Ours(config.pool())}
    if kind == "all":
        return [made[p] for p in POLICIES]
    if kind not in made:
        raise SimulationError(f"policy {name!r}: expected one of static, static:N, proportional, ours, all")
    return [made[kind]]


def _tasks(trace: Trace, config: SimConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, 0])
    arrivals = np.sort(np.repeat(trace.seconds.astype(float), trace.counts) + rng.random(trace.tasks))
    if config.service_sigma == 0:
        service = np.full(trace.tasks, config.service_mean)
    else:
        mu = math.log(config.service_mean) - config.service_sigma ** 2 / 2  # so the mean is service_mean
        service = rng.lognormal(mu, config.service_sigma, trace.tasks)
    return arrivals, np.minimum(service, config.notice / 2)


@dataclass
class Run:
    """One policy's replay: its metrics (JSON-ready) and the timeline the plot draws."""

    label: str
    metrics: dict[str, Any]
    timeline: dict[str, np.ndarray]
    interruptions: list[float]


def simulate(trace: Trace, controller: Controller, config: SimConfig, seed: int = 0) -> Run:
    """Replay ``trace`` with ``controller`` deciding the fleet size; see the module doc for the model."""
    arrivals, service = _tasks(trace, config, seed)
    fleet_rng = np.random.default_rng([seed, 1])
    arr, svc, n = arrivals.tolist(), service.tolist(), len(arrivals)
    busy_sum = np.concatenate(([0.0], np.cumsum(service))).tolist()  # service seconds of tasks [0, i)
    start = [0.0] * n
    requested: list[float] = []
    ready_at: list[float] = []
    stop_at: list[float] = []  # no new task from this time on: a spot notice or a scale-in
    last_end: list[float] = []
    scaled_in: list[bool] = []
    heap: list[tuple[float, int]] = []
    active: list[int] = []  # workers that may still be running or billing
    recent: deque[tuple[float, int, int]] = deque()  # (look time, first task index, end index) per interval
    line: dict[str, list[float]] = {k: [] for k in ("t", "backlog", "waiting", "desired", "current", "ready")}
    actions = outs = ins = flips = 0
    direction = 0
    i, now = 0, 0.0
    while True:
        waiting = bisect_right(arr, now) - i
        running = sum(1 for w in active if last_end[w] > now)
        live = [w for w in active if stop_at[w] > now]
        while recent and recent[0][0] < now - config.rate_window:
            recent.popleft()
        done = sum(b - a for _, a, b in recent)
        rate = done / (busy_sum[recent[-1][2]] - busy_sum[recent[0][1]]) if done >= _MIN_TASKS else None
        want = controller.desired(Observation(now, waiting, running, len(live), rate))
        if want != len(live):
            actions += 1
            step = 1 if want > len(live) else -1
            flips += direction not in (0, step)
            direction = step
        if want > len(live):
            outs += 1
            for _ in range(want - len(live)):
                w = len(requested)
                boot = 0.0 if now == 0 else float(fleet_rng.uniform(config.boot_min, config.boot_max))
                notice = (float(fleet_rng.exponential(3600.0 / config.interruption_rate))
                          if config.interruption_rate > 0 else math.inf)
                requested.append(now), ready_at.append(now + boot), stop_at.append(now + notice)
                last_end.append(now), scaled_in.append(False), active.append(w)
                heapq.heappush(heap, (now + boot, w))
                live.append(w)
        elif want < len(live):
            ins += 1
            # Who goes: booting (latest first), then idle, then busy (they drain their running task).
            order = sorted(live, key=lambda w: (ready_at[w] <= now, last_end[w] > now, -ready_at[w], w))
            for w in order[:len(live) - want]:
                stop_at[w], scaled_in[w] = now, True
            live = [w for w in live if stop_at[w] > now]
        line["t"].append(now), line["backlog"].append(waiting + running), line["waiting"].append(waiting)
        line["desired"].append(want), line["current"].append(len(live))
        line["ready"].append(sum(1 for w in live if ready_at[w] <= now))
        active = [w for w in active if stop_at[w] > now or last_end[w] > now]
        if now >= trace.duration and i == n:
            break
        if now >= trace.duration + config.max_drain:
            raise SimulationError(f"policy {controller.label}: {n - i} of {n} tasks still waiting "
                                  f"{config.max_drain / 3600:g} h after the trace ended")
        end = now + config.interval
        limit, first = bisect_left(arr, end), i
        while i < limit and heap:  # the hot loop: keep it to list and heap operations
            free, w = heap[0]
            s = free if free > arr[i] else arr[i]
            if s >= end:
                break
            if s >= stop_at[w]:
                heapq.heappop(heap)  # stopped before it could take this task: gone for good
                continue
            e = s + svc[i]
            heapq.heapreplace(heap, (e, w))
            start[i] = s
            last_end[w] = e
            i += 1
        recent.append((now, first, i))
        now = end
    return _finish(trace, controller.label, config, arrivals, np.asarray(start), line, now,
                   (requested, stop_at, last_end, scaled_in), (actions, outs, ins, flips))


def _finish(trace: Trace, label: str, config: SimConfig, arrivals: np.ndarray, start: np.ndarray,
            line: dict[str, list[float]], end: float, fleet: tuple[list, list, list, list],
            counts: tuple[int, int, int, int]) -> Run:
    requested, stop_at, last_end, scaled_in = (np.asarray(x) for x in fleet)
    waits = start - arrivals
    # Per minute of the trace, the p99 wait of the tasks that arrived in it; a minute without
    # arrivals had nobody waiting, so it is within the target.
    minutes = math.ceil(trace.duration / 60)
    bounds = np.searchsorted(arrivals, np.arange(minutes + 1) * 60.0).tolist()
    over = sum(1 for m in range(minutes) if bounds[m + 1] > bounds[m]
               and np.percentile(waits[bounds[m]:bounds[m + 1]], 99) > config.target_latency)
    gone = np.minimum(np.maximum(stop_at, last_end), end)
    worker_hours = float((gone - requested).sum()) / 3600
    interrupted = (~scaled_in) & (stop_at < end)
    actions, outs, ins, flips = counts
    p50, p99 = np.percentile(waits, [50, 99]) if len(waits) else (0.0, 0.0)
    metrics = {
        "policy": label, "tasks": trace.tasks, "served": int(len(waits)),
        "p50_wait_s": round(float(p50), 3), "p99_wait_s": round(float(p99), 3),
        "mean_wait_s": round(float(waits.mean()), 3), "max_wait_s": round(float(waits.max()), 3),
        "target_latency_s": config.target_latency, "minutes": minutes, "minutes_over_target": over,
        "minutes_within_target_pct": round(100.0 * (minutes - over) / minutes, 3),
        "worker_hours": round(worker_hours, 3), "cost": round(worker_hours * config.spot_price, 4),
        "cost_on_demand_equivalent": round(worker_hours * config.on_demand_price, 4),
        "prices": {"spot_per_worker_hour": config.spot_price, "on_demand_per_worker_hour": config.on_demand_price,
                   "currency": "USD"},
        "scaling_actions": actions, "scale_outs": outs, "scale_ins": ins, "direction_flips": flips,
        "interruptions": int(interrupted.sum()), "workers_started": int(len(requested)),
        "peak_workers": int(max(line["current"])), "mean_workers": round(float(np.mean(line["current"])), 3),
        "simulated_s": end,
    }
    timeline = {k: np.asarray(v) for k, v in line.items()}
    return Run(label, metrics, timeline, sorted(stop_at[interrupted].tolist()))


def compare(trace: Trace, policy: str, config: SimConfig, seed: int = 0, workers: int | None = None) -> list[Run]:
    """Run each policy ``policy`` names on the same trace, seed and configuration."""
    return [simulate(trace, c, config, seed) for c in controllers(policy, trace, config, workers)]


def config_document(config: SimConfig) -> dict[str, Any]:
    return asdict(config)
