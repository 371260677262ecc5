"""Jobs over HTTP (write key; the tenant comes from the key): enqueue a rebuild, backfill, scoring
or training, then poll its state. Arguments are checked before anything is enqueued (400 naming
the field); a job is visible only to keys of the tenant that created it."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from flask import Blueprint, Response, current_app, g, jsonify, request, url_for
from werkzeug.exceptions import NotFound

from retain.client import JobError, validate
from retain.webapi.auth import requires
from retain.webapi.errors import FieldError

bp = Blueprint("jobs", __name__)


def _owner_key(job_id: str) -> str:
    return f"{current_app.extensions['retain'].settings.redis_prefix}job:{job_id}"


@bp.post("/v1/jobs")
@requires("write")
def create_job() -> tuple[Response, int]:
    stores = current_app.extensions["retain"]
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise FieldError("body", 'body: a JSON object {"kind": ..., "args": {...}} is required')
    try:
        spec, args = validate(body.get("kind"), g.tenant_id, body.get("args"))
    except JobError as exc:
        raise FieldError(exc.field, str(exc)) from None
    job_id = str(uuid.uuid4())
    # Ownership first: a job that exists in the broker is always attributable to its tenant.
    owner = stores.redis.pipeline()
    owner.hset(_owner_key(job_id), mapping={"tenant": g.tenant_id, "kind": body["kind"],
                                            "created_at": datetime.now(timezone.utc).isoformat()})
    owner.expire(_owner_key(job_id), stores.settings.result_expires)
    owner.execute()
    stores.jobs.app.send_task(spec.task, args=args, queue=spec.queue, task_id=job_id)
    location = url_for("jobs.get_job", job_id=job_id)
    response = jsonify({"id": job_id, "kind": body["kind"], "state": "PENDING", "url": location})
    response.headers["Location"] = location
    return response, 202


@bp.get("/v1/jobs/<job_id>")
@requires("write")
def get_job(job_id: str) -> Response:
    stores = current_app.extensions["retain"]
    owner = stores.redis.hgetall(_owner_key(job_id))
    if owner.get("tenant") != g.tenant_id:
        raise NotFound(f"no job {job_id!r}")
    outcome = stores.jobs.job(job_id, owner["kind"]).outcome()
    return jsonify({"id": job_id, "kind": owner["kind"], "created_at": owner.get("created_at"), **outcome})
