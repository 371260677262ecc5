"""The HTML report of a training run: one self-contained file (inline CSS, plots as embedded PNGs,
no JavaScript, no external resources) so it can be served, mailed or archived as is.

The training job computes what to plot (it has the data in Spark); this module only draws. A plot
is drawn only from data that is present; otherwise its section says why it is not available.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from retain.models import bgnbd
from retain.models.store import ModelStore

REPORT_ARTIFACT = "report.html"
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MAX_BARS = 40  # more bars than this are unreadable in a fixed-size PNG; the rest are counted, not drawn


@dataclass
class ReportData:
    """What a report shows. Only tenant, version and status are required; every other field is
    optional and its section says "not available" when it is missing or empty.

    Header: ``created_at`` (ISO 8601 text), ``cutoff`` (last calibration day, ISO date),
    ``holdout_days``, ``horizon_days`` (the tenant's H), ``reasons`` (why rejected / failed),
    ``not_fitted`` (model -> why it was not fitted; keys "bgnbd", "gammagamma", "importance",
    "impact", "channel", "sendtime" also explain the sections those models feed).
    ``params``: model -> parameter -> value (TrainResult.params), one table per model.
    ``metrics``: TrainResult.metrics; scalars and "visits_per_user" are tabled, and
    "p_return_calibration" is plotted when ``calibration`` is not given.

    Tracking plot (Fader, Hardie & Lee 2005, fig. 4), all the same length:
    ``tracking_days`` day numbers, increasing (0 = first day of the calibration period);
    ``tracking_actual`` observed cumulative repeat active days of all users at the end of each day;
    ``tracking_predicted`` the model's curve on those days (see :func:`predicted_cumulative`);
    ``tracking_cutoff_day`` the cutoff's day number, drawn as a vertical line.

    ``calibration``: P(return) deciles as from evaluation.calibration: dicts with "predicted",
    "observed" (rates in [0, 1]) and "users".
    ``feature_importance``: feature -> mutual information with the retention label, in bits;
    ``label_entropy_bits``: H(label) in bits, the most any feature can have (stated under the plot).
    ``action_impacts``: action -> (difference, low, high): the stratified difference in return rate,
    did minus did not, and its 95% interval (importance.Impact's fields).
    ``channel_prior_rates``: channel -> the tenant's prior mean response rate (BetaPrior.mean);
    ``best_channel_users``: channel -> number of users whose best channel it is.
    ``send_time_share``: engagement share by weekday (0 = Monday) x hour, shape (7, 24), or the 168
    hour-of-week buckets of retain.models.sendtime (reshaped); any non-negative scale.
    """

    tenant: str
    version: str
    status: str
    created_at: str | None = None
    cutoff: str | None = None
    holdout_days: int | None = None
    horizon_days: int | None = None
    reasons: list[str] = field(default_factory=list)
    not_fitted: dict[str, str] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    tracking_days: np.ndarray | None = None
    tracking_actual: np.ndarray | None = None
    tracking_predicted: np.ndarray | None = None
    tracking_cutoff_day: float | None = None
    calibration: list[dict[str, float]] | None = None
    feature_importance: dict[str, float] | None = None
    label_entropy_bits: float | None = None
    action_impacts: dict[str, tuple[float, float, float]] | None = None
    channel_prior_rates: dict[str, float] | None = None
    best_channel_users: dict[str, int] | None = None
    send_time_share: np.ndarray | None = None

    def __post_init__(self) -> None:
        # A caller bug (arrays of different lengths, a wrong shape) fails here, loudly, rather than
        # as a plot that silently misleads.
        tracking = [None if a is None else np.asarray(a, dtype=float).ravel()
                    for a in (self.tracking_days, self.tracking_actual, self.tracking_predicted)]
        self.tracking_days, self.tracking_actual, self.tracking_predicted = tracking
        if len(sizes := sorted({a.size for a in tracking if a is not None})) > 1:
            raise ValueError(f"tracking_days, tracking_actual and tracking_predicted differ in length: {sizes}")
        if self.send_time_share is not None:
            share = np.asarray(self.send_time_share, dtype=float)
            if share.shape not in ((7, 24), (168,)):
                raise ValueError(f"send_time_share must have shape (7, 24) or (168,), got {share.shape}")
            self.send_time_share = share.reshape(7, 24)
        if self.calibration is None and self.metrics.get("p_return_calibration"):
            self.calibration = self.metrics["p_return_calibration"]

    @classmethod
    def from_version(cls, tenant: str, info: Mapping[str, Any], **plots: Any) -> ReportData:
        """From a stored version.json (ModelStore.get) plus the plot fields the caller computed."""
        header = {k: info.get(k) for k in ("created_at", "cutoff", "holdout_days", "horizon_days")}
        return cls(tenant=tenant, version=info["version"], status=info.get("status", "unknown"), **header,
                   reasons=list(info.get("reasons") or []), not_fitted=dict(info.get("not_fitted") or {}),
                   params=dict(info.get("params") or {}), metrics=dict(info.get("metrics") or {}), **plots)


def predicted_cumulative(params: bgnbd.BGNBDParams | Sequence[float], first_days, days) -> np.ndarray:
    """The model's cumulative repeat active days of all users at the end of each of ``days``.

    A user first active on day c has made E[X(d - c)] repeat active days by day d (paper eq. 9,
    bgnbd.expected_unconditional), so the total is the convolution of the users' first-day counts
    with that curve: one curve evaluation per day, whatever the number of users.
    ``first_days``: each user's first active day; ``days``: where to evaluate; both day numbers.
    """
    first, days = np.asarray(first_days, dtype=np.int64), np.asarray(days, dtype=np.int64)
    if first.size == 0 or days.size == 0:
        return np.zeros(days.size)
    start = int(min(first.min(), days.min()))
    span = int(max(first.max(), days.max())) - start + 1
    cohorts = np.bincount(first - start, minlength=span).astype(float)
    curve = bgnbd.expected_unconditional(params, np.arange(span, dtype=float))
    return np.convolve(cohorts, curve)[:span][days - start]


_Plot = Figure | tuple[Figure, str] | str  # a figure (with a note under it), or why it is not available


def _dropped(count: int, why: str) -> str:
    return f"{count} more {why}. " if count > 0 else ""


def _missing(data: ReportData, model: str, default: str) -> str:
    reason = data.not_fitted.get(model)
    return f"{model} not fitted: {reason}" if reason else default


def _figure(width: float = 8.0, height: float = 4.0, cols: int = 1) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # Agg explicitly: never a GUI backend, and no pyplot global state across threads
    return fig, fig.subplots(1, cols)


def _tracking(data: ReportData) -> _Plot:
    if data.tracking_days is None or data.tracking_actual is None or data.tracking_predicted is None:
        return _missing(data, "bgnbd", "no cumulative repeat-activity curves were computed for this run")
    if data.tracking_days.size == 0:
        return "the tracking curves are empty (no days)"
    fig, ax = _figure()
    ax.plot(data.tracking_days, data.tracking_actual, color="black", label="actual")
    ax.plot(data.tracking_days, data.tracking_predicted, color="tab:blue", linestyle="--", label="BG/NBD")
    if data.tracking_cutoff_day is not None:
        ax.axvline(data.tracking_cutoff_day, color="grey", linestyle=":", label="cutoff")
    ax.set(xlabel="day", ylabel="cumulative repeat active days", title="Tracking: calibration and holdout")
    ax.legend(loc="upper left")
    return fig


def _calibration(data: ReportData) -> _Plot:
    if not data.calibration:
        return _missing(data, "bgnbd", "no P(return) calibration deciles (no holdout evaluation)")
    predicted = [row["predicted"] for row in data.calibration]
    observed = [row["observed"] for row in data.calibration]
    fig, ax = _figure(5.5, 5.0)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    ax.plot(predicted, observed, marker="o", color="tab:blue", label="deciles")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted P(return)", ylabel="observed return rate",
           title="P(return) calibration on the holdout")
    ax.legend(loc="upper left")
    return fig


def _label(name: str) -> str:
    # Names come from tenants' events: '$' would start matplotlib mathtext (and a malformed formula
    # fails the whole report), and a 200-character name would squeeze the plot to nothing.
    name = str(name) if len(str(name)) <= 40 else str(name)[:39] + "…"
    return name.replace("$", r"\$")


def _bars(ax: Any, labels: Sequence[str], values: Sequence[float]) -> None:
    ax.barh(range(len(labels)), values, color="tab:blue")
    ax.set_yticks(range(len(labels)), [_label(label) for label in labels])
    ax.invert_yaxis()  # largest first, at the top


def _importance(data: ReportData) -> _Plot:
    if not data.feature_importance:
        return _missing(data, "importance", "no feature importance was computed for this run")
    ranked = sorted(data.feature_importance.items(), key=lambda kv: -kv[1])
    note = _dropped(len(ranked) - _MAX_BARS, "with less information not drawn")
    ranked = ranked[:_MAX_BARS]
    fig, ax = _figure(8.0, 1.5 + 0.3 * len(ranked))
    _bars(ax, [k for k, _ in ranked], [v for _, v in ranked])
    if data.label_entropy_bits is not None:  # in words: as a line on the axis it would squash the bars
        note += f"H(label) = {data.label_entropy_bits:.4g} bits, the most any feature can carry."
    ax.set(xlabel="mutual information with retention (bits)", title="Feature importance")
    return fig, note


def _impacts(data: ReportData) -> _Plot:
    if not data.action_impacts:
        return _missing(data, "impact", "no action impacts were computed for this run")
    rows = [(k, *map(float, v)) for k, v in data.action_impacts.items() if np.all(np.isfinite(v))]
    if not rows:
        return "no action had users who did and did not do it at the same activity level"
    note = _dropped(len(data.action_impacts) - len(rows), "without an estimate (no comparable users)")
    note += _dropped(len(rows) - _MAX_BARS, "with smaller effects not drawn")
    # Keep the largest effects either way, then show them from most helpful to most harmful.
    rows = sorted(sorted(rows, key=lambda row: -abs(row[1]))[:_MAX_BARS], key=lambda row: -row[1])
    fig, ax = _figure(8.0, 1.5 + 0.3 * len(rows))
    for i, (_, diff, low, high) in enumerate(rows):
        color = "tab:green" if low > 0 else "tab:red" if high < 0 else "grey"
        ax.errorbar(diff, i, xerr=[[diff - low], [high - diff]], fmt="o", color=color, capsize=3)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [_label(row[0]) for row in rows])
    ax.invert_yaxis()
    ax.set(xlabel="difference in return rate, did - did not (95% interval)",
           title="Action impact (green helps, red hurts, grey: no detectable effect)")
    return fig, note


def _channels(data: ReportData) -> _Plot:
    if not data.channel_prior_rates and not data.best_channel_users:
        return _missing(data, "channel", "no channel priors or best channels were computed for this run")
    fig, (left, right) = _figure(10.0, 1.5 + 0.35 * max(len(data.channel_prior_rates or {}),
                                                         len(data.best_channel_users or {})), cols=2)
    for ax, values, xlabel in ((left, data.channel_prior_rates, "tenant prior response rate"),
                               (right, data.best_channel_users, "share of users whose best channel it is")):
        if not values:
            ax.text(0.5, 0.5, "not available", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        total = sum(values.values()) if values is data.best_channel_users else 1.0
        _bars(ax, list(values), [v / total if total else 0.0 for v in values.values()])
        ax.set(xlabel=xlabel)
    fig.suptitle("Channels: the tenant's response-rate priors and users' best channels")
    return fig


def _send_time(data: ReportData) -> _Plot:
    if data.send_time_share is None:
        return _missing(data, "sendtime", "no send-time distribution was computed for this run")
    share = data.send_time_share
    total = share.sum()
    if total <= 0:
        return "the send-time distribution is empty (no engagement counted)"
    fig, ax = _figure(10.0, 3.5)
    image = ax.imshow(share / total, aspect="auto", cmap="viridis")
    ax.set_yticks(range(7), _WEEKDAYS)
    ax.set_xticks(range(0, 24, 2))
    ax.set(xlabel="hour of day (user's local time when known)", title="Engagement share by weekday and hour")
    fig.colorbar(image, ax=ax, label="share of engagement")
    return fig


PLOTS: tuple[tuple[str, Callable[[ReportData], _Plot]], ...] = (
    ("Tracking: cumulative repeat active days", _tracking), ("P(return) calibration", _calibration),
    ("Feature importance", _importance), ("Action impact", _impacts),
    ("Channels", _channels), ("Send time", _send_time),
)


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _fmt(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return "—" if value is None else "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return escape(str(value))


def _table(rows: Mapping[str, Any]) -> str:
    body = "".join(f"<tr><th>{escape(str(k))}</th><td>{_fmt(v)}</td></tr>" for k, v in rows.items())
    return f"<table>{body}</table>"


def _header(data: ReportData) -> str:
    fields = {"tenant": data.tenant, "version": data.version, "status": data.status, "created at": data.created_at,
              "cutoff": data.cutoff, "holdout (days)": data.holdout_days, "horizon (days)": data.horizon_days}
    notes = [f"<li>{escape(r)}</li>" for r in data.reasons]
    notes += [f"<li>{escape(m)} not fitted: {escape(why)}</li>" for m, why in data.not_fitted.items()]
    return _table(fields) + (f"<ul class=notes>{''.join(notes)}</ul>" if notes else "")


def _params(data: ReportData) -> str:
    if not data.params:
        return "<p class=na>not available: no model was fitted</p>"
    return "".join(f"<h3>{escape(model)}</h3>{_table(values)}" for model, values in data.params.items())


def _metrics(data: ReportData) -> str:
    scalars = {k: v for k, v in data.metrics.items() if not isinstance(v, (dict, list, tuple))}
    per_user = data.metrics.get("visits_per_user")
    if not scalars and not per_user:
        return "<p class=na>not available: the run was not evaluated on a holdout</p>"
    return _table(scalars) + (f"<h3>expected visits per user</h3>{_table(per_user)}" if per_user else "")


_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.2em .6em;text-align:left}
th{background:#f3f3f3;font-weight:normal}td{font-variant-numeric:tabular-nums}img{max-width:100%}
.na{color:#a33;font-style:italic}.notes li{color:#a33}
.published{color:#170}.rejected{color:#b60}.failed{color:#b00}"""


def render_report(data: ReportData) -> str:
    """The report of one training run as a self-contained HTML document."""
    sections = [("Run", _header(data)), ("Parameters", _params(data)), ("Holdout evaluation", _metrics(data))]
    for title, plot in PLOTS:
        result = plot(data)
        if isinstance(result, str):
            sections.append((title, f"<p class=na>not available: {escape(result)}</p>"))
            continue
        fig, note = result if isinstance(result, tuple) else (result, "")
        image = f'<img alt="{escape(title)}" src="data:image/png;base64,{_png(fig)}">'
        sections.append((title, image + (f"<p>{escape(note)}</p>" if note else "")))
    body = "".join(f"<section><h2>{escape(t)}</h2>{content}</section>" for t, content in sections)
    title = f"retain model {escape(data.tenant)} {escape(data.version)}"
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{title}</title>"
            f'<style>{_CSS}</style></head><body><h1>{title} <span class="{escape(data.status)}">'
            f"({escape(data.status)})</span></h1>{body}</body></html>")


def write_report(store: ModelStore, tenant: str, version: str, data: ReportData) -> str:
    """Render ``data`` and store it as the version's report.html artifact; returns its store path."""
    if (data.tenant, data.version) != (tenant, version):
        # Writing one tenant's report under another's version would show it to the wrong tenant.
        raise ValueError(f"report is for {data.tenant}/{data.version}, not {tenant}/{version}")
    return store.put_artifact(tenant, version, REPORT_ARTIFACT, render_report(data).encode("utf-8"))
