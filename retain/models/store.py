"""Model versions per tenant: artifacts (JSON parameters, Parquet tables, metrics, the report)
under the model store, and a `current` pointer that is switched atomically.

Layout under RETAIN_MODEL_STORE_URL (file:// or s3://):
    tenants/<tenant>/versions/<version>/version.json   status, parameters, metrics, reasons
    tenants/<tenant>/versions/<version>/<artifact>     tables/*.parquet, report.html, ...
    tenants/<tenant>/current.json                      {"version": ..., "previous": [...]}
A single-object PUT is atomic on both backends, so readers see the old pointer or the new one.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone
from typing import Any

from retain.config import Settings
from retain.errors import RetainError
from retain.lake import open_store
from retain.lake.base import MissingObject

PUBLISHED, REJECTED, FAILED = "published", "rejected", "failed"


class ModelStoreError(RetainError):
    """A model version does not exist or cannot be promoted."""


def new_version() -> str:
    return datetime.now(timezone.utc).strftime("v%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)


class ModelStore:
    def __init__(self, settings: Settings) -> None:
        self.backend = open_store(settings.model_store_root, settings, "RETAIN_MODEL_STORE_URL")

    def _dir(self, tenant: str, version: str) -> str:
        return f"tenants/{tenant}/versions/{version}"

    def put_artifact(self, tenant: str, version: str, name: str, data: bytes) -> str:
        path = f"{self._dir(tenant, version)}/{name}"
        self.backend.put(path, data)
        return path

    def artifact(self, tenant: str, version: str, name: str) -> bytes:
        try:
            return self.backend.get(f"{self._dir(tenant, version)}/{name}")
        except MissingObject:
            raise ModelStoreError(f"tenant {tenant!r} has no artifact {name!r} in version {version!r}") from None

    def save(self, tenant: str, version: str, info: dict[str, Any]) -> None:
        self.put_artifact(tenant, version, "version.json", json.dumps({"version": version, **info}, indent=2,
                                                                      default=str).encode())

    def get(self, tenant: str, version: str) -> dict[str, Any]:
        return json.loads(self.artifact(tenant, version, "version.json"))

    def versions(self, tenant: str) -> list[dict[str, Any]]:
        prefix = f"tenants/{tenant}/versions/"
        names = sorted({p[len(prefix):].split("/", 1)[0] for p in self.backend.list(prefix) if p.endswith("/version.json")})
        current = self.current(tenant)
        return [{**self.get(tenant, v), "current": v == current} for v in names]

    def pointer(self, tenant: str) -> dict[str, Any]:
        """The tenant's ``current.json``: version (None when there is none), previous, switched_at."""
        try:
            return json.loads(self.backend.get(f"tenants/{tenant}/current.json"))
        except MissingObject:
            return {"version": None, "previous": []}

    def current(self, tenant: str) -> str | None:
        return self.pointer(tenant)["version"]

    def promote(self, tenant: str, version: str) -> None:
        """Make ``version`` current; only a published version can be."""
        status = self.get(tenant, version).get("status")
        if status != PUBLISHED:
            raise ModelStoreError(f"version {version} is {status}, not published; it cannot become current")
        pointer = self.pointer(tenant)
        if pointer["version"] == version:
            return
        previous = ([pointer["version"]] if pointer["version"] else []) + pointer["previous"]
        self._write_pointer(tenant, version, previous[:20])

    def rollback(self, tenant: str) -> str:
        """Make the previously current version current again; returns it."""
        pointer = self.pointer(tenant)
        if not pointer["previous"]:
            raise ModelStoreError(f"tenant {tenant!r} has no earlier version to roll back to")
        back, rest = pointer["previous"][0], pointer["previous"][1:]
        self._write_pointer(tenant, back, rest)
        return back

    def _write_pointer(self, tenant: str, version: str, previous: list[str]) -> None:
        body = {"version": version, "previous": previous, "switched_at": datetime.now(timezone.utc).isoformat()}
        self.backend.put(f"tenants/{tenant}/current.json", json.dumps(body).encode())
