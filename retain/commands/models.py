"""`retain train` and `retain models ...`: train a tenant's models, inspect and switch versions."""

from __future__ import annotations

from datetime import date

import click

from retain.commands.output import json_option, progress, report
from retain.config import Settings
from retain.models.store import ModelStore


def _cutoff(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint="--cutoff") from None


@click.command("train")
@click.option("--tenant", required=True)
@click.option("--cutoff", default=None, help="Last day of the calibration period (default: holdout ends yesterday).")
@click.option("--holdout-days", type=click.IntRange(1, 365), default=30, show_default=True)
@json_option
def train_command(tenant: str, cutoff: str | None, holdout_days: int, as_json: bool) -> None:
    """Train, evaluate and store a new version of a tenant's models (Spark)."""
    from retain.spark.train import default_cutoff, run_training

    settings = Settings.from_env()
    day = _cutoff(cutoff) or default_cutoff(holdout_days)
    progress(f"training {tenant}: calibration up to {day}, holdout {holdout_days} days, Spark {settings.spark_master}")
    result = run_training(settings, tenant, day, holdout_days)

    def text() -> str:
        lines = [f"{tenant} {result.version}: {result.status}"]
        for model, params in result.params.items():
            shown = ", ".join(f"{k}={v:.4g}" for k, v in params.items() if isinstance(v, float))
            lines.append(f"  {model}: {shown}")
        for metric in ("users", "p_return_auc", "visits_aggregate_error", "buyers"):
            if result.metrics.get(metric) is not None:
                lines.append(f"  {metric}: {result.metrics[metric]:.4g}")
        lines += [f"  not fitted, {model}: {why}" for model, why in result.not_fitted.items()]
        lines += [f"  {reason}" for reason in result.reasons]
        return "\n".join(lines)

    report(as_json, result.to_dict(), text)
    if result.status == "failed":
        raise SystemExit(1)


@click.group("models")
def models_group() -> None:
    """A tenant's model versions."""


@models_group.command("list")
@click.option("--tenant", required=True)
@json_option
def list_(tenant: str, as_json: bool) -> None:
    """List versions, newest last, marking the current one."""
    versions = ModelStore(Settings.from_env()).versions(tenant)
    report(as_json, {"tenant": tenant, "versions": versions},
           lambda: "\n".join(f"{'*' if v['current'] else ' '} {v['version']}  {v.get('status'):9}  "
                             f"auc={v.get('metrics', {}).get('p_return_auc')}" for v in versions) or "no versions")


@models_group.command("show")
@click.option("--tenant", required=True)
@click.argument("version")
@json_option
def show(tenant: str, version: str, as_json: bool) -> None:
    """Show a version's parameters, metrics and status."""
    import json

    info = ModelStore(Settings.from_env()).get(tenant, version)
    report(as_json, info, lambda: json.dumps(info, indent=2, default=str))


@models_group.command("promote")
@click.option("--tenant", required=True)
@click.argument("version")
@json_option
def promote(tenant: str, version: str, as_json: bool) -> None:
    """Make a published version current."""
    ModelStore(Settings.from_env()).promote(tenant, version)
    report(as_json, {"tenant": tenant, "current": version}, lambda: f"{tenant}: current version is {version}")


@models_group.command("rollback")
@click.option("--tenant", required=True)
@json_option
def rollback(tenant: str, as_json: bool) -> None:
    """Make the previously current version current again."""
    back = ModelStore(Settings.from_env()).rollback(tenant)
    report(as_json, {"tenant": tenant, "current": back}, lambda: f"{tenant}: current version is {back}")
