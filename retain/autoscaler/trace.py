"""Arrival traces for the autoscaler simulator: a file format, a reader that names what is wrong,
and a generator of a working day's load (diurnal cycle, random bursts, quiet nights).

Format: CSV with the header ``t_seconds,arrivals``, one row per second that has arrivals:
``t_seconds`` is a whole second from the trace's start (>= 0, strictly increasing), ``arrivals`` the
tasks enqueued during [t, t+1). Seconds not listed had no arrivals, so a sparse trace stays small.
Lines starting with ``#`` are comments (the generator records its parameters there); blank lines
are skipped. The trace lasts until the end of its last listed second, or longer if a
``# duration_s=N`` comment says so (a generated trace whose last minutes were quiet keeps them).

Per-second counts rather than timestamps per task: a day at ~10 tasks/s is ~1 MB either way, but
counts are what a queue-length metric or an access-log histogram gives, so real traces convert.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retain.errors import RetainError

HEADER = ("t_seconds", "arrivals")
DAY = 86_400


class TraceError(RetainError):
    """A trace file is missing or malformed; the message names the file, line and field."""


@dataclass(frozen=True)
class Trace:
    """Arrivals per second: ``seconds[i]`` had ``counts[i]`` arrivals; the trace lasts ``duration`` s."""

    seconds: np.ndarray
    counts: np.ndarray
    duration: int
    source: str = ""
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def tasks(self) -> int:
        return int(self.counts.sum())

    def peak_rate(self, window: int = 60) -> float:
        """Highest mean arrival rate (tasks/s) over any aligned ``window``-second bucket."""
        if self.tasks == 0:
            return 0.0
        buckets = np.bincount(self.seconds // window, weights=self.counts)
        return float(buckets.max()) / window


def _field(path: Path, line_no: int, name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise TraceError(f"trace {path} line {line_no}: field {name!r}: {raw.strip()!r} is not a whole number") from None
    if value < 0:
        raise TraceError(f"trace {path} line {line_no}: field {name!r}: {value} is negative")
    return value


def read_trace(path: str | Path) -> Trace:
    """Read and validate a trace file; raise TraceError naming the file, line and field at fault."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise TraceError(f"trace {path}: no such file (make one with `retain autoscaler trace --out {path}`)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"trace {path}: cannot read it: {exc}") from None
    seconds: list[int] = []
    counts: list[int] = []
    meta: dict[str, str] = {}
    header_seen = False
    last = -1
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            key, sep, value = stripped.lstrip("# ").partition("=")
            if sep:
                meta[key.strip()] = value.strip()
            continue
        parts = stripped.split(",")
        if not header_seen:
            if tuple(p.strip() for p in parts) != HEADER:
                raise TraceError(f"trace {path} line {line_no}: expected the header {','.join(HEADER)!r}, "
                                 f"got {stripped[:60]!r}")
            header_seen = True
            continue
        if len(parts) != 2:
            raise TraceError(f"trace {path} line {line_no}: expected 2 fields (t_seconds,arrivals), got {len(parts)}")
        t = _field(path, line_no, "t_seconds", parts[0])
        if t <= last:
            raise TraceError(f"trace {path} line {line_no}: field 't_seconds': {t} is not after the previous "
                             f"row's {last} (rows must be in increasing time order)")
        seconds.append(t)
        counts.append(_field(path, line_no, "arrivals", parts[1]))
        last = t
    if not header_seen:
        raise TraceError(f"trace {path}: empty, expected the header {','.join(HEADER)!r} and rows")
    duration = last + 1
    if "duration_s" in meta:
        try:
            duration = max(duration, int(meta["duration_s"]))
        except ValueError:
            raise TraceError(f"trace {path}: comment duration_s={meta['duration_s']!r} is not a whole number") from None
    if duration <= 0 or sum(counts) == 0:
        raise TraceError(f"trace {path}: no arrivals in it, nothing to simulate")
    return Trace(np.asarray(seconds, dtype=np.int64), np.asarray(counts, dtype=np.int64), duration, str(path), meta)


def diurnal_rate(t: np.ndarray, base_rate: float, night_rate: float, start_hour: float = 0.0) -> np.ndarray:
    """Expected tasks/s at second ``t``: quiet from 00:00 to 06:00 (``night_rate`` x base), rising to
    ``base_rate`` at 15:00 and back down by midnight along a half sine."""
    hour = (start_hour + t / 3600.0) % 24.0
    day = np.where(hour >= 6.0, np.sin(np.pi * (hour - 6.0) / 18.0), 0.0)
    return base_rate * (night_rate + (1.0 - night_rate) * np.clip(day, 0.0, None))


def generate_trace(hours: float = 24.0, seed: int = 0, base_rate: float = 10.0, night_rate: float = 0.05,
                   bursts: int = 6, burst_factor: float = 3.0, burst_minutes: float = 5.0,
                   start_hour: float = 0.0) -> Trace:
    """A trace of ``hours``: Poisson arrivals around the diurnal rate, plus ``bursts`` per 24 h at random
    times, each adding up to ``burst_factor`` x base_rate for 1 to ``burst_minutes`` minutes."""
    if hours <= 0 or base_rate <= 0 or not 0 <= night_rate <= 1 or bursts < 0 or burst_factor < 0 or burst_minutes <= 0:
        raise TraceError("trace generator: need hours > 0, base rate > 0, 0 <= night rate <= 1, bursts >= 0, "
                         "burst factor >= 0 and burst minutes > 0")
    rng = np.random.default_rng(seed)
    duration = int(math.ceil(hours * 3600))
    t = np.arange(duration)
    rate = diurnal_rate(t, base_rate, night_rate, start_hour)
    for _ in range(int(round(bursts * hours / 24.0))):
        # A burst is an extra flat rate on top of the cycle: a batch job or a campaign send, which
        # the diurnal shape does not predict and the autoscaler must absorb.
        start = int(rng.integers(0, duration))
        length = int(rng.uniform(60.0, burst_minutes * 60.0 + 1))
        rate[start:start + length] += base_rate * burst_factor * rng.uniform(0.5, 1.0)
    counts = rng.poisson(rate)
    keep = np.nonzero(counts)[0]
    meta = {"generator": "retain autoscaler trace", "hours": f"{hours:g}", "seed": str(seed),
            "base_rate": f"{base_rate:g}", "night_rate": f"{night_rate:g}", "bursts": str(bursts),
            "burst_factor": f"{burst_factor:g}", "burst_minutes": f"{burst_minutes:g}",
            "start_hour": f"{start_hour:g}", "duration_s": str(duration)}
    return Trace(keep.astype(np.int64), counts[keep].astype(np.int64), duration, "", meta)


def write_trace(trace: Trace, path: str | Path) -> Path:
    """Write ``trace`` in the CSV format above (parameters as comments); return the path."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {key}={value}" for key, value in trace.meta.items()]
    lines.append(",".join(HEADER))
    lines += [f"{s},{c}" for s, c in zip(trace.seconds.tolist(), trace.counts.tolist())]
    path.write_text("\n".join(lines) + "\n")
    return path
