"""``retain generate``: a synthetic tenant's behaviour events with their true parameters."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from retain.commands.output import json_option



def _text(document: dict) -> str:
    params = document["params"]
    bg, gg = params["bgnbd"], params["gamma_gamma"]
    summary = document["summary"]
    lines = [
        f"tenant {document['tenant']}: {document['users']} users over {document['days']} days "
        f"({document['start'][:10]} to {document['end'][:10]}), seed {document['seed']}",
        f"  {document['events']} events in {len(document['files'])} file(s) under {document['out_dir']} "
        f"({document['seconds']:.1f}s)",
        f"  truth: {document['truth_file']}, per user: {document['users_file']}",
        f"  BG/NBD (days): r={bg['r']} alpha={bg['alpha']} a={bg['a']} b={bg['b']}",
        f"  Gamma-Gamma: p={gg['p']} q={gg['q']} gamma={gg['gamma']}",
        f"  visits {summary['visits']}, users without a repeat visit {summary['users_without_repeat_visit']}, "
        f"alive at end {summary['alive_at_end']}, orders {summary['orders']} (revenue {summary['revenue']:.2f} USD)",
    ]
    lines += [f"  {name}: {count}" for name, count in document["by_event"].items()]
    return "\n".join(lines)


@click.command("generate")
@click.option("--tenant", required=True, help="Tenant the events belong to (also part of each messageId).")
@click.option("--users", type=click.IntRange(min=1), required=True, help="How many users.")
@click.option("--days", type=click.IntRange(min=1), required=True, help="Length of the window, in days.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed; the same seed gives the same files.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for events-NNNNN.ndjson, truth.json and users.ndjson (created if missing).")
@click.option("--start", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="First day of the window, UTC (default: DAYS days before today).")
@click.option("--events-per-file", type=click.IntRange(min=1), default=50_000, show_default=True,
              help="Most events in one file.")
@click.option("--overwrite", is_flag=True, help="Replace events a previous run left in the directory.")
@json_option
def generate_command(tenant: str, users: int, days: int, seed: int, out_dir: Path, start: datetime | None,
                     events_per_file: int, overwrite: bool, as_json: bool) -> None:
    """Write synthetic behaviour events (Segment NDJSON) whose true model parameters are known."""
    from retain.generator import generate

    if not tenant.strip():
        raise click.BadParameter("must not be empty", param_hint="--tenant")
    if out_dir.exists() and not out_dir.is_dir():
        raise click.BadParameter(f"{out_dir} is not a directory", param_hint="--out")
    report = generate(tenant, users, days, seed, out_dir, start=start, events_per_file=events_per_file,
                      overwrite=overwrite)
    document = report.to_dict()
    click.echo(json.dumps(document, indent=2) if as_json else _text(document))
