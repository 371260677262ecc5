"""JSON bodies for every error: API clients parse them, and an HTML page helps no one."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import BadRequest, HTTPException, InternalServerError

log = logging.getLogger("retain.api")


class FieldError(BadRequest):
    """A 400 that names the offending field in its JSON body."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(description)
        self.field = field


def error_body(status: int, code: str, message: str, **extra: object) -> tuple:
    return jsonify({"error": {"status": status, "code": code, "message": message, **extra}}), status


def _http_error(exc: HTTPException):
    code = (exc.name or "error").lower().replace(" ", "_")
    extra = {"field": exc.field} if isinstance(exc, FieldError) else {}
    response, status = error_body(exc.code or 500, code, exc.description or exc.name, **extra)
    for name, value in exc.get_headers():  # Allow, Retry-After, WWW-Authenticate, ...
        if name.lower() != "content-type":
            response.headers[name] = value
    return response, status


def _unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    log.exception("unhandled error")
    return error_body(500, "internal_server_error", InternalServerError.description)


def register(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
