"""`retain flower`: Celery's monitor on retain's broker, behind HTTP basic auth."""

from __future__ import annotations

import click

from retain.commands.output import progress
from retain.config import Settings


@click.command("flower")
@click.option("--host", default=None, help="Bind address (default RETAIN_FLOWER_HOST).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default RETAIN_FLOWER_PORT).")
@click.option("--insecure-no-auth", is_flag=True,
              help="Serve without authentication: whoever reaches the port can see tasks and control workers.")
def flower_command(host: str | None, port: int | None, insecure_no_auth: bool) -> None:
    """Serve Flower (workers, tasks, queue lengths; REST API under /api)."""
    from retain.flower import run_flower

    settings = Settings.from_env()
    if insecure_no_auth:
        progress(f"warning: Flower serves {host or settings.flower_host}:{port or settings.flower_port} "
                 "without authentication (--insecure-no-auth)")
    run_flower(settings, host, port, insecure_no_auth)
