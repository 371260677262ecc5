"""The OpenAPI 3 document of the whole API, served at /openapi.json (a test keeps it complete)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from retain import __version__

bp = Blueprint("openapi", __name__)

_ERROR = {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_ACCEPTED = {"description": "Accepted: the batch is in the ingestion queue",
             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}}
_WRITE = [{"writeKey": []}]
_READ = [{"readKey": []}]
_INGEST_ERRORS = {"400": _ERROR, "401": _ERROR, "403": _ERROR, "413": _ERROR, "415": _ERROR, "503": _ERROR}


def _json_body(ref: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _single(kind: str) -> dict:
    return {"post": {"summary": f"Segment {kind} call", "operationId": f"ingest_{kind}", "security": _WRITE,
                     "requestBody": _json_body("Message"), "responses": {"200": _ACCEPTED, **_INGEST_ERRORS}}}


def _message_schema() -> dict:
    text = {"type": ["string", "null"], "maxLength": 256}
    return {
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": ["track", "page", "screen", "identify", "alias", "group"]},
            "userId": text, "anonymousId": text, "messageId": text, "previousId": text, "groupId": text,
            "event": {"type": "string", "maxLength": 200}, "name": {"type": "string", "maxLength": 200},
            "timestamp": {"type": "string", "format": "date-time"}, "sentAt": {"type": "string", "format": "date-time"},
            "properties": {"type": "object"}, "traits": {"type": "object"}, "context": {"type": "object"},
        },
        "description": "A Segment message; userId or anonymousId is required.",
    }


def _profile_schema() -> dict:
    number, text = {"type": ["number", "null"]}, {"type": ["string", "null"]}
    names = {"type": "array", "items": {"type": "string"}}
    return {"type": "object", "description": "A user's predictions; fields may be selected with ?fields=.",
            "properties": {
                "tenant_id": text, "user_id": {"type": "string"},
                "version": {"type": "integer", "description": "Orders a user's profiles (microseconds)"},
                "model_version": text, "model": {"type": "string", "enum": ["trained", "priors"]},
                "computed_at": text, "as_of": text, "last_seen": text, "horizon_days": {"type": "integer"},
                "p_alive": number, "p_return_h": number, "expected_visits_h": number, "predicted_ltv": number,
                "churn_risk": {"type": "string", "enum": ["low", "medium", "high"]},
                "channel_scores": {"type": "object", "additionalProperties": number}, "best_channel": text,
                "best_send_hour": {"type": "object", "properties": {
                    "weekday": {"type": "integer"}, "hour": {"type": "integer"}, "timezone": {"type": "string"}}},
                "top_content": names, "top_categories": names,
                "top_drivers": {"type": "array", "items": {"type": "object", "properties": {
                    "action": {"type": "string"}, "impact": number}}}}}


def document() -> dict:
    paths = {
        "/healthz": {"get": {"summary": "The process is alive", "operationId": "healthz",
                             "responses": {"200": {"description": "OK"}}}},
        "/readyz": {"get": {"summary": "Redis and a Cassandra node of the local datacenter answer",
                            "operationId": "readyz", "responses": {"200": {"description": "Ready"}, "503": _ERROR}}},
        "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                  "responses": {"200": {"description": "OpenAPI 3 document"}}}},
        "/v1/batch": {"post": {"summary": "Segment batch of messages", "operationId": "ingest_batch", "security": _WRITE,
                               "requestBody": _json_body("Batch"), "responses": {"200": _ACCEPTED, **_INGEST_ERRORS}}},
        "/v1/import": {"post": {"summary": "Backfill: NDJSON (one message per line) or a Segment batch; any age",
                                "operationId": "ingest_import", "security": _WRITE,
                                "requestBody": {"required": True, "content": {
                                    "application/x-ndjson": {"schema": {"type": "string"}},
                                    "application/json": {"schema": {"$ref": "#/components/schemas/Batch"}}}},
                                "responses": {"200": _ACCEPTED, **_INGEST_ERRORS}}},
        "/v1/analytics/summary": {"get": {
            "summary": "The day's active users and event counts", "operationId": "analytics_summary", "security": _READ,
            "parameters": [{"name": "date", "in": "query", "schema": {"type": "string", "format": "date"}}],
            "responses": {"200": {"description": "Counters of the day (UTC)"}, "400": _ERROR, "401": _ERROR, "403": _ERROR}}},
        "/v1/users/{user_id}/events": {"get": {
            "summary": "A user's recent events, newest first", "operationId": "user_events", "security": _READ,
            "parameters": [{"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
            "responses": {"200": {"description": "Events"}, "400": _ERROR, "401": _ERROR, "403": _ERROR}}},
        "/v1/models": {"get": {
            "summary": "The tenant's model versions, newest first, with their status and main metrics",
            "operationId": "list_models", "security": _READ,
            "responses": {"200": {"description": "Model versions"}, "401": _ERROR, "403": _ERROR}}},
        "/v1/models/{version}/report": {"get": {
            "summary": "The HTML report of a training run (self-contained: embedded plots, no scripts)",
            "operationId": "model_report", "security": _READ,
            "parameters": [{"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The report",
                                  "content": {"text/html": {"schema": {"type": "string"}}}},
                          "401": _ERROR, "403": _ERROR, "404": _ERROR}}},
        "/v1/profiles/{user_id}": {"get": {
            "summary": "A user's profile (from the cache, else the local datacenter at LOCAL_ONE)",
            "operationId": "get_profile", "security": _READ,
            "parameters": [{"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "fields", "in": "query", "schema": {"type": "string"},
                            "description": "Comma-separated fields to return (user_id and version always are)"},
                           {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The profile, with ETag and Cache-Control",
                                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Profile"}}}},
                          "304": {"description": "Not modified since the ETag given"},
                          "400": _ERROR, "401": _ERROR, "403": _ERROR, "404": _ERROR}}},
        "/v1/profiles:batchGet": {"post": {
            "summary": "Up to 100 users' profiles at once", "operationId": "batch_get_profiles", "security": _READ,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["ids"], "properties": {
                    "ids": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 100},
                    "fields": {"type": "array", "items": {"type": "string"}}}}}}},
            "responses": {"200": {"description": "Profiles by user id, and the ids that have none",
                                  "content": {"application/json": {"schema": {"type": "object", "properties": {
                                      "profiles": {"type": "object", "additionalProperties": {
                                          "$ref": "#/components/schemas/Profile"}},
                                      "missing": {"type": "array", "items": {"type": "string"}}}}}}},
                          "400": _ERROR, "401": _ERROR, "403": _ERROR}}},
        "/v1/jobs": {"post": {
            "summary": "Enqueue a job: rebuild (args.users), backfill, score (args.as_of) or train "
                       "(args.cutoff, args.holdout_days)", "operationId": "create_job", "security": _WRITE,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["kind"], "properties": {
                    "kind": {"type": "string", "enum": ["rebuild", "backfill", "score", "train"]},
                    "args": {"type": "object"}}}}}},
            "responses": {"202": {"description": "Queued; poll the Location", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Job"}}}}, "400": _ERROR, "401": _ERROR, "403": _ERROR}}},
        "/v1/jobs/{job_id}": {"get": {
            "summary": "A job's state, and its result once done", "operationId": "get_job", "security": _WRITE,
            "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The job", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Job"}}}}, "401": _ERROR, "403": _ERROR, "404": _ERROR}}},
    }
    for kind in ("track", "page", "screen", "identify", "alias", "group"):
        paths[f"/v1/{kind}"] = _single(kind)
    return {
        "openapi": "3.1.0",
        "info": {"title": "retain API", "version": __version__,
                 "description": "Segment-compatible ingestion, per-user profiles and analytics."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "writeKey": {"type": "http", "scheme": "basic", "description": "Write key as the user name"},
                "readKey": {"type": "http", "scheme": "basic", "description": "Read key as the user name"},
            },
            "schemas": {
                "Message": _message_schema(),
                "Batch": {"type": "object", "required": ["batch"], "properties": {
                    "batch": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}, "maxItems": 2500},
                    "sentAt": {"type": "string", "format": "date-time"}, "context": {"type": "object"}}},
                "Accepted": {"type": "object", "properties": {
                    "success": {"type": "boolean"}, "accepted": {"type": "integer"},
                    "rejected": {"type": "array", "items": {"type": "object", "properties": {
                        "index": {"type": "integer"}, "field": {"type": "string"}, "reason": {"type": "string"}}}}}},
                "Profile": _profile_schema(),
                "Job": {"type": "object", "properties": {
                    "id": {"type": "string"}, "kind": {"type": "string"},
                    "state": {"type": "string", "enum": ["PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE"]},
                    "result": {}, "error": {"type": "string"}, "url": {"type": "string"}}},
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "status": {"type": "integer"}, "code": {"type": "string"}, "message": {"type": "string"},
                    "field": {"type": "string"}}}}},
            },
        },
    }


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(document())
