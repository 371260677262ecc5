"""A user's recent events (read key), newest first: for debugging an integration."""

from __future__ import annotations

import json

from flask import Blueprint, current_app, g, jsonify, request

from retain.webapi.auth import requires
from retain.webapi.errors import FieldError

bp = Blueprint("timeline", __name__)
MAX_LIMIT = 1000


@bp.get("/v1/users/<user_id>/events")
@requires("read")
def user_events(user_id: str):
    raw = request.args.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise FieldError("limit", f"limit: must be a whole number from 1 to {MAX_LIMIT}")
    store = current_app.extensions["retain"].cassandra
    rows = store.read("SELECT payload FROM events_by_user WHERE tenant_id = ? AND user_id = ? LIMIT ?",
                      (g.tenant_id, user_id, int(raw)))
    events = [json.loads(row.payload) for row in rows]
    return jsonify({"tenant": g.tenant_id, "user_id": user_id, "count": len(events), "events": events})
