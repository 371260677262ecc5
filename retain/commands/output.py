"""How commands report: text for people, or exactly one JSON document on stdout with --json."""

from __future__ import annotations

import json
from typing import Any, Callable

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")


def progress(message: str) -> None:
    """Progress goes to stderr, so stdout stays one document."""
    click.echo(message, err=True)


def report(as_json: bool, document: Any, text: Callable[[], str]) -> None:
    if as_json:
        click.echo(json.dumps(document, indent=2, default=str))
    else:
        click.echo(text())
