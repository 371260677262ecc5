"""The demo's two tenants and their events: a media company and a shop, generated with known true
parameters and sent through the HTTP ingestion API like any customer's events.

The tenants keep their names across runs; a rerun issues them fresh keys (the old ones are revoked)
and re-sends the same generated events, which the ingest ledger recognises by message id: nothing is
stored twice.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from retain.generator.params import GeneratorParams
from retain.generator.run import USERS_FILE, generate
from retain.ingest_client import BatchResult, send_files
from retain.store.cassandra import CassandraStore
from retain.tenancy.registry import TenantError, TenantRegistry


@dataclass(frozen=True)
class DemoTenant:
    name: str
    kind: str
    users: int
    seed: int
    params: GeneratorParams


def demo_tenants(users: int) -> list[DemoTenant]:
    """A news site (long visits, few purchases) and a shop (more orders, more push), ``users`` each."""
    media = GeneratorParams(purchase_a=0.5, purchase_b=20.0, extra_views_mean=2.5)
    shop = GeneratorParams(purchase_a=3.0, purchase_b=6.0, push_optin=0.7)
    return [DemoTenant("demo-news", "media", users, 11, media), DemoTenant("demo-shop", "commerce", users, 12, shop)]


def ensure_tenant(store: CassandraStore, name: str) -> dict[str, str]:
    """Create ``name`` or, when it exists from an earlier run, issue it fresh keys; returns the keys."""
    registry = TenantRegistry(store)
    try:
        _, keys = registry.create(name)
    except TenantError:
        keys = registry.rotate(name, ["write", "read"], grace_seconds=0)
    return {"write": keys["write"], "read": keys["read"]}


def generate_events(tenant: DemoTenant, days: int, out_dir: Path) -> dict:
    report = generate(tenant.name, tenant.users, days, tenant.seed, out_dir, params=tenant.params, overwrite=True)
    return {"events": report.events, "files": [str(p) for p in report.files], "by_event": report.by_event}


def sample_users(out_dir: Path, count: int) -> list[str]:
    """The first ``count`` generated users with a few visits (their profiles have something to say)."""
    chosen = []
    with open(out_dir / USERS_FILE) as users:
        for line in users:
            user = json.loads(line)
            if user["visits"] >= 3:
                chosen.append(user["user_id"])
            if len(chosen) >= count:
                break
    return chosen


def send_all(api_url: str, jobs: list[tuple[str, list[Path], str]], on_batch: Callable[[str, int], None],
             before_retry: Callable[[], None] = lambda: None) -> dict:
    """Send each tenant's files in its own thread (the API serves both at once); returns reports by
    tenant. ``before_retry`` runs before each retry's wait and may raise to give up at once."""
    reports: dict[str, dict] = {}
    errors: list[BaseException] = []

    def one(name: str, files: list[Path], key: str) -> None:
        try:
            # A short retry deadline: an API that stays down is a failure the demo reports, not waits out.
            report = send_files(files, api_url, key, batch_size=500, retry_deadline=30,
                                progress=lambda result: on_batch(name, _accepted(result)),
                                sleep=lambda seconds: (before_retry(), time.sleep(seconds)))
            reports[name] = report.to_dict()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=job, daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return reports


def _accepted(result: BatchResult) -> int:
    return result.accepted if result.accepted is not None else result.events
