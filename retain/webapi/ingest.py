"""Segment's HTTP Tracking API, so Segment's own client libraries work when pointed at retain.

The answer is 200 only once the batch is in the broker's `ingest` queue (the durability point);
with the broker down it is 503 with Retry-After and nothing is accepted. Single bad events inside
a batch do not fail the batch: the others proceed and each bad one is dead-lettered with its
reason, and listed in the answer.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge, ServiceUnavailable

from retain.ingest.submit import BrokerUnavailable, Submission, enqueue, prepare
from retain.webapi.auth import authenticate
from retain.webapi.body import json_body, ndjson_lines, raw_body
from retain.webapi.errors import FieldError

bp = Blueprint("ingest", __name__)

SINGLE = ("track", "page", "screen", "identify", "alias", "group")
RETRY_AFTER_SECONDS = 5


class BrokerDown(ServiceUnavailable):
    def get_headers(self, environ=None, scope=None):
        return [*super().get_headers(environ, scope), ("Retry-After", str(RETRY_AFTER_SECONDS))]


def _settings():
    return current_app.extensions["retain"].settings


def _accept(sub: Submission):
    try:
        enqueue(sub, current_app.extensions["retain"].journal)
    except BrokerUnavailable:
        raise BrokerDown("the ingestion queue is unavailable; nothing was accepted, retry later") from None
    return jsonify({"success": True, **sub.summary()})


def _batch_messages(body: Any) -> tuple[list, Any]:
    if not isinstance(body, dict):
        raise FieldError("body", "body must be a JSON object with a `batch` array")
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise FieldError("batch", "batch: must be an array of messages")
    context = body.get("context")
    if isinstance(context, dict) and context:
        # Segment applies batch-level context to every message; the message's own keys win.
        batch = [{**m, "context": {**context, **(m.get("context") or {})}} if isinstance(m, dict) else m for m in batch]
    return batch, body.get("sentAt")


def _check_count(messages: list) -> None:
    limit = _settings().ingest_max_batch_events
    if len(messages) > limit:
        raise RequestEntityTooLarge(f"batch: {len(messages)} messages exceed the limit of {limit} per request")


def _body_key(body: Any) -> str | None:
    return body.get("writeKey") if isinstance(body, dict) and isinstance(body.get("writeKey"), str) else None


@bp.post("/v1/batch")
def batch():
    settings = _settings()
    body = json_body(raw_body(settings.ingest_max_batch_bytes))
    authenticate("write", _body_key(body))
    messages, sent_at = _batch_messages(body)
    _check_count(messages)
    return _accept(prepare(messages, g.tenant_id, "http", settings, batch_sent_at=sent_at))


@bp.post("/v1/import")
def import_():
    """Backfills: a Segment batch or NDJSON (one message per line); events of any age are accepted."""
    settings = _settings()
    data = raw_body(settings.ingest_max_batch_bytes)
    mimetype = request.mimetype or ""
    if mimetype in ("application/x-ndjson", "application/jsonl", "application/ndjson", "text/plain"):
        authenticate("write")
        messages, sent_at = ndjson_lines(data), None
    else:
        body = json_body(data)
        authenticate("write", _body_key(body))
        messages, sent_at = _batch_messages(body)
    _check_count(messages)
    return _accept(prepare(messages, g.tenant_id, "import", settings, history=True, batch_sent_at=sent_at))


def _single(kind: str):
    settings = _settings()
    data = raw_body(settings.ingest_max_batch_bytes)
    body = json_body(data)
    authenticate("write", _body_key(body))
    if len(data) > settings.ingest_max_event_bytes:
        raise RequestEntityTooLarge(f"event of {len(data)} bytes exceeds the limit of {settings.ingest_max_event_bytes}")
    sub = prepare([body], g.tenant_id, "http", settings, default_type=kind)
    if sub.rejected:
        rejection = sub.rejected[0]
        raise FieldError(rejection["field"], rejection["reason"])
    return _accept(sub)


def _register(kind: str) -> None:
    bp.add_url_rule(f"/v1/{kind}", f"single_{kind}", lambda: _single(kind), methods=["POST"])


for _kind in SINGLE:
    _register(_kind)
