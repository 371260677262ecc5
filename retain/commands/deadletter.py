"""`retain deadletter list`: rejected events with their reason and raw payload."""

from __future__ import annotations

import click

from retain.commands.output import json_option, report
from retain.config import Settings
from retain.ingest.deadletter import list_letters
from retain.store.cassandra import CassandraStore


@click.group("deadletter")
def deadletter_group() -> None:
    """Events that were rejected."""


@deadletter_group.command("list")
@click.option("--tenant", required=True)
@click.option("--days", type=click.IntRange(1, 366), default=1, show_default=True, help="How many days back (UTC).")
@click.option("--limit", type=click.IntRange(1, 10000), default=100, show_default=True)
@json_option
def list_(tenant: str, days: int, limit: int, as_json: bool) -> None:
    """List a tenant's newest dead letters."""
    store = CassandraStore(Settings.from_env())
    try:
        letters = list_letters(store, tenant, days, limit)
    finally:
        store.close()
    report(as_json, {"tenant": tenant, "dead_letters": [d.to_dict() for d in letters]},
           lambda: "\n".join(f"{d.received_at:%Y-%m-%d %H:%M:%S} {d.source:8} {d.reason}\n    {d.raw[:200]}"
                             for d in letters) or "no dead letters")
