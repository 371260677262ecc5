"""Flower, Celery's monitor, on retain's broker: what `retain flower` runs.

Flower shows the workers (by inspecting them), every task's life (from the events each worker
sends: `retain worker` always runs with task events on, and Flower periodically re-enables them on
any worker that lost them) and the length of each queue (read from the Redis broker itself).

Flower can revoke tasks and shut workers down, so it requires HTTP basic auth unless told
otherwise. The credentials are handed to Flower inside this process, never on a command line
(where `ps` would show them), and a password may hold any character: Flower's own command-line
parsing would split it at commas.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from retain.config import Settings, env_name
from retain.errors import ConfigError, StackError

# Flower answers its REST API without authentication only when this variable says so.
_UNAUTHENTICATED_API = "FLOWER_UNAUTHENTICATED_API"
_SAVE_INTERVAL_MS = 60_000


def flower_home(settings: Settings) -> Path:
    """Where Flower keeps its state (persistent mode)."""
    return settings.home.resolve() / "flower"


def basic_auth(settings: Settings, insecure_no_auth: bool = False) -> list[str]:
    """Flower's ``user:password`` credentials; ConfigError when they are missing and required."""
    if insecure_no_auth:
        return []
    missing = [env_name(name) for name in ("flower_user", "flower_password") if not getattr(settings, name)]
    if missing:
        raise ConfigError(
            f"Flower requires HTTP basic auth: set {env_name('flower_user')} and {env_name('flower_password')} "
            f"({' and '.join(missing)} not set), or pass --insecure-no-auth to serve without it")
    return [f"{settings.flower_user}:{settings.flower_password}"]


def flower_argv(settings: Settings, host: str, port: int) -> list[str]:
    """The `celery flower` arguments for these settings (credentials are not among them)."""
    home = flower_home(settings)
    argv = [
        "flower",
        f"--address={host}",
        f"--port={port}",
        f"--logging={settings.log_level.lower()}",
        # Flower's default database is a file in the working directory.
        f"--db={home / 'flower.db'}",
        f"--persistent={settings.flower_persistent}",
        "--enable_events=True",
    ]
    if settings.flower_persistent:
        # Without an interval Flower saves only at a clean shutdown; a kill would lose everything.
        argv.append(f"--state_save_interval={_SAVE_INTERVAL_MS}")
    if settings.flower_purge_offline_seconds:
        argv.append(f"--purge_offline_workers={settings.flower_purge_offline_seconds}")
    return argv


def run_flower(settings: Settings, host: str | None = None, port: int | None = None,
               insecure_no_auth: bool = False) -> None:
    """Serve Flower until SIGTERM or Ctrl-C."""
    credentials = basic_auth(settings, insecure_no_auth)
    host = host or settings.flower_host
    port = port or settings.flower_port

    from tornado.options import options

    import flower.options  # noqa: F401  (defines Flower's options on tornado's registry)
    from retain.worker.app import app

    options.basic_auth = credentials
    if credentials:
        os.environ.pop(_UNAUTHENTICATED_API, None)
    else:
        os.environ[_UNAUTHENTICATED_API] = "true"
    flower_home(settings).mkdir(parents=True, exist_ok=True)
    try:
        app.start(flower_argv(settings, host, port))
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise StackError(f"Flower cannot listen on {host}:{port}: {exc.strerror}") from None
        raise
