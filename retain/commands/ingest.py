"""``retain ingest``: send NDJSON event files through the HTTP API's ``/v1/import``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from retain.commands.output import json_option



@click.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--url", required=True, help="Base URL of the API, e.g. http://127.0.0.1:8000.")
@click.option("--write-key", required=True, help="The tenant's write key (HTTP Basic user name).")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True,
              help="Most events per request.")
@click.option("--max-batch-bytes", type=click.IntRange(min=1024), default=450_000, show_default=True,
              help="Most uncompressed bytes per request.")
@click.option("--retry-deadline", type=click.FloatRange(min=0), default=300.0, show_default=True,
              help="Seconds to keep retrying a batch while the server is unavailable.")
@json_option
def ingest_command(paths: tuple[Path, ...], url: str, write_key: str, batch_size: int, max_batch_bytes: int,
                   retry_deadline: float, as_json: bool) -> None:
    """Send event files (or directories of events-*.ndjson) to the API, retrying safely."""
    from retain.ingest_client import count_events, expand_paths, send_files

    files = expand_paths(list(paths))
    total = count_events(files)
    # Progress goes to stderr, so stdout holds only the report (one JSON document with --json).
    with click.progressbar(length=total, label="sending events", file=sys.stderr) as bar:
        report = send_files(files, url, write_key, batch_size=batch_size, max_batch_bytes=max_batch_bytes,
                            progress=lambda result: bar.update(result.events), retry_deadline=retry_deadline)
    document = report.to_dict()
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(f"sent {report.events} events from {len(report.files)} file(s) in {report.batches} batches "
               f"({report.retries} retries, {report.seconds:.1f}s); accepted {report.accepted}, "
               f"rejected {report.rejected_count}")
    for entry in report.rejected[:10]:
        click.echo(f"  {entry['file']} lines {entry['lines'][0]}-{entry['lines'][1]}: {entry['count']} rejected")
