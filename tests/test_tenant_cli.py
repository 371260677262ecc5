"""Tenants, keys and dead letters through the `retain` command line, against the real stack."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import requests

from retain.tenancy.registry import hash_key
from tests.harness import run_cli as retain
from tests.harness import poll
from tests.ingest_helpers import message, post


def test_create_prints_keys_once_and_stores_only_hashes(settings, schema, api) -> None:
    name = f"t-{uuid.uuid4().hex[:8]}"
    created = json.loads(retain(settings, "tenant", "create", name, "--json").stdout)
    write, read = created["write_key"], created["read_key"]
    assert write.startswith("wk_") and read.startswith("rk_")
    rows = list(schema.read("SELECT key_hash, tenant_id, kind, key_prefix FROM api_keys"))
    mine = [r for r in rows if r.tenant_id == name]
    assert {r.key_hash for r in mine} == {hash_key(write), hash_key(read)}
    assert all(write not in tuple(map(str, r)) and read not in tuple(map(str, r)) for r in rows), "no plaintext at rest"
    listed = json.loads(retain(settings, "tenant", "keys", "list", name, "--json").stdout)["keys"]
    assert sorted(k["kind"] for k in listed) == ["read", "write"]
    again = retain(settings, "tenant", "create", name, check=1)
    assert "already exists" in again.stderr
    bad = retain(settings, "tenant", "create", "Bad Name!", check=1)
    assert "lowercase" in bad.stderr


def test_rotation_keeps_old_keys_for_the_grace_period_only(settings, schema, api, tenant) -> None:
    fresh = json.loads(retain(settings, "tenant", "keys", "rotate", tenant["id"], "--kind", "write",
                              "--grace-hours", "1", "--json").stdout)
    assert fresh["write_key"] != tenant["write"]
    assert post(api, "/v1/batch", fresh["write_key"], {"batch": [message("u")]}).status_code == 200
    ttl = schema.read("SELECT TTL(tenant_id) AS ttl FROM api_keys WHERE key_hash = ?", (hash_key(tenant["write"]),)).one()
    assert ttl is not None and 0 < ttl.ttl <= 3600, "the old key expires after the grace period"
    retain(settings, "tenant", "keys", "rotate", tenant["id"], "--kind", "write", "--grace-hours", "0")
    assert schema.read("SELECT tenant_id FROM api_keys WHERE key_hash = ?", (hash_key(fresh["write_key"]),)).one() is None
    # The API caches keys for RETAIN_KEY_CACHE_SECONDS; a fresh API process sees the revocation at once.
    from tests.harness import start_api

    proc, url = start_api(settings, "rotation-api")
    try:
        assert post(url, "/v1/batch", fresh["write_key"], {"batch": [message("u")]}).status_code == 401
        assert requests.get(f"{url}/v1/analytics/summary", auth=(tenant["read"], ""), timeout=10).status_code == 200
    finally:
        proc.stop(30)


def test_config_from_file_and_its_errors(settings, schema, tenant, tmp_path: Path) -> None:
    good = tmp_path / "tenant.yaml"
    good.write_text("horizon_days: 60\nchannels: [email, push, web]\nsends: {Newsletter Sent: email}\n")
    shown = json.loads(retain(settings, "tenant", "config", tenant["id"], "--file", str(good), "--json").stdout)
    assert shown["horizon_days"] == 60 and shown["sends"] == {"Newsletter Sent": "email"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("horizon_days: -3\nsends: {X: fax}\n")
    out = retain(settings, "tenant", "config", tenant["id"], "--file", str(bad), check=1)
    assert "horizon_days" in out.stderr
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("horizon: 30\n")
    assert "horizon" in retain(settings, "tenant", "config", tenant["id"], "--file", str(unknown), check=1).stderr


def test_deadletter_list(settings, schema, api, worker, tenant) -> None:
    post(api, "/v1/batch", tenant["write"], {"batch": [message("u"), {"type": "track", "event": "No user"}]})

    def listed():
        out = retain(settings, "deadletter", "list", "--tenant", tenant["id"], "--json")
        return json.loads(out.stdout)["dead_letters"]

    letters = poll(listed, 60, "the dead letter is listed")
    assert letters[0]["reason"].startswith("userId:") and "No user" in letters[0]["raw"]
    assert "userId" in retain(settings, "deadletter", "list", "--tenant", tenant["id"]).stdout
