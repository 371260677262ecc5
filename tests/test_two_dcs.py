"""Two datacenters: written through dc1 at LOCAL_QUORUM, read through dc2 at LOCAL_ONE."""

from __future__ import annotations

import uuid

from retain.store.cassandra import CassandraStore
from retain.store.schema import migrate
from tests.harness import poll


def test_row_written_in_dc1_is_read_in_dc2(two_dcs, settings) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    dc1 = CassandraStore(settings, local_dc="dc1", keyspace=name)
    dc2_settings = settings.replace(cassandra_hosts=[settings.stack_cassandra_addresses[1]], cassandra_local_dc="dc2")
    dc2 = CassandraStore(dc2_settings, keyspace=name)
    try:
        migrate(dc1, {"dc1": 1, "dc2": 1})
        tenant = f"tenant-{uuid.uuid4().hex[:6]}"
        dc1.write("INSERT INTO tenants (tenant_id, name, created_at) VALUES (?, ?, toTimestamp(now()))",
                  (tenant, "Acme Media"))
        assert dc2.local_hosts_up() == [settings.stack_cassandra_addresses[1]]

        def read_in_dc2():
            result = dc2.read("SELECT name FROM tenants WHERE tenant_id = ?", (tenant,))
            assert result.response_future.coordinator_host.address == settings.stack_cassandra_addresses[1]
            return result.one()

        row = poll(read_in_dc2, 30, "the row written through dc1 is readable at LOCAL_ONE in dc2")
        assert row.name == "Acme Media"
    finally:
        dc1.execute(f"DROP KEYSPACE IF EXISTS {name}")
        dc1.close()
        dc2.close()
