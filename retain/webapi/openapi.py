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
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "status": {"type": "integer"}, "code": {"type": "string"}, "message": {"type": "string"},
                    "field": {"type": "string"}}}}},
            },
        },
    }


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(document())
