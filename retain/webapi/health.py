"""Health checks for load balancers and DNS failover.

``/healthz`` is shallow (the process answers); ``/readyz`` is deep: this region can serve, meaning
Redis answers and a Cassandra node of the local datacenter answers a query. A region whose
datacenter is down must fail ``/readyz`` so DNS sends its users elsewhere.
"""

from __future__ import annotations

import redis
from flask import Blueprint, current_app, jsonify

from retain.errors import StoreUnavailable
from retain.store.cassandra import CASSANDRA_ERRORS, READ

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


def _check_redis(stores) -> str | None:
    try:
        stores.redis.ping()
    except redis.RedisError as exc:
        return f"Redis unreachable: {exc}"
    return None


def _check_cassandra(stores) -> str | None:
    store = stores.cassandra
    try:
        if not store.local_hosts_up():
            return f"Cassandra: no node of local datacenter {store.local_dc} is up"
        store.execute("SELECT release_version FROM system.local", profile=READ, timeout=2.0)
    except StoreUnavailable as exc:
        return str(exc)
    except CASSANDRA_ERRORS as exc:
        return f"Cassandra unreachable in local datacenter {store.local_dc}: {exc}"
    return None


@bp.get("/readyz")
def readyz():
    stores = current_app.extensions["retain"]
    checks = {"redis": _check_redis(stores), "cassandra": _check_cassandra(stores)}
    failed = {name: problem for name, problem in checks.items() if problem}
    body = {
        "status": "unavailable" if failed else "ok",
        "datacenter": stores.cassandra.local_dc,
        "checks": {name: (problem or "ok") for name, problem in checks.items()},
    }
    if failed:
        body["failed"] = sorted(failed)
    return jsonify(body), 503 if failed else 200
