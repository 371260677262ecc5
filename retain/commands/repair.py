"""`retain db repair ...`: repair the keyspace node by node, and show how recent each node's repair is.

Exit codes: 1 when a node's repair failed, 4 when another repair holds the lease (nothing was
done), 3 from `status` when a node's last success is older than gc_grace_seconds (or it has none).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import click

from retain.commands.output import json_option, progress, report
from retain.config import Settings
from retain.store.cassandra import CassandraStore

keyspace_option = click.option("--keyspace", default=None,
                               help="Keyspace to repair (default RETAIN_CASSANDRA_KEYSPACE); records stay in retain's.")


@contextmanager
def _store() -> Iterator[tuple[CassandraStore, Settings]]:
    settings = Settings.from_env()
    store = CassandraStore(settings)
    try:
        yield store, settings
    finally:
        store.close()


def _ranges(ranges: list[str]) -> str:
    # With vnodes a node has hundreds of ranges: --json lists them all.
    return " ".join(ranges) if len(ranges) <= 4 else f"{len(ranges)} ranges"


def _runs_text(runs: list[dict]) -> str:
    lines = [f"{'NODE':16} {'DC':6} {'KIND':11} {'RESULT':9} {'STARTED':20} {'SECONDS':>8}  RANGES"]
    for run in runs:
        seconds = f"{run['seconds']:.1f}" if run["seconds"] is not None else "-"
        lines.append(f"{run['node']:16} {run['dc']:6} {run['kind']:11} {run['result']:9} "
                     f"{run['started_at']:%Y-%m-%d %H:%M:%S} {seconds:>8}  {_ranges(run['ranges'])}")
    return "\n".join(lines)


@click.group("repair", invoke_without_command=True)
@click.option("--full/--incremental", "full", default=True, show_default=True,
              help="Full repair (every replica's data compared) or incremental (only data not yet repaired).")
@keyspace_option
@json_option
@click.pass_context
def repair_group(ctx: click.Context, full: bool, keyspace: str | None, as_json: bool) -> None:
    """Repair each node's primary ranges, one node at a time, under a cluster-wide lease.

    Refused (exit 4) while another repair runs; every node's run is recorded (`repair history`).
    """
    if ctx.invoked_subcommand is not None:
        return
    from retain.repair.run import FULL, INCREMENTAL, run_repair

    with _store() as (store, settings):
        outcome = run_repair(store, settings, FULL if full else INCREMENTAL, keyspace, progress=progress)
    document = outcome.to_dict()
    report(as_json, document, lambda: _runs_text(document["nodes"]) + "\n" + outcome.summary())
    if not outcome.ok:
        ctx.exit(1)


@repair_group.command("status")
@keyspace_option
@json_option
@click.pass_context
def status(ctx: click.Context, keyspace: str | None, as_json: bool) -> None:
    """Each node's last successful repair; warns (exit 3) when older than gc_grace_seconds."""
    from retain.repair.status import repair_status

    with _store() as (store, settings):
        outcome = repair_status(store, settings, keyspace)
    report(as_json, outcome.to_dict(), outcome.text)
    if outcome.stale:
        ctx.exit(3)


@repair_group.command("history")
@keyspace_option
@click.option("--limit", type=click.IntRange(1, 5000), default=20, show_default=True, help="Most recent node runs.")
@json_option
def history(keyspace: str | None, limit: int, as_json: bool) -> None:
    """The most recent node runs: node, kind, ranges, start, duration, result."""
    from retain.repair.runs import RunLog

    with _store() as (store, settings):
        runs = [run.to_dict() for run in RunLog(store).runs(keyspace or settings.cassandra_keyspace, limit)]
    report(as_json, {"runs": runs}, lambda: _runs_text(runs))
