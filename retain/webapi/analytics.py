"""Real-time analytics (read key): the day's active users and event counts, from Redis."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, current_app, g, jsonify, request

from retain.ingest.counters import summary
from retain.webapi.auth import requires
from retain.webapi.errors import FieldError

bp = Blueprint("analytics", __name__)


@bp.get("/v1/analytics/summary")
@requires("read")
def analytics_summary():
    day = request.args.get("date") or datetime.now(timezone.utc).strftime("%Y-%m-%d")
    try:
        datetime.strptime(day, "%Y-%m-%d")
    except ValueError:
        raise FieldError("date", "date: must be YYYY-MM-DD") from None
    stores = current_app.extensions["retain"]
    return jsonify(summary(stores.redis, stores.settings, g.tenant_id, day))
