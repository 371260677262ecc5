"""Source definitions in Cassandra's ``sources`` table, and opening one as a :class:`Source`.

Options are validated when a source is added (a typo in an option name fails then, naming it, not
at the first poll) and again when it is opened, which fills in defaults added since.
"""

from __future__ import annotations

import importlib
import json
import re
from datetime import datetime, timezone
from typing import Any, Mapping

from retain.config import Settings
from retain.sources.base import Source, SourceDefinition, SourceError, SubmitFn
from retain.sources.checkpoints import Checkpoints
from retain.store.cassandra import CassandraStore
from retain.tenancy.registry import TenantRegistry

# Imported on use: each pulls in its own client library (boto3, pyarrow, psycopg).
KINDS = {
    "kinesis": "retain.sources.kinesis:KinesisSource",
    "s3": "retain.sources.s3:S3Source",
    "redshift": "retain.sources.redshift:RedshiftSource",
}
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def source_class(kind: str) -> type[Source]:
    if kind not in KINDS:
        raise SourceError(f"unknown source kind {kind!r}; kinds are {', '.join(KINDS)}")
    module, _, attr = KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), attr)


def open_source(definition: SourceDefinition, settings: Settings, store: CassandraStore,
                submit: SubmitFn | None = None) -> Source:
    """The Source for a definition; ``submit`` replaces the real one (the seam tests use)."""
    cls = source_class(definition.kind)
    return cls(definition, settings, store) if submit is None else cls(definition, settings, store, submit=submit)


def public_options(definition: SourceDefinition) -> dict[str, Any]:
    """The definition's options without secrets (a DSN's password)."""
    return source_class(definition.kind).redact_options(definition.options)


def describe(definition: SourceDefinition) -> dict[str, Any]:
    return {"name": definition.name, "tenant": definition.tenant_id, "kind": definition.kind,
            "options": public_options(definition),
            "created_at": definition.created_at.isoformat() if definition.created_at else None}


class SourceRegistry:
    def __init__(self, store: CassandraStore) -> None:
        self.store = store

    def add(self, name: str, tenant_id: str, kind: str, options: Mapping[str, Any]) -> SourceDefinition:
        if not _NAME.match(name):
            raise SourceError(f"source name {name!r}: use 1-63 lowercase letters, digits, '-' and '_', "
                              "starting with a letter")
        values = source_class(kind).validate_options(dict(options))
        TenantRegistry(self.store).get(tenant_id)
        # Millisecond precision: what Cassandra keeps, so the definition read back is the same.
        now = datetime.now(timezone.utc)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        row = self.store.write(
            "INSERT INTO sources (name, tenant_id, kind, options, created_at) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS",
            (name, tenant_id, kind, json.dumps(values, sort_keys=True), now),
        ).one()
        if not row.applied:
            raise SourceError(f"source {name!r} already exists (remove it first with `retain source remove {name}`)")
        return SourceDefinition(name, tenant_id, kind, values, now)

    def get(self, name: str) -> SourceDefinition:
        row = self.store.write("SELECT name, tenant_id, kind, options, created_at FROM sources WHERE name = ?",
                               (name,)).one()
        if row is None:
            raise SourceError(f"no source {name!r} (add it with `retain source add {name} ...`)")
        return _definition(row)

    def list(self) -> list[SourceDefinition]:
        rows = self.store.read("SELECT name, tenant_id, kind, options, created_at FROM sources")
        return sorted((_definition(row) for row in rows), key=lambda d: d.name)

    def remove(self, name: str) -> SourceDefinition:
        """Delete the definition and its checkpoints; adding it again starts from the beginning."""
        definition = self.get(name)
        Checkpoints(self.store, name).clear()
        self.store.write("DELETE FROM sources WHERE name = ?", (name,))
        return definition


def _definition(row: Any) -> SourceDefinition:
    created = row.created_at.replace(tzinfo=timezone.utc) if row.created_at else None
    return SourceDefinition(row.name, row.tenant_id, row.kind, json.loads(row.options or "{}"), created)
