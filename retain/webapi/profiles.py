"""Profile lookups (read key; the tenant comes from the key): one user, or up to 100 at once.

Responses carry an ETag derived from the profile's version (and the field selection), so a client
revalidating an unchanged profile gets a 304 without a body, and Cache-Control lets browsers and
CDNs keep it for ``RETAIN_PROFILE_MAX_AGE_SECONDS``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.exceptions import NotFound

from retain.webapi.auth import requires
from retain.webapi.errors import FieldError

bp = Blueprint("profiles", __name__)
ONE = "/v1/profiles/<user_id>"
MAX_BATCH = 100
JSON = "application/json"
# Every profile field a client may select (see retain.profiles.scoring).
FIELDS = ("tenant_id", "user_id", "version", "model_version", "model", "computed_at", "as_of", "last_seen",
          "horizon_days", "p_alive", "p_return_h", "expected_visits_h", "predicted_ltv", "churn_risk",
          "channel_scores", "best_channel", "best_send_hour", "top_content", "top_categories", "top_drivers")
_ALWAYS = ("user_id", "version")


def _fields(raw: str | list | None, name: str) -> tuple[str, ...] | None:
    if raw is None or raw == "":
        return None
    names = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise FieldError(name, f"{name}: a list of field names")
    names = [n.strip() for n in names]
    unknown = sorted(set(names) - set(FIELDS))
    if unknown:
        raise FieldError(name, f"{name}: unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    return tuple(dict.fromkeys([*_ALWAYS, *names]))


def _select(profile: dict[str, Any], fields: tuple[str, ...] | None) -> dict[str, Any]:
    return profile if fields is None else {k: profile.get(k) for k in fields}


def _etag(version: int, fields: tuple[str, ...] | None) -> str:
    selection = "all" if fields is None else hashlib.sha1(",".join(fields).encode()).hexdigest()[:8]
    return f"{version}-{selection}"


def lookup_headers(version: int, source: str, cache_control: str,
                   fields: tuple[str, ...] | None = None) -> tuple[str, dict[str, str]]:
    """The ETag of a lookup's representation, and the headers its answer carries."""
    tag = _etag(version, fields)
    return tag, {"ETag": f'"{tag}"', "Cache-Control": cache_control, "X-Retain-Source": source}


def _reader():
    return current_app.extensions["retain"].profiles


@bp.get(ONE)
@requires("read")
def get_profile(user_id: str) -> Response:
    # The hottest route: read the query string and If-None-Match only when present, look each
    # context-local object up once (a lookup costs about a microsecond), and set the headers in
    # one go (a cached profile costs about as much CPU as a trivial route).
    environ = request.environ
    fields = _fields(request.args.get("fields"), "fields") if environ.get("QUERY_STRING") else None
    stores = current_app.extensions["retain"]
    found = stores.profiles.get(g.tenant_id, user_id)
    if found.body is None:
        raise NotFound(f"no profile for user {user_id!r}")
    tag, headers = lookup_headers(found.version, found.source, stores.profile_cache_control, fields)
    if "HTTP_IF_NONE_MATCH" in environ and request.if_none_match.contains(tag):
        return Response(status=304, headers=headers)
    if fields is None:
        # The whole profile as stored: no decoding and encoding again on the hottest path.
        return Response(found.body, mimetype=JSON, headers=headers)
    response = jsonify(_select(found.profile, fields))
    response.headers.update(headers)
    return response


@bp.post("/v1/profiles:batchGet")
@requires("read")
def batch_get() -> Response:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise FieldError("body", "body: a JSON object {\"ids\": [...], \"fields\": [...]} is required")
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or len(ids) > MAX_BATCH:
        raise FieldError("ids", f"ids: a list of 1 to {MAX_BATCH} user ids")
    if not all(isinstance(i, str) and i and len(i) <= 256 for i in ids):
        raise FieldError("ids", "ids: every user id must be a non-empty string of at most 256 characters")
    fields = _fields(body.get("fields"), "fields")
    unique = list(dict.fromkeys(ids))
    found = _reader().get_many(g.tenant_id, unique)
    missing = [u for u in unique if found[u].body is None]
    if fields is None:
        # Stored profiles spliced in as they are, as the single lookup serves them.
        members = ",".join(f"{json.dumps(u)}:{found[u].body}" for u in unique if found[u].body is not None)
        return Response(f'{{"profiles":{{{members}}},"missing":{json.dumps(missing)}}}', mimetype=JSON)
    return jsonify({"profiles": {u: _select(found[u].profile, fields) for u in unique if found[u].body is not None},
                    "missing": missing})
