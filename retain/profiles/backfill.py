"""Backfill: every user of a tenant in the event store becomes dirty, and the sweeps rebuild them
in batches like any other activity (after a bulk import, or to apply a new scoring rule).

The event store is partitioned by (tenant, user), so finding a tenant's users reads every
partition key of the table (a paged token-range scan): fine for an occasional operation, and the
reason streaming rebuilds never do it.
"""

from __future__ import annotations

import time

from retain.profiles.dirty import DirtyUsers
from retain.store.cassandra import WRITE, CassandraStore

_USERS = "SELECT DISTINCT tenant_id, user_id FROM events_by_user"
_CHUNK = 5000


def backfill(store: CassandraStore, dirty: DirtyUsers, tenant: str) -> int:
    """Mark every user of ``tenant`` with stored events dirty; returns how many."""
    total, chunk = 0, []
    for row in store.session.execute(store.prepare(_USERS), execution_profile=WRITE):
        if row.tenant_id != tenant:
            continue
        chunk.append(row.user_id)
        if len(chunk) >= _CHUNK:
            dirty.mark(tenant, chunk, int(time.time() * 1000))
            total, chunk = total + len(chunk), []
    if chunk:
        dirty.mark(tenant, chunk, int(time.time() * 1000))
        total += len(chunk)
    return total
