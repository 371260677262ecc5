"""`retain source ...`: define pull sources (Kinesis, S3, Redshift) and run them."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import click

from retain.commands.output import json_option, progress, report
from retain.config import Settings
from retain.sources.base import DEFAULT_MAX_RECORDS, PollReport, SourceOptionError
from retain.sources.registry import KINDS, SourceRegistry, describe, open_source
from retain.store.cassandra import CassandraStore


def parse_options(pairs: tuple[str, ...]) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SourceOptionError(pair.split("=")[0] or pair, "expected --option key=value")
        options[key.strip()] = value
    return options


def _report_text(result: PollReport) -> str:
    text = (f"{result.kind}:{result.source}: {result.records} read, {result.accepted} accepted, "
            f"{result.rejected} rejected, in {result.batches} batches over {result.rounds} round(s)")
    if result.objects:
        text += f", {result.objects} objects"
    return "\n".join([text] + [f"  skipped {s['key']}: {s['reason']}" for s in result.skipped])


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM end the run after the current round; a second one acts as usual (exits now)."""
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        progress(f"{signal.Signals(signum).name}: stopping after the current round")
        stop.set()
        signal.signal(signum, previous[signum])

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@click.group("source")
def source_group() -> None:
    """Pull sources: Kinesis streams, S3 prefixes and Redshift queries."""


@source_group.command("add")
@click.argument("name")
@click.option("--tenant", required=True, help="Tenant whose events the source carries.")
@click.option("--kind", required=True, type=click.Choice(sorted(KINDS)), help="What to pull from.")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
              help="kinesis: stream, start=trim_horizon|latest; s3: bucket, prefix, format=auto|ndjson|csv|parquet; "
                   "redshift: dsn, query, watermark_column, initial_watermark, page_size. Repeatable.")
@json_option
def add(name: str, tenant: str, kind: str, options: tuple[str, ...], as_json: bool) -> None:
    """Define a source."""
    store = CassandraStore(Settings.from_env())
    try:
        definition = SourceRegistry(store).add(name, tenant, kind, parse_options(options))
    finally:
        store.close()
    report(as_json, describe(definition), lambda: f"source {name} ({kind}) added for tenant {tenant}")


@source_group.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List sources (secrets redacted)."""
    store = CassandraStore(Settings.from_env())
    try:
        definitions = [describe(d) for d in SourceRegistry(store).list()]
    finally:
        store.close()

    def text() -> str:
        lines = [f"{d['name']:24} {d['kind']:9} {d['tenant']:20} " + " ".join(f"{k}={v}" for k, v in d["options"].items())
                 for d in definitions]
        return "\n".join(lines) or "no sources"

    report(as_json, {"sources": definitions}, text)


@source_group.command("remove")
@click.argument("name")
@json_option
def remove(name: str, as_json: bool) -> None:
    """Delete a source and its checkpoints (adding it again reads from the start)."""
    store = CassandraStore(Settings.from_env())
    try:
        SourceRegistry(store).remove(name)
    finally:
        store.close()
    report(as_json, {"removed": name}, lambda: f"source {name} removed")


@source_group.command("run")
@click.argument("name")
@click.option("--once", is_flag=True, help="One round, then exit.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Seconds between rounds that found nothing more to read.")
@click.option("--max-records", type=click.IntRange(min=1), default=DEFAULT_MAX_RECORDS, show_default=True,
              help="About how many records one round reads.")
@json_option
def run(name: str, once: bool, interval: float, max_records: int, as_json: bool) -> None:
    """Poll a source until SIGINT/SIGTERM (or once), submitting what is new to the ingest queue."""
    settings = Settings.from_env()
    store = CassandraStore(settings)
    try:
        source = open_source(SourceRegistry(store).get(name), settings, store)
        try:
            if once:
                result = source.poll_once(max_records)
            else:
                stop = threading.Event()

                def each(round_: PollReport) -> None:
                    if round_.records or round_.skipped:
                        progress(_report_text(round_))

                with _stop_on_signals(stop):
                    result = source.run(stop, interval, max_records=max_records, on_report=each)
        finally:
            source.close()
    finally:
        store.close()
    report(as_json, result.to_dict(), lambda: _report_text(result))
