"""The autoscaler simulator: the trace format and generator, the queue model, the policies compared on
the same work, and the `retain autoscaler trace|simulate` commands. No services needed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from retain.autoscaler.simulator import Ours, SimConfig, compare, controllers, simulate
from retain.autoscaler.trace import Trace, TraceError, generate_trace, read_trace, write_trace
from retain.cli import main

REQUIRED = {"p50_wait_s", "p99_wait_s", "minutes_within_target_pct", "worker_hours", "cost", "scaling_actions",
            "plot"}


def _cli(*args: str):
    return CliRunner().invoke(main, ["autoscaler", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def day() -> Trace:
    """A working day at a base rate of 4 tasks/s: quiet night, afternoon peak, bursts."""
    return generate_trace(24, seed=3, base_rate=4)


def _oscillating(seed: int) -> Trace:
    """Two hours alternating every 2 minutes between 2 and 12 tasks/s."""
    t = np.arange(7200)
    counts = np.random.default_rng(seed).poisson(np.where((t // 120) % 2 == 0, 2.0, 12.0))
    return Trace(t[counts > 0], counts[counts > 0], 7200)


def test_generated_trace_round_trips_and_has_quiet_nights(tmp_path: Path) -> None:
    trace = generate_trace(24, seed=5, base_rate=6)
    again = read_trace(write_trace(trace, tmp_path / "t.csv"))
    assert (again.seconds.tolist(), again.counts.tolist(), again.duration) == (
        trace.seconds.tolist(), trace.counts.tolist(), 86_400)
    assert generate_trace(24, seed=5, base_rate=6).counts.tolist() == trace.counts.tolist()
    hourly = np.bincount(trace.seconds // 3600, weights=trace.counts, minlength=24) / 3600
    assert hourly[:6].mean() < 0.2 * hourly[12:18].mean()  # nights are quiet, afternoons busy
    assert trace.peak_rate(60) > 1.5 * hourly.max()          # bursts stand above the cycle


@pytest.mark.parametrize("body, problem", [
    ("t_seconds,arrivals\n0,3\n1,x\n", "line 3: field 'arrivals': 'x' is not a whole number"),
    ("t_seconds,arrivals\n0,3\n-1,2\n", "line 3: field 't_seconds': -1 is negative"),
    ("t_seconds,arrivals\n5,3\n5,2\n", "line 3: field 't_seconds': 5 is not after the previous row's 5"),
    ("t_seconds,arrivals\n0,3,4\n", "line 2: expected 2 fields"),
    ("time,count\n0,3\n", "line 1: expected the header 't_seconds,arrivals'"),
    ("# only a comment\n", "empty"),
    ("t_seconds,arrivals\n0,0\n", "no arrivals"),
])
def test_bad_trace_is_named(tmp_path: Path, body: str, problem: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(TraceError, match=str(path)) as caught:
        read_trace(path)
    assert problem in str(caught.value)


def test_cli_bad_or_missing_trace_exits_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("t_seconds,arrivals\n0,3\n1,-4\n")
    result = _cli("simulate", "--trace", str(bad), "--policy", "ours")
    assert result.exit_code != 0
    assert result.stderr.strip() == f"error: trace {bad} line 3: field 'arrivals': -4 is negative"
    missing = _cli("simulate", "--trace", str(tmp_path / "none.csv"))
    assert missing.exit_code != 0 and "no such file" in missing.stderr and len(missing.stderr.splitlines()) == 1
    good = write_trace(generate_trace(1, seed=1, base_rate=1), tmp_path / "good.csv")
    unknown = _cli("simulate", "--trace", str(good), "--policy", "fastest")
    assert unknown.exit_code != 0 and "policy 'fastest'" in unknown.stderr


def test_queue_mechanics_by_hand() -> None:
    """Ten tasks in the first second, one worker, every task 1 s: they queue back to back."""
    config = SimConfig(service_sigma=0, interruption_rate=0)
    trace = Trace(np.array([0]), np.array([10]), 1)
    m = simulate(trace, controllers("static:1", trace, config)[0], config).metrics
    assert (m["served"], m["scaling_actions"], m["interruptions"]) == (10, 1, 0)
    assert 8.0 < m["max_wait_s"] <= 9.0  # the last starts 9 s after the first, arrived less than 1 s after it
    assert m["worker_hours"] == round(15 / 3600, 3)  # one worker until the first look with nothing left


def test_same_seed_same_document(tmp_path: Path) -> None:
    trace = write_trace(generate_trace(3, seed=2, base_rate=5, start_hour=12), tmp_path / "t.csv")
    args = ("simulate", "--trace", str(trace), "--policy", "all", "--seed", "9", "--interruption-rate", "0.5", "--json")
    first, second = _cli(*args), _cli(*args)
    assert first.exit_code == 0, first.output
    assert first.stdout == second.stdout
    other = _cli(*args[:-3], "10", *args[-2:])
    assert other.stdout != first.stdout  # the seed matters


def test_ours_holds_the_target_better_than_small_and_costs_less_than_large(day: Trace) -> None:
    config = SimConfig()
    small = max(1, math.ceil(day.tasks / day.duration * config.service_mean))  # sized for the mean load
    static_small, static_peak, proportional, ours = compare(day, f"static:{small}", config, 3) + compare(
        day, "all", config, 3)
    assert static_peak.label == f"static:{math.ceil(day.peak_rate(60) - 1e-9)}" and ours.label == "ours"
    over = {r.label: r.metrics["minutes_over_target"] for r in (static_small, ours)}
    assert over["ours"] < 0.6 * over[static_small.label], over
    assert ours.metrics["p99_wait_s"] < 0.1 * static_small.metrics["p99_wait_s"]
    assert ours.metrics["cost"] < 0.6 * static_peak.metrics["cost"]
    assert ours.metrics["worker_hours"] < 0.6 * static_peak.metrics["worker_hours"]
    assert static_peak.metrics["minutes_within_target_pct"] == 100.0
    assert proportional.metrics["direction_flips"] > 2 * ours.metrics["direction_flips"]


@pytest.mark.parametrize("seed", [1, 2])
def test_proportional_without_stabilization_thrashes_on_oscillating_load(seed: int) -> None:
    proportional, ours = compare(_oscillating(seed), "proportional", SimConfig(), seed) + compare(
        _oscillating(seed), "ours", SimConfig(), seed)
    assert proportional.metrics["scaling_actions"] > 1.4 * ours.metrics["scaling_actions"]
    assert proportional.metrics["direction_flips"] > 2 * ours.metrics["direction_flips"]


def test_ours_is_the_policy_module_deciding() -> None:
    (ours,) = controllers("ours", _oscillating(1), SimConfig())
    assert isinstance(ours, Ours)
    simulate(_oscillating(1), ours, SimConfig(), 1)
    assert ours.history.entries  # retain.autoscaler.policy.decide kept its stabilization window


@pytest.mark.parametrize("policy", ["static:4", "proportional", "ours"])
def test_spot_interruptions_never_lose_a_task(policy: str) -> None:
    trace = generate_trace(4, seed=8, base_rate=6, start_hour=10)
    config = SimConfig(interruption_rate=3.0)  # a notice every 20 worker-minutes
    (run,) = compare(trace, policy, config, seed=8)
    m = run.metrics
    assert m["interruptions"] >= 5, m
    assert m["served"] == m["tasks"] == trace.tasks
    assert m["p50_wait_s"] >= 0 and math.isfinite(m["max_wait_s"])
    assert m["workers_started"] >= m["interruptions"] + 1  # every interrupted worker was replaced


def test_cli_json_has_the_figures_and_writes_the_plot(tmp_path: Path) -> None:
    trace = tmp_path / "day.csv"
    made = _cli("trace", "--out", str(trace), "--hours", "6", "--seed", "4", "--base-rate", "5", "--start-hour", "9",
                "--json")
    assert made.exit_code == 0 and json.loads(made.stdout)["tasks"] == read_trace(trace).tasks
    plot = tmp_path / "ours.png"
    result = _cli("simulate", "--trace", str(trace), "--policy", "ours", "--seed", "4", "--plot", str(plot), "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert REQUIRED <= document.keys() and document["policy"] == "ours"
    assert document["plot"] == str(plot) and plot.read_bytes().startswith(b"\x89PNG")
    assert document["prices"] == {"spot_per_worker_hour": 0.0125, "on_demand_per_worker_hour": 0.0416,
                                  "currency": "USD"}
    assert document["cost_on_demand_equivalent"] > document["cost"] > 0
    both = json.loads(_cli("simulate", "--trace", str(trace), "--policy", "all", "--json").stdout)
    assert list(both["policies"]) == [f"static:{math.ceil(read_trace(trace).peak_rate(60) - 1e-9)}", "proportional",
                                      "ours"]
    assert all(REQUIRED <= m.keys() for m in both["policies"].values())
    assert Path(both["plot"]) == tmp_path / "day-all.png" and Path(both["plot"]).exists()
    text = _cli("simulate", "--trace", str(trace), "--policy", "static", "--workers", "3")
    assert text.exit_code == 0 and "static:3" in text.stdout and "spot 0.0125, on-demand 0.0416" in text.stdout
