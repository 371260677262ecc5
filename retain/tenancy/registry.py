"""Tenants and their API keys in Cassandra.

A key is 32 random bytes behind a prefix that says what it is for (``wk_`` write, ``rk_`` read);
only its SHA-256 is stored, which is enough for a secret of that entropy (no slow hash needed:
nobody can guess 256 bits). Rotation issues new keys and lets the old ones expire after a grace
period, so clients can switch without an outage.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from retain.config import Settings
from retain.errors import RetainError
from retain.store.cassandra import CassandraStore
from retain.tenancy.config import TenantConfig

KINDS = {"write": "wk_", "read": "rk_"}
_NAME = re.compile(r"^[a-z][a-z0-9-]{1,62}$")


class TenantError(RetainError):
    """A tenant does not exist, already exists, or its name is invalid."""


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    created_at: datetime | None
    config: TenantConfig


@dataclass(frozen=True)
class KeyOwner:
    tenant_id: str
    kind: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(kind: str) -> str:
    return KINDS[kind] + secrets.token_urlsafe(32)


class TenantRegistry:
    def __init__(self, store: CassandraStore) -> None:
        self.store = store

    def create(self, name: str) -> tuple[Tenant, dict[str, str]]:
        """Create a tenant; returns it and its first keys (shown once, never stored)."""
        if not _NAME.match(name):
            raise TenantError(f"tenant name {name!r}: use 2-63 lowercase letters, digits and dashes, starting with a letter")
        config = TenantConfig()
        applied = self.store.write(
            "INSERT INTO tenants (tenant_id, name, created_at, config) VALUES (?, ?, toTimestamp(now()), ?) IF NOT EXISTS",
            (name, name, config.model_dump_json()),
        ).one()
        if not applied.applied:
            raise TenantError(f"tenant {name!r} already exists")
        keys = {kind: self._issue(name, kind) for kind in KINDS}
        return self.get(name), keys

    def get(self, tenant_id: str) -> Tenant:
        row = self.store.read("SELECT tenant_id, name, created_at, config FROM tenants WHERE tenant_id = ?",
                              (tenant_id,)).one()
        if row is None:
            raise TenantError(f"no tenant {tenant_id!r} (create it with `retain tenant create {tenant_id}`)")
        return Tenant(row.tenant_id, row.name, row.created_at, TenantConfig.model_validate_json(row.config or "{}"))

    def list(self) -> list[Tenant]:
        rows = self.store.read("SELECT tenant_id, name, created_at, config FROM tenants")
        return sorted((Tenant(r.tenant_id, r.name, r.created_at, TenantConfig.model_validate_json(r.config or "{}"))
                       for r in rows), key=lambda t: t.tenant_id)

    def set_config(self, tenant_id: str, config: TenantConfig) -> None:
        self.get(tenant_id)
        self.store.write("UPDATE tenants SET config = ? WHERE tenant_id = ?", (config.model_dump_json(), tenant_id))

    def _issue(self, tenant_id: str, kind: str) -> str:
        key = new_key(kind)
        digest, prefix = hash_key(key), key[:7]
        now = datetime.now(timezone.utc)
        self.store.write("INSERT INTO api_keys (key_hash, tenant_id, kind, key_prefix, created_at) VALUES (?, ?, ?, ?, ?)",
                         (digest, tenant_id, kind, prefix, now))
        self.store.write("INSERT INTO keys_by_tenant (tenant_id, kind, created_at, key_hash, key_prefix) VALUES (?, ?, ?, ?, ?)",
                         (tenant_id, kind, now, digest, prefix))
        return key

    def rotate(self, tenant_id: str, kinds: list[str], grace_seconds: int) -> dict[str, str]:
        """Issue new keys of ``kinds``; the tenant's older keys of those kinds expire after the grace."""
        self.get(tenant_id)
        fresh = {kind: self._issue(tenant_id, kind) for kind in kinds}
        new_hashes = {hash_key(key) for key in fresh.values()}
        for row in self.store.read("SELECT kind, created_at, key_hash, key_prefix FROM keys_by_tenant WHERE tenant_id = ?",
                                   (tenant_id,)):
            if row.kind in kinds and row.key_hash not in new_hashes:
                self._expire(tenant_id, row, grace_seconds)
        return fresh

    def _expire(self, tenant_id: str, row, grace_seconds: int) -> None:
        if grace_seconds <= 0:
            self.store.write("DELETE FROM api_keys WHERE key_hash = ?", (row.key_hash,))
            self.store.write("DELETE FROM keys_by_tenant WHERE tenant_id = ? AND kind = ? AND created_at = ? AND key_hash = ?",
                             (tenant_id, row.kind, row.created_at, row.key_hash))
            return
        # Re-writing the rows with a TTL makes Cassandra drop them when the grace period ends.
        self.store.write(f"INSERT INTO api_keys (key_hash, tenant_id, kind, key_prefix, created_at) VALUES (?, ?, ?, ?, ?) "
                         f"USING TTL {int(grace_seconds)}", (row.key_hash, tenant_id, row.kind, row.key_prefix, row.created_at))
        self.store.write(f"INSERT INTO keys_by_tenant (tenant_id, kind, created_at, key_hash, key_prefix) VALUES (?, ?, ?, ?, ?) "
                         f"USING TTL {int(grace_seconds)}", (tenant_id, row.kind, row.created_at, row.key_hash, row.key_prefix))

    def keys(self, tenant_id: str) -> list[dict]:
        rows = self.store.read("SELECT kind, created_at, key_prefix, key_hash FROM keys_by_tenant WHERE tenant_id = ?",
                               (tenant_id,))
        return [{"kind": r.kind, "prefix": r.key_prefix, "created_at": r.created_at.isoformat()} for r in rows]

    def owner(self, key: str) -> KeyOwner | None:
        """The tenant and kind of an API key, or None for an unknown or expired key."""
        if not key or len(key) > 200:
            return None
        row = self.store.read("SELECT tenant_id, kind FROM api_keys WHERE key_hash = ?", (hash_key(key),)).one()
        return KeyOwner(row.tenant_id, row.kind) if row else None


def load_config(settings: Settings, tenant_id: str) -> TenantConfig:
    """A tenant's configuration from its own short-lived connection (TenantError when unknown):
    what jobs check first, so an unknown tenant fails before Spark starts."""
    store = CassandraStore(settings)
    try:
        return TenantRegistry(store).get(tenant_id).config
    finally:
        store.close()
