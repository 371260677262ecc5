"""Profiles in Cassandra: written at the write consistency (LOCAL_QUORUM) from the processing
region, read at the read consistency (LOCAL_ONE) in every region.

The body is the whole profile as JSON in one cell, so a reader never sees fields of two rebuilds
mixed; the write timestamp is the profile's version, so the newest version wins everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cassandra.concurrent import execute_concurrent_with_args

from retain.store.cassandra import WRITE, CassandraStore

_INSERT = ("INSERT INTO profiles (tenant_id, user_id, version, model_version, computed_at, body) "
           "VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?")
_SELECT = "SELECT body FROM profiles WHERE tenant_id = ? AND user_id = ?"
# In-flight writes per batch: enough to keep a node busy, few enough not to trip its queue limits.
CONCURRENCY = 64


def encode(profile: dict[str, Any]) -> str:
    return json.dumps(profile, separators=(",", ":"), sort_keys=True)


def _rows(profiles: Sequence[dict[str, Any]], bodies: Sequence[str]) -> list[tuple]:
    return [(p["tenant_id"], p["user_id"], p["version"], p["model_version"], datetime.fromisoformat(p["computed_at"]),
             body, p["version"]) for p, body in zip(profiles, bodies)]


class ProfileStore:
    def __init__(self, store: CassandraStore) -> None:
        self.store = store

    def write(self, profiles: Sequence[dict[str, Any]], bodies: Sequence[str] | None = None) -> int:
        """Write profiles (``bodies``: their JSON, when already encoded); each lands only if no newer
        version of that user's profile is there."""
        rows = _rows(profiles, bodies if bodies is not None else [encode(p) for p in profiles])
        if not rows:
            return 0
        results = execute_concurrent_with_args(self.store.session, self.store.prepare(_INSERT), rows,
                                               concurrency=CONCURRENCY, raise_on_first_error=True,
                                               execution_profile=WRITE)
        return len(results)

    def start_writes(self, profiles: Sequence[dict[str, Any]], bodies: Sequence[str]) -> list:
        """:meth:`write` without waiting: the futures of the writes, to wait on once other work is done."""
        statement = self.store.prepare(_INSERT)
        return [self.store.session.execute_async(statement, row, execution_profile=WRITE)
                for row in _rows(profiles, bodies)]

    def get(self, tenant: str, user_id: str) -> dict[str, Any] | None:
        row = self.store.read(_SELECT, (tenant, user_id)).one()
        return None if row is None else json.loads(row.body)
