"""`retain autoscaler ...`: generate an arrival trace and replay it against scaling policies.

The group is shared: the controller (`retain autoscaler run`) is added to it by its own module.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import click

from retain.commands.output import json_option, progress, report


@click.group("autoscaler")
def autoscaler_group() -> None:
    """Size worker fleets from their queues; simulate the policies on a trace first."""


@autoscaler_group.command("trace")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="CSV file to write.")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=24.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same trace.")
@click.option("--base-rate", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Tasks/s at the afternoon peak of the diurnal cycle.")
@click.option("--night-rate", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="Rate from 00:00 to 06:00, as a fraction of the base rate.")
@click.option("--bursts", type=click.IntRange(min=0), default=6, show_default=True, help="Bursts per 24 h.")
@click.option("--burst-factor", type=click.FloatRange(min=0), default=3.0, show_default=True,
              help="A burst adds up to this many times the base rate.")
@click.option("--burst-minutes", type=click.FloatRange(min=1), default=5.0, show_default=True,
              help="Longest burst (each lasts 1 minute to this).")
@click.option("--start-hour", type=click.FloatRange(0, 24, max_open=True), default=0.0, show_default=True,
              help="Time of day at which the trace starts.")
@json_option
def trace_command(out: Path, hours: float, seed: int, base_rate: float, night_rate: float, bursts: int,
                  burst_factor: float, burst_minutes: float, start_hour: float, as_json: bool) -> None:
    """Write an arrival trace: diurnal cycle, random bursts, quiet nights (CSV t_seconds,arrivals)."""
    from retain.autoscaler.trace import generate_trace, write_trace

    trace = generate_trace(hours, seed, base_rate, night_rate, bursts, burst_factor, burst_minutes, start_hour)
    write_trace(trace, out)
    document = {"trace": str(out), "tasks": trace.tasks, "duration_s": trace.duration,
                "peak_rate_per_s": round(trace.peak_rate(60), 3), "mean_rate_per_s": round(trace.tasks / trace.duration, 3),
                "params": trace.meta}
    report(as_json, document, lambda: (f"{out}: {trace.tasks} tasks over {hours:g} h, mean "
                                       f"{document['mean_rate_per_s']}/s, busiest minute {document['peak_rate_per_s']}/s"))


def _plot_path(trace: Path, policy: str) -> Path:
    return trace.with_name(f"{trace.stem}-{re.sub(r'[^A-Za-z0-9]+', '-', policy.strip().lower())}.png")


def _table(document: dict[str, Any]) -> str:
    head = f"{'POLICY':14} {'P50 S':>7} {'P99 S':>7} {'IN TARGET':>9} {'WORKER-H':>9} {'COST':>8} {'ON-DEMAND':>9} " \
           f"{'ACTIONS':>7} {'FLIPS':>5} {'SPOT INT':>8} {'PEAK':>4}"
    rows = [head]
    for m in document["policies"].values():
        rows.append(f"{m['policy']:14} {m['p50_wait_s']:>7.2f} {m['p99_wait_s']:>7.2f} "
                    f"{m['minutes_within_target_pct']:>8.2f}% {m['worker_hours']:>9.2f} {m['cost']:>8.3f} "
                    f"{m['cost_on_demand_equivalent']:>9.3f} {m['scaling_actions']:>7} {m['direction_flips']:>5} "
                    f"{m['interruptions']:>8} {m['peak_workers']:>4}")
    config = document["config"]
    rows.append(f"target {config['target_latency']:g}s p99 wait per minute; prices USD per worker-hour: "
                f"spot {config['spot_price']:g}, on-demand {config['on_demand_price']:g}; "
                f"{config['interruption_rate']:g} spot interruptions per worker-hour; seed {document['seed']}")
    rows.append(f"plot: {document['plot']}")
    return "\n".join(rows)


@autoscaler_group.command("simulate")
@click.option("--trace", "trace_file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Arrival trace (CSV t_seconds,arrivals; see `retain autoscaler trace`).")
@click.option("--policy", default="all", show_default=True,
              help="static[:N], proportional (no stabilization), ours, or all (the three side by side).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Size of the static fleet (default: enough for the trace's busiest minute).")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same result.")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG to write (default: next to the trace, TRACE-POLICY.png).")
@click.option("--target-latency", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Queue-wait target in seconds, for the policies and the per-minute p99 check.")
@click.option("--interval", type=click.FloatRange(min=0, min_open=True), default=15.0, show_default=True,
              help="Seconds between controller looks.")
@click.option("--service-mean", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Mean task service time in seconds (lognormal).")
@click.option("--service-sigma", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Log-sd of the service time (0: every task takes the mean).")
@click.option("--boot-min", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Shortest worker start-up, seconds.")
@click.option("--boot-max", type=click.FloatRange(min=0), default=120.0, show_default=True,
              help="Longest worker start-up, seconds.")
@click.option("--interruption-rate", type=click.FloatRange(min=0), default=0.02, show_default=True,
              help="Spot interruptions per worker-hour (2-minute notice each).")
@click.option("--min-workers", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--max-workers", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--stabilization", type=click.FloatRange(min=0), default=300.0, show_default=True,
              help="Scale-in stabilization window of ours, seconds.")
@click.option("--startup", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Startup time ours assumes for a new worker (projects a growing backlog over it).")
@click.option("--scale-in-step", type=click.IntRange(min=1), default=1, show_default=True,
              help="Most workers ours removes per look.")
@click.option("--spot-price", type=click.FloatRange(min=0), default=0.0125, show_default=True,
              help="USD per worker-hour on spot.")
@click.option("--on-demand-price", type=click.FloatRange(min=0), default=0.0416, show_default=True,
              help="USD per worker-hour on demand (reported as the equivalent cost).")
@json_option
def simulate_command(trace_file: Path, policy: str, workers: int | None, seed: int, plot_file: Path | None,
                     as_json: bool, **settings: Any) -> None:
    """Replay an arrival trace against scaling policies with spot interruptions; report waits and cost."""
    from retain.autoscaler.plot import plot_runs
    from retain.autoscaler.simulator import SimConfig, config_document, controllers, simulate
    from retain.autoscaler.trace import read_trace

    config = SimConfig(**settings)
    trace = read_trace(trace_file)
    chosen = controllers(policy, trace, config, workers)
    progress(f"simulating {', '.join(c.label for c in chosen)} on {trace_file}: {trace.tasks} tasks over "
             f"{trace.duration / 3600:g} h, seed {seed}")
    runs = [simulate(trace, controller, config, seed) for controller in chosen]
    plot = plot_runs(runs, plot_file or _plot_path(trace_file, policy),
                     f"{trace_file.name}, seed {seed}, {config.interruption_rate:g} spot interruptions/worker-h")
    # Absolute, so the path in the document still leads to the PNG from another directory.
    common = {"trace": str(trace_file), "seed": seed, "plot": os.path.abspath(plot), "config": config_document(config)}
    policies = {run.label: {**run.metrics, "plot": common["plot"]} for run in runs}
    document = {**common, "policies": policies}
    if len(runs) == 1:
        # One policy: its figures at the top level, so `jq .p99_wait_s` works.
        document = {**runs[0].metrics, **common}
        report(as_json, document, lambda: _table({**common, "policies": policies}))
    else:
        report(as_json, document, lambda: _table(document))


@autoscaler_group.command("run")
@click.option("--dry-run", is_flag=True, help="Decide and log, change nothing.")
@click.option("--once", is_flag=True, help="One look at every pool, then exit (with --json: the decisions).")
@json_option
def run_command(dry_run: bool, once: bool, as_json: bool) -> None:
    """Size every pool's fleet from its queues, every RETAIN_AUTOSCALER_INTERVAL_SECONDS, until stopped."""
    import logging
    import signal
    import threading

    import redis

    from retain.autoscaler.backends import fleets_for
    from retain.autoscaler.controller import Controller, pools_from_settings
    from retain.config import Settings

    settings = Settings.from_env()
    pools = pools_from_settings(settings)
    controller = Controller(settings, fleets_for(settings, pools), redis.Redis.from_url(settings.broker_url),
                            redis.Redis.from_url(settings.redis_url, decode_responses=True), pools, dry_run)
    if once:
        steps = controller.look()
        report(as_json, {"dry_run": dry_run, "pools": [s.to_dict() for s in steps]},
               lambda: "\n".join(f"{s.pool}: {s.current} -> {s.desired}: {s.reason}" for s in steps))
        return
    from retain import logs
    from retain.metrics import autoscaler as metrics

    logs.configure(settings, "autoscaler")
    metrics.serve(settings)  # RETAIN_AUTOSCALER_METRICS_PORT; 0 is off
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    # Logged, not printed: the controller logs each decision in the same (JSON) stream.
    logging.getLogger("retain.autoscaler").info(
        "autoscaler: %s on %s%s, every %gs", ", ".join(p.name for p in pools), settings.autoscaler_backend,
        " (dry run)" if dry_run else "", settings.autoscaler_interval_seconds)
    controller.run(stop, metrics.record)
