"""Which nodes hold which primary token ranges of a keyspace, and the keyspace's gc_grace_seconds.

A node's primary ranges are those it is the first replica of, walking the ring clockwise from the
range's end token: what ``nodetool repair -pr`` repairs on that node. Repairing every node's
primary ranges covers the whole ring once, instead of RF times.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from retain.errors import RepairError
from retain.store.cassandra import CASSANDRA_ERRORS, CassandraStore


@dataclass(frozen=True)
class RingNode:
    """A node with its primary ranges of one keyspace, written ``(start,end]``."""

    address: str
    host_id: uuid.UUID
    dc: str
    is_up: bool
    ranges: tuple[str, ...]


def keyspace_exists(store: CassandraStore, keyspace: str) -> bool:
    row = store.execute("SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,)).one()
    return row is not None


def ring_nodes(store: CassandraStore, keyspace: str) -> list[RingNode]:
    """Every node that is the primary replica of some range of ``keyspace``, by datacenter and address."""
    if not keyspace_exists(store, keyspace):
        raise RepairError(f"keyspace {keyspace} does not exist")
    cluster = store.session.cluster
    try:
        # The driver learns of keyspaces from schema events; one created a moment ago may be missing.
        cluster.refresh_keyspace_metadata(keyspace)
    except CASSANDRA_ERRORS as exc:
        raise RepairError(f"could not read the metadata of keyspace {keyspace}: {exc}") from exc
    token_map = cluster.metadata.token_map
    if token_map is None or not token_map.ring:
        raise RepairError("the driver has no token map of the cluster (token metadata is off or the ring is empty)")
    token_map.rebuild_keyspace(keyspace, build_if_absent=True)
    ring, owners = token_map.ring, token_map.token_to_host_owner
    primary: dict[object, list[str]] = {}
    for i, token in enumerate(ring):
        replicas = set(token_map.get_replicas(keyspace, token))
        if not replicas:
            continue
        walk = (owners[ring[(i + step) % len(ring)]] for step in range(len(ring)))
        first = next((host for host in walk if host in replicas), None)
        if first is not None:
            primary.setdefault(first, []).append(f"({ring[i - 1].value},{token.value}]")
    nodes = [RingNode(host.address, host.host_id, host.datacenter or "", bool(host.is_up), tuple(ranges))
             for host, ranges in primary.items()]
    return sorted(nodes, key=lambda node: (node.dc, node.address))


def gc_grace_seconds(store: CassandraStore, keyspace: str) -> int | None:
    """The smallest gc_grace_seconds of the keyspace's tables; None when no table has one.

    Tables with 0 are left out: their tombstones are purged at once by design (TTL-only data), so
    repair timing cannot resurrect anything in them.
    """
    rows = store.execute("SELECT gc_grace_seconds FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,))
    graces = [row.gc_grace_seconds for row in rows if row.gc_grace_seconds]
    return min(graces) if graces else None
