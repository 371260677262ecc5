"""The simulator's PNG: per policy, backlog and fleet size over time, spot interruptions marked.

Drawn with the Agg canvas on a bare Figure (as retain.models.report does): no GUI backend and no
pyplot global state, so it works headless and from threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from retain.autoscaler.simulator import Run


def plot_runs(runs: Sequence[Run], path: str | Path, title: str = "") -> Path:
    """One panel per run, sharing the time axis: backlog (tasks, left axis, grey) against desired,
    requested and ready workers (right axis); red ticks at the bottom are spot interruption notices."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(12, 3.2 * len(runs) + 0.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(runs), 1, sharex=True, squeeze=False)[:, 0]
    for ax, run in zip(axes, runs):
        line, m = run.timeline, run.metrics
        hours = line["t"] / 3600.0
        ax.fill_between(hours, line["backlog"], step="post", color="0.8", label="backlog (tasks)")
        ax.set_ylabel("backlog (tasks)")
        ax.set_ylim(bottom=0)
        workers = ax.twinx()
        workers.step(hours, line["current"], where="post", color="tab:blue", lw=0.8, ls="--", label="requested")
        workers.step(hours, line["ready"], where="post", color="tab:blue", lw=1.2, label="ready (serving)")
        # Desired last, dotted: on top of the fleet lines it mostly equals, so the gaps show.
        workers.step(hours, line["desired"], where="post", color="tab:orange", lw=1.0, ls=":", label="desired")
        if run.interruptions:
            notices = [t / 3600.0 for t in run.interruptions]
            workers.plot(notices, [0] * len(notices), "|", color="tab:red", ms=14, mew=1.5,
                         label="spot interruption", clip_on=False)
        workers.set_ylabel("workers")
        workers.set_ylim(bottom=0)
        ax.set_title(f"{run.label}: p50 {m['p50_wait_s']:g}s, p99 {m['p99_wait_s']:g}s wait, "
                     f"{m['minutes_within_target_pct']:g}% of minutes within {m['target_latency_s']:g}s, "
                     f"{m['worker_hours']:g} worker-h, {m['scaling_actions']} scaling actions", fontsize=9)
        handles = ax.get_legend_handles_labels()
        more = workers.get_legend_handles_labels()
        # Outside the axes, on the right: inside it would hide the fleet line of a static fleet.
        workers.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left", bbox_to_anchor=(1.06, 1.0),
                       fontsize=7)
    axes[-1].set_xlabel("hours since the trace started")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, format="png")
    return path
