"""`retain tenant ...`: create tenants, rotate their keys, edit their configuration."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click

from retain.commands.output import json_option, report
from retain.config import Settings
from retain.store.cassandra import CassandraStore
from retain.tenancy.config import TenantConfig
from retain.tenancy.registry import KINDS, TenantRegistry


@contextmanager
def _registry() -> Iterator[TenantRegistry]:
    store = CassandraStore(Settings.from_env())
    try:
        yield TenantRegistry(store)
    finally:
        store.close()


def _keys_text(name: str, keys: dict[str, str]) -> str:
    lines = [f"tenant {name}"] + [f"  {kind} key: {key}" for kind, key in keys.items()]
    return "\n".join(lines + ["Store these keys now: retain keeps only their hashes and cannot show them again."])


@click.group("tenant")
def tenant_group() -> None:
    """Tenants, their keys and their configuration."""


@tenant_group.command("create")
@click.argument("name")
@json_option
def create(name: str, as_json: bool) -> None:
    """Create a tenant and print its write and read keys (once)."""
    with _registry() as registry:
        tenant, keys = registry.create(name)
    report(as_json, {"tenant": tenant.tenant_id, "write_key": keys["write"], "read_key": keys["read"]},
           lambda: _keys_text(tenant.tenant_id, keys))


@tenant_group.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List tenants."""
    with _registry() as registry:
        tenants = registry.list()
    report(as_json, {"tenants": [{"tenant": t.tenant_id, "created_at": t.created_at} for t in tenants]},
           lambda: "\n".join(t.tenant_id for t in tenants) or "no tenants")


@tenant_group.command("config")
@click.argument("name")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML file of settings to apply (fields not in it keep their defaults).")
@json_option
def config(name: str, path: Path | None, as_json: bool) -> None:
    """Show a tenant's configuration, or replace it with --file."""
    with _registry() as registry:
        if path is not None:
            registry.set_config(name, TenantConfig.from_yaml(path.read_text()))
        current = registry.get(name).config
    import yaml

    report(as_json, current.model_dump(), lambda: yaml.safe_dump(current.model_dump(), sort_keys=False).rstrip())


@tenant_group.group("keys")
def keys() -> None:
    """A tenant's API keys."""


@keys.command("rotate")
@click.argument("name")
@click.option("--kind", type=click.Choice(["write", "read", "both"]), default="both", show_default=True)
@click.option("--grace-hours", type=click.FloatRange(0), default=24.0, show_default=True,
              help="How long the old keys keep working.")
@json_option
def rotate(name: str, kind: str, grace_hours: float, as_json: bool) -> None:
    """Issue new keys; the old ones stop working after the grace period."""
    kinds = list(KINDS) if kind == "both" else [kind]
    with _registry() as registry:
        fresh = registry.rotate(name, kinds, int(grace_hours * 3600))
    report(as_json, {"tenant": name, **{f"{k}_key": v for k, v in fresh.items()}, "old_keys_expire_in_hours": grace_hours},
           lambda: _keys_text(name, fresh) + f"\nOld {kind} keys stop working in {grace_hours:g} h.")


@keys.command("list")
@click.argument("name")
@json_option
def list_keys(name: str, as_json: bool) -> None:
    """List a tenant's keys (prefixes only)."""
    with _registry() as registry:
        found = registry.keys(name)
    report(as_json, {"tenant": name, "keys": found},
           lambda: "\n".join(f"{k['kind']:6} {k['prefix']}…  created {k['created_at']}" for k in found))
