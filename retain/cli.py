"""The `retain` command line.

Every command that reports something takes ``--json`` and then prints exactly one JSON document on
stdout (progress goes to stderr); every command that serves takes ``--host`` and ``--port``.
Errors retain anticipates print one line on stderr and exit non-zero.
"""

from __future__ import annotations

import json
from typing import Any

import click

from retain import __version__
from retain.commands.output import json_option
from retain.commands.output import progress as _progress
from retain.commands.output import report as _report
from retain.config import Settings, docs_table
from retain.errors import RetainError


class RetainGroup(click.Group):
    """Turns RetainError into a message and an exit code instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RetainError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


def _settings(ctx: click.Context) -> Settings:
    if ctx.obj is None:
        ctx.obj = Settings.from_env()
    return ctx.obj




@click.group(cls=RetainGroup)
@click.version_option(__version__, prog_name="retain")
def main() -> None:
    """retain: behaviour events in, per-user predictions out."""


# --- stack -----------------------------------------------------------------------------------
@main.group(cls=RetainGroup)
def stack() -> None:
    """The local stack of real services (Redis, Cassandra), without Docker."""


def _status_text(statuses) -> str:
    lines = [f"{'SERVICE':16} {'STATE':13} {'PID':>7}  ADDRESS"]
    for s in statuses:
        lines.append(f"{s.name:16} {s.state:13} {s.pid or '-':>7}  {s.address}" + (f"  ({s.detail})" if s.detail else ""))
    return "\n".join(lines)


@stack.command("up")
@click.option("--dcs", type=click.IntRange(1, 2), default=1, show_default=True, help="Cassandra datacenters (one node each).")
@json_option
@click.pass_context
def stack_up(ctx: click.Context, dcs: int, as_json: bool) -> None:
    """Start Redis and Cassandra (already running services are kept)."""
    from retain.stack import Stack

    statuses = Stack(_settings(ctx)).up(dcs, progress=_progress)
    _report(as_json, {"services": [s.to_dict() for s in statuses]}, lambda: _status_text(statuses))


@stack.command("fetch")
@json_option
@click.pass_context
def stack_fetch(ctx: click.Context, as_json: bool) -> None:
    """Find Java 17 and resolve Cassandra's jars from Maven Central, starting nothing."""
    from retain.stack import Stack

    found = Stack(_settings(ctx)).fetch(progress=_progress)
    _report(as_json, found, lambda: "\n".join(f"{k}: {v}" for k, v in found.items()))


@stack.command("down")
@click.option("--service", default=None, help="Stop only this service (e.g. cassandra-dc1).")
@json_option
@click.pass_context
def stack_down(ctx: click.Context, service: str | None, as_json: bool) -> None:
    """Stop the services retain started."""
    from retain.stack import Stack

    stopped = Stack(_settings(ctx)).down(service, progress=_progress)
    _report(as_json, {"stopped": stopped}, lambda: "stopped: " + (", ".join(stopped) or "nothing was running"))


@stack.command("status")
@json_option
@click.pass_context
def stack_status(ctx: click.Context, as_json: bool) -> None:
    """Show each service's state (exit 3 if any is not running)."""
    from retain.stack import Stack

    statuses = Stack(_settings(ctx)).status()
    _report(as_json, {"services": [s.to_dict() for s in statuses]}, lambda: _status_text(statuses))
    if any(s.state != "running" for s in statuses):
        ctx.exit(3)


@stack.command("logs")
@click.argument("service")
@click.option("-n", "--lines", default=100, show_default=True, help="How many lines from the end.")
@click.pass_context
def stack_logs(ctx: click.Context, service: str, lines: int) -> None:
    """Print the end of a service's log (redis, cassandra-dc1, cassandra-dc2)."""
    from retain.stack import Stack

    click.echo(Stack(_settings(ctx)).logs(service, lines))


# --- db --------------------------------------------------------------------------------------
@main.group(cls=RetainGroup)
def db() -> None:
    """The Cassandra schema."""


@db.command("migrate")
@click.option("--dir", "directory", type=click.Path(exists=True, file_okay=False), default=None,
              help="Directory of NNNN_name.cql files (default: retain's own migrations).")
@json_option
@click.pass_context
def db_migrate(ctx: click.Context, directory: str | None, as_json: bool) -> None:
    """Create the keyspace and apply pending migrations (idempotent)."""
    from pathlib import Path

    from retain.store.cassandra import CassandraStore
    from retain.store.schema import MIGRATIONS_DIR, migrate

    settings = _settings(ctx)
    store = CassandraStore(settings)
    try:
        report = migrate(store, settings.cassandra_replication, Path(directory) if directory else MIGRATIONS_DIR)
    finally:
        store.close()

    def text() -> str:
        lines = [f"keyspace {report.keyspace}: {len(report.applied)} applied, {len(report.already)} already applied"]
        lines += [f"  applied {name}" for name in report.applied]
        if report.replication_changed:
            lines.append("  replication changed: run `retain db repair --full` so new replicas get the data")
        if not report.schema_agreed:
            lines.append("  not every node reports the new schema yet (one is down or slow): check "
                         "`nodetool describecluster` before starting processes that use it")
        return "\n".join(lines)

    _report(as_json, report.to_dict(), text)


@db.command("status")
@json_option
@click.pass_context
def db_status(ctx: click.Context, as_json: bool) -> None:
    """List applied and pending migrations."""
    from retain.store.cassandra import CassandraStore
    from retain.store.schema import applied_versions, load_migrations

    store = CassandraStore(_settings(ctx))
    try:
        applied = applied_versions(store)
    finally:
        store.close()
    done = {row["version"] for row in applied}
    pending = [m.path.name for m in load_migrations() if m.version not in done]
    _report(as_json, {"applied": applied, "pending": pending},
            lambda: "\n".join([f"applied {r['version']:04d}_{r['name']} at {r['applied_at']}" for r in applied]
                              + [f"pending {name}" for name in pending]))


# --- processes -------------------------------------------------------------------------------
@main.command()
@click.option("--queues", default="all", show_default=True, help="Comma-separated queues, or all.")
@click.option("--concurrency", type=click.IntRange(1), default=None, help="Pool processes (default RETAIN_WORKER_CONCURRENCY).")
@click.option("--hostname", default=None, help="Worker node name (default QUEUES@host).")
@click.pass_context
def worker(ctx: click.Context, queues: str, concurrency: int | None, hostname: str | None) -> None:
    """Run a Celery worker consuming the given queues."""
    from retain.worker.bootstrap import parse_queues, run_worker

    run_worker(_settings(ctx), parse_queues(queues), concurrency, hostname)


@main.command()
@click.pass_context
def beat(ctx: click.Context) -> None:
    """Run Celery beat (the periodic schedule)."""
    from retain.worker.bootstrap import run_beat

    run_beat(_settings(ctx))


@main.command()
@click.option("--host", default=None, help="Bind address (default RETAIN_API_HOST).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default RETAIN_API_PORT).")
@click.pass_context
def api(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the HTTP API with gunicorn."""
    from retain.webapi.server import serve

    settings = _settings(ctx)
    serve(settings, host or settings.api_host, port or settings.api_port)


# --- config ----------------------------------------------------------------------------------
@main.group(cls=RetainGroup)
def config() -> None:
    """Settings (RETAIN_* environment variables)."""


@config.command("show")
@json_option
@click.pass_context
def config_show(ctx: click.Context, as_json: bool) -> None:
    """Print the effective settings (secrets masked)."""
    env = _settings(ctx).to_env(redact=True)
    _report(as_json, env, lambda: "\n".join(f"{k}={v}" for k, v in env.items()))


@config.command("docs")
def config_docs() -> None:
    """Print the settings table (Markdown) that the README embeds."""
    click.echo(docs_table())


# --- demo ------------------------------------------------------------------------------------
@main.command()
@click.option("--exit", "exit_when_done", is_flag=True, help="Stop what the demo started when done, instead of waiting for Ctrl-C.")
@click.option("--dcs", type=click.IntRange(1, 2), default=1, show_default=True, help="Cassandra datacenters.")
@click.option("--users", type=click.IntRange(50, 1_000_000), default=2000, show_default=True, help="Users per tenant.")
@click.option("--days", type=click.IntRange(14, 365), default=60, show_default=True, help="Days of behaviour to generate.")
@json_option
@click.pass_context
def demo(ctx: click.Context, exit_when_done: bool, dcs: int, users: int, days: int, as_json: bool) -> None:
    """Run the whole system on this machine and show it working."""
    from retain.demo import Demo
    from retain.demo.summary import render

    def show(summary: dict) -> None:
        click.echo(json.dumps(summary, indent=2, default=str) if as_json else render(summary))

    Demo(_settings(ctx), progress=_progress).run(dcs=dcs, exit_when_done=exit_when_done, users=users, days=days,
                                                 show=show)


def _register_commands() -> None:
    from retain.commands.autoscaler import autoscaler_group
    from retain.commands.deadletter import deadletter_group
    from retain.commands.flower import flower_command
    from retain.commands.generate import generate_command
    from retain.commands.ingest import ingest_command
    from retain.commands.models import models_group, train_command
    from retain.commands.repair import repair_group
    from retain.commands.schedule import schedule_group
    from retain.commands.score import score_command
    from retain.commands.source import source_group
    from retain.commands.tenant import tenant_group

    for command in (tenant_group, deadletter_group, source_group, generate_command, ingest_command, train_command,
                    models_group, score_command, autoscaler_group):
        main.add_command(command)
    db.add_command(repair_group)
    main.add_command(flower_command)
    main.add_command(schedule_group)


_register_commands()
