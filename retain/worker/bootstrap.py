"""Starting a Celery worker or beat for retain's queues (what `retain worker` and `retain beat` run)."""

from __future__ import annotations

import socket

from retain.config import QUEUES, Settings
from retain.errors import ConfigError


def parse_queues(value: str) -> list[str]:
    """``ingest,profiles`` or ``all`` → queue names; ConfigError naming an unknown one."""
    names = list(QUEUES) if value.strip() == "all" else [q.strip() for q in value.split(",") if q.strip()]
    unknown = [q for q in names if q not in QUEUES]
    if unknown or not names:
        raise ConfigError(f"--queues: unknown queue(s) {', '.join(unknown) or '(none given)'}; "
                          f"choose from {', '.join(QUEUES)} or all")
    return names


def worker_argv(settings: Settings, queues: list[str], concurrency: int | None = None,
                hostname: str | None = None) -> list[str]:
    from retain.worker.app import prefetch_for

    name = hostname or f"{'+'.join(queues)}@{socket.gethostname()}"
    return [
        "worker",
        f"--queues={','.join(queues)}",
        f"--concurrency={concurrency or settings.worker_concurrency}",
        f"--prefetch-multiplier={prefetch_for(queues, settings)}",
        f"--hostname={name}",
        f"--loglevel={settings.log_level}",
        "--task-events",
    ]


def run_worker(settings: Settings, queues: list[str], concurrency: int | None = None,
               hostname: str | None = None) -> None:
    from retain.worker.app import app

    # No startup banner among JSON log lines (celery's --quiet).
    quiet = ["--quiet"] if settings.log_format == "json" else []
    app.worker_main(quiet + worker_argv(settings, queues, concurrency, hostname))


def run_beat(settings: Settings) -> None:
    from retain.metrics import worker as observability
    from retain.worker.app import app

    observability.process_name = "beat"
    settings.home.mkdir(parents=True, exist_ok=True)
    # Last-run times live in Redis with the beat lock (see beatlock), not in a schedule file.
    app.start(["beat", f"--loglevel={settings.log_level}",
               "--scheduler=retain.worker.beatlock:LockedScheduler"])
