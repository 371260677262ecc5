"""Model versions (read key): the tenant's training runs and each run's HTML report.

The tenant always comes from the key, so a read key of tenant B asking for a version of tenant A
looks in B's versions and gets a 404, exactly as for a version that does not exist.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, g, jsonify
from werkzeug.exceptions import NotFound

from retain.models.store import ModelStore, ModelStoreError
from retain.webapi.auth import requires

bp = Blueprint("models", __name__)
# retain.models.report.REPORT_ARTIFACT, not imported: that module loads matplotlib and scipy, which
# would add seconds and tens of MB to every API worker for one string (tests check they agree).
REPORT_ARTIFACT = "report.html"
# The store builds object paths from the version; anything else ('..', odd characters) cannot name
# a version, and rejecting it here keeps it from ever reaching the store as a path.
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_LISTED_METRICS = ("users", "buyers", "p_return_auc", "visits_aggregate_error")
# The report is self-contained and has no scripts; tenant-supplied names (actions, features) are
# escaped in it, and this policy makes sure nothing in it could run or load anything anyway.
_REPORT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}


def _store() -> ModelStore:
    # One store per app (per gunicorn worker: created on first use, after the fork); building one
    # per request would create an S3 client per request.
    extensions = current_app.extensions
    if "retain.model_store" not in extensions:
        extensions["retain.model_store"] = ModelStore(extensions["retain"].settings)
    return extensions["retain.model_store"]


@bp.get("/v1/models")
@requires("read")
def list_models():
    versions = _store().versions(g.tenant_id)
    listed = [{"version": v["version"], "status": v.get("status"), "created_at": v.get("created_at"),
               "current": v["current"],
               "metrics": {k: v.get("metrics", {}).get(k) for k in _LISTED_METRICS if k in v.get("metrics", {})}}
              for v in reversed(versions)]  # version names start with their UTC time: newest first
    current = next((v["version"] for v in listed if v["current"]), None)
    return jsonify({"tenant": g.tenant_id, "current": current, "count": len(listed), "versions": listed})


@bp.get("/v1/models/<version>/report")
@requires("read")
def model_report(version: str):
    if not _VERSION.fullmatch(version):
        raise NotFound(f"no model version {version!r}")
    store = _store()
    try:
        html = store.artifact(g.tenant_id, version, REPORT_ARTIFACT)
    except ModelStoreError:
        try:
            store.get(g.tenant_id, version)
        except ModelStoreError:
            raise NotFound(f"no model version {version!r}") from None
        raise NotFound(f"model version {version!r} has no report") from None
    return Response(html, status=200, content_type="text/html; charset=utf-8", headers=_REPORT_HEADERS)
