"""Profiles rebuilt from the event store: the same answer as batch scoring, debounced dirty users,
versions that never go backwards, and rebuilds on a real worker."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

from retain.ingest.pipeline import Ingestor
from retain.ingest.submit import prepare
from retain.models.store import ModelStore
from retain.profiles.cache import ProfileCache
from retain.profiles.dirty import DirtyUsers, sweep
from retain.profiles.model import load_model
from retain.profiles.rebuild import Rebuilder
from retain.profiles.scoring import RUN_FIELDS
from retain.spark.scoring import score_tenant
from retain.spark.train import train_tenant
from retain.store.profiles import ProfileStore
from retain.store.redis import redis_client
from retain.tenancy.config import TenantConfig
from tests.harness import poll
from tests.ingest_helpers import message, post
from tests.lake_helpers import ingested_lake


def cache_for(settings, client) -> ProfileCache:
    return ProfileCache(client, settings.redis_prefix, 3600, 30)


def test_streaming_rebuild_gives_the_batch_profile(spark, data_redis, schema, test_settings, tmp_path) -> None:
    settings = test_settings.replace(lake_url=f"file://{tmp_path}/lake", model_store_url=f"file://{tmp_path}/models")
    tenant = f"same-{uuid.uuid4().hex[:8]}"
    today = datetime.now(timezone.utc).date()
    start = datetime.combine(today - timedelta(days=75), datetime.min.time(), timezone.utc)
    ingested_lake(data_redis, settings, schema, tenant, tmp_path / "gen", users=150, days=70, seed=3, start=start)
    config = TenantConfig()
    trained = train_tenant(spark, settings, tenant, config, cutoff=today - timedelta(days=20), holdout_days=14)
    assert trained.status == "published", trained.to_dict()
    model = load_model(ModelStore(settings), tenant, config)
    batch = score_tenant(spark, settings, tenant, model, datetime.now(timezone.utc))
    store = ProfileStore(schema)
    users = sorted(DirtyUsers(data_redis, settings.redis_prefix).claim(tenant, int(time.time() * 1000), 0, 1, 10**6))
    assert len(users) == batch.users > 100
    from_batch = {u: store.get(tenant, u) for u in users}

    rebuilder = Rebuilder(settings, schema, cache_for(settings, data_redis), lambda _: config)
    result = rebuilder.rebuild(tenant, users)
    assert result.written == result.cached == len(users) and result.model_version == trained.version
    for user in users:
        streamed, batched = store.get(tenant, user), from_batch[user]
        assert streamed["version"] > batched["version"], "the rebuild read newer than the lake's receive times"
        for name in batched:
            if name not in RUN_FIELDS:
                assert streamed[name] == batched[name], f"{user}.{name}: streaming {streamed[name]!r}, batch {batched[name]!r}"
    # Scoring the lake again cannot replace profiles the rebuild made from newer reads.
    streamed_versions = {u: store.get(tenant, u)["version"] for u in users}
    assert score_tenant(spark, settings, tenant, model, datetime.now(timezone.utc)).written == len(users)
    assert {u: store.get(tenant, u)["version"] for u in users} == streamed_versions


def test_an_older_rebuild_never_replaces_a_newer_profile(schema, data_redis, test_settings) -> None:
    store, cache = ProfileStore(schema), cache_for(test_settings, data_redis)
    tenant, user = f"v-{uuid.uuid4().hex[:8]}", "u1"
    profile = {"tenant_id": tenant, "user_id": user, "model_version": None, "computed_at": "2025-01-01T00:00:00+00:00"}
    newer, older = {**profile, "version": 2_000, "p_alive": 0.9}, {**profile, "version": 1_000, "p_alive": 0.1}
    store.write([newer])
    assert cache.put([newer]) == 1
    store.write([older])
    assert cache.put([older]) == 0
    assert store.get(tenant, user)["p_alive"] == 0.9
    assert cache.get_many(tenant, [user])[0].version == 2_000
    cache.remember_missing(tenant, user)
    assert cache.get_many(tenant, [user])[0].body is not None, "a remembered miss never hides a profile"


def test_a_burst_of_activity_is_one_rebuild_and_claims_expire(schema, data_redis, test_settings) -> None:
    tenant = f"d-{uuid.uuid4().hex[:8]}"
    ingestor = Ingestor(test_settings, schema, data_redis)
    for i in range(100):
        ingestor.process(prepare([message("busy", f"Click {i}")], tenant, "http", test_settings).payload())
    dirty = DirtyUsers(data_redis, test_settings.redis_prefix)
    assert dirty.tenants() == [tenant] and dirty.pending(tenant) == {"dirty": 1, "claimed": 0}
    now = int(time.time() * 1000)
    assert dirty.claim(tenant, now, debounce_ms=5_000, max_delay_ms=60_000, limit=10) == [], "still active"
    assert dirty.claim(tenant, now + 5_001, 5_000, 60_000, 10) == ["busy"], "quiet for the debounce"
    assert dirty.claim(tenant, now + 10_000, 5_000, 60_000, 10) == [], "claimed once"
    # The task that held the claim died: after the lease the user is dirty again, then claimable.
    assert dirty.expire_claims(tenant, now + 20_000, lease_ms=60_000) == 0
    assert dirty.expire_claims(tenant, now + 70_000, lease_ms=60_000) == 1
    assert dirty.pending(tenant) == {"dirty": 1, "claimed": 0}
    sent = []
    settings = test_settings.replace(profile_debounce_seconds=0)
    assert sweep(dirty, settings, lambda t, u, c: sent.append((t, u, c)), now + 80_000) == {tenant: 1}
    assert sent == [(tenant, ["busy"], now + 80_000)]
    assert dirty.release(tenant, now + 80_000, ["busy"]) == 1
    assert sweep(dirty, settings, lambda *a: sent.append(a), now + 90_000) == {}
    assert dirty.tenants() == [], "a tenant with nothing left is forgotten"
    # Activity that never pauses is rebuilt after the maximum delay anyway.
    ingestor.process(prepare([message("nonstop", "Click")], tenant, "http", test_settings).payload())
    later = int(time.time() * 1000)
    assert dirty.claim(tenant, later + 30_000, 5_000, 60_000, 10) == ["nonstop"]


def test_rebuilds_run_on_a_real_worker_after_activity(api, worker, tenant, schema, settings) -> None:
    from retain.worker.app import app

    user = f"u-{uuid.uuid4().hex[:6]}"
    assert post(api, "/v1/batch", tenant["write"], {"batch": [message(user, "Order Completed", properties={
        "revenue": 25.0}), message(user, "Email Opened", context={"timezone": "America/New_York"})]}).ok
    store = ProfileStore(schema)

    def rebuilt():
        app.send_task("ingest.sweep_dirty", queue="ingest").get(timeout=30)
        return store.get(tenant["id"], user)

    profile = poll(rebuilt, 90, "the sweep claims the user after the debounce and a worker rebuilds the profile",
                   interval=1.0)
    assert profile["model"] == "priors" and profile["best_send_hour"]["timezone"] == "America/New_York"
    client = redis_client(settings)
    try:
        dirty = DirtyUsers(client, settings.redis_prefix)
        poll(lambda: dirty.pending(tenant["id"]) == {"dirty": 0, "claimed": 0}, 30, "the claim is released")
    finally:
        client.close()


def test_a_promoted_version_is_swapped_in_without_a_restart(test_settings, tmp_path) -> None:
    from retain.models.store import ModelStore
    from retain.profiles.rebuild import ModelCache

    settings = test_settings.replace(model_store_url=f"file://{tmp_path}/models")
    store = ModelStore(settings)
    for version, r in (("v1", 0.5), ("v2", 0.7)):
        store.save("acme", version, {"status": "published", "params": {
            "bgnbd": {"r": r, "alpha": 5.0, "a": 0.8, "b": 2.5}}})
    now = [0.0]
    models = ModelCache(store, refresh=30, clock=lambda: now[0])
    config = TenantConfig()
    assert not models.get("acme", config).trained, "no current version yet: the priors"
    store.promote("acme", "v1")
    now[0] += 31
    first = models.get("acme", config)
    assert (first.version, first.bgnbd.r) == ("v1", 0.5)
    store.promote("acme", "v2")
    assert models.get("acme", config) is first, "checked again only after the refresh interval"
    now[0] += 31
    assert models.get("acme", config).version == "v2"
    store.rollback("acme")
    now[0] += 31
    rolled = models.get("acme", config)
    assert rolled.version == "v1" and rolled.switched_us > first.switched_us, "a rollback supersedes v2's profiles"
