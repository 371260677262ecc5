"""The Cassandra store's multi-partition reads, against the real node."""

from __future__ import annotations

from retain.store.cassandra import WRITE, CassandraStore

_ONE = "SELECT message_id FROM events_by_user WHERE tenant_id = ? AND user_id = ?"
_MANY = "SELECT user_id, message_id FROM events_by_user WHERE tenant_id = ? AND user_id IN ? PER PARTITION LIMIT ?"


def test_reads_grouped_by_replica_are_routed_like_single_reads_and_miss_nothing(keyspace: CassandraStore) -> None:
    users = [f"u{n}-é" for n in range(30)]  # non-ASCII: the routing key is the UTF-8 bytes
    insert = ("INSERT INTO events_by_user (tenant_id, user_id, event_time, message_id, type, name, payload) "
              "VALUES (?, ?, ?, ?, 'track', 'x', '{}')")
    for n, user in enumerate(users):
        for k in range(n % 4 + 1):
            keyspace.write(insert, ("t1", user, 1_700_000_000_000 + k, f"m{k}"))
    keyspace.write(insert, ("t2", users[0], 1_700_000_000_000, "other-tenant"))

    reads = keyspace.by_replica(keyspace.prepare(_MANY), ("t1",), users, 2)
    one = keyspace.prepare(_ONE)
    routed = {bound.routing_key for bound in reads}
    assert routed <= {one.bind(("t1", u)).routing_key for u in users}, "each group is routed by a member's key"
    found: dict[str, list[str]] = {}
    for bound in reads:
        for row in keyspace.session.execute(bound, execution_profile=WRITE):
            found.setdefault(row.user_id, []).append(row.message_id)
    newest_two = {u: [f"m{k}" for k in range(n % 4, -1, -1)][:2] for n, u in enumerate(users)}  # newest first
    assert found == newest_two
