"""Two regions: profiles rebuilt through dc1 are served by an API bound to dc2, which keeps serving
(cached and uncached users) while dc1's node is down and dc1's /readyz says what failed."""

from __future__ import annotations

import uuid

import requests

from retain.ingest.pipeline import Ingestor
from retain.ingest.submit import prepare
from retain.profiles.cache import ProfileCache
from retain.profiles.rebuild import Rebuilder
from retain.store.cassandra import CassandraStore
from retain.store.redis import redis_client
from retain.store.schema import migrate
from retain.tenancy.config import TenantConfig
from retain.tenancy.registry import TenantRegistry
from tests.harness import poll, start_api
from tests.ingest_helpers import message


def recovered(schema, api: str) -> None:
    """Wait until everything the rest of the session shares works through dc1 again: the test
    process's store, the session API and worker (their drivers reconnect on their own schedule)."""
    from retain.worker.app import app

    poll(lambda: schema.read("SELECT tenant_id FROM tenants LIMIT 1") is not None, 120,
         "the session's Cassandra store reads through dc1 again")
    poll(lambda: requests.get(f"{api}/readyz", timeout=10).status_code == 200, 120, "the session API is ready again")
    poll(lambda: app.send_task("profiles.rebuild", args=["recovery-check", ["nobody"]], queue="profiles")
         .get(timeout=30)["written"] == 1, 120, "the session worker writes through dc1 again")


def test_dc2_serves_what_dc1_rebuilt_and_survives_dc1_down(two_dcs, settings, schema, api, worker) -> None:
    name = f"mr_{uuid.uuid4().hex[:10]}"
    both = {"dc1": 1, "dc2": 1}
    region1 = settings.replace(cassandra_keyspace=name, cassandra_replication=both,
                               redis_prefix=f"retain:r1{uuid.uuid4().hex[:6]}:")
    # Each region has its own cache; the second reads only its own datacenter.
    region2 = region1.replace(cassandra_hosts=[settings.stack_cassandra_addresses[1]], cassandra_local_dc="dc2",
                              redis_prefix=f"retain:r2{uuid.uuid4().hex[:6]}:")
    dc1 = CassandraStore(region1)
    client = redis_client(region1)
    apis = []
    try:
        migrate(dc1, both)
        tenant, keys = TenantRegistry(dc1).create("global-media")
        users = ["reader-cached", "reader-cold"]
        Ingestor(region1, dc1, client).process(prepare([message(u, "Product Viewed") for u in users],
                                                       tenant.tenant_id, "http", region1).payload())
        cache = ProfileCache(client, region1.redis_prefix, 3600, 30)
        assert Rebuilder(region1, dc1, cache, lambda _: TenantConfig()).rebuild(tenant.tenant_id, users).written == 2
        api1, url1 = start_api(region1, "region1-api")
        api2, url2 = start_api(region2, "region2-api")
        apis += [api1, api2]

        def lookup(url: str, user: str) -> requests.Response:
            return requests.get(f"{url}/v1/profiles/{user}", auth=(keys["read"], ""), timeout=20)

        first = poll(lambda: (r := lookup(url2, users[0])).status_code == 200 and r, 30,
                     "dc2's API serves the profile rebuilt through dc1 (replicated to dc2)")
        assert first.headers["X-Retain-Source"] == "store" and first.json()["tenant_id"] == tenant.tenant_id
        assert lookup(url2, users[0]).headers["X-Retain-Source"] == "cache"

        two_dcs.down(only="cassandra-dc1")
        ready1 = requests.get(f"{url1}/readyz", timeout=30)
        assert ready1.status_code == 503 and ready1.json()["failed"] == ["cassandra"], ready1.text
        assert "Cassandra" in ready1.json()["checks"]["cassandra"]
        assert requests.get(f"{url2}/readyz", timeout=30).status_code == 200, "dc2 stays healthy"
        cached, cold = lookup(url2, users[0]), lookup(url2, users[1])
        assert cached.status_code == 200 and cached.headers["X-Retain-Source"] == "cache"
        assert cold.status_code == 200 and cold.headers["X-Retain-Source"] == "store", cold.text
        assert cold.json()["user_id"] == users[1]
    finally:
        for process in apis:
            process.stop(30)
        two_dcs.up(dcs=2)
        poll(lambda: dc1.read("SELECT tenant_id FROM tenants LIMIT 1") is not None, 120,
             "dc1 answers again after its restart")
        recovered(schema, api)
        dc1.execute(f"DROP KEYSPACE IF EXISTS {name}")
        dc1.close()
        client.close()
