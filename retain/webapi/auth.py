"""API keys on requests: write keys (HTTP Basic user name, as Segment's libraries send them) for
ingestion, read keys for profiles and analytics. The tenant always comes from the key."""

from __future__ import annotations

import base64
import functools
from typing import Callable

from flask import current_app, g, request
from werkzeug.exceptions import Forbidden, Unauthorized

from retain.tenancy.keycache import KeyCache
from retain.tenancy.registry import KeyOwner


def _from_header(environ: dict) -> str | None:
    header = environ.get("HTTP_AUTHORIZATION", "")
    return _key_of(header) if header else None


@functools.lru_cache(maxsize=4096)
def _key_of(header: str) -> str | None:
    # Clients send the same header on every request: decode each distinct one once.
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            user, _, _password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise Unauthorized("the Authorization header is not valid HTTP Basic credentials") from None
        return user
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return None


class KeyUnauthorized(Unauthorized):
    def get_headers(self, environ=None, scope=None):
        return [*super().get_headers(environ, scope), ("WWW-Authenticate", 'Basic realm="retain"')]


def held_tenant(keys: KeyCache, environ: dict, kind: str) -> str | None:
    """The tenant of the request's key when it is of ``kind`` and ``keys`` holds it fresh in memory;
    None for anything else (no key, a malformed one, another kind, one to read again), which
    :func:`authenticate` then rules on."""
    try:
        key = _from_header(environ)
    except Unauthorized:
        return None
    owner = keys.held(key) if key else None
    return owner.tenant_id if owner is not None and owner.kind == kind else None


def authenticate(kind: str, body_key: str | None = None) -> KeyOwner:
    """The owner of the request's key, which must be of ``kind``; 401/403 otherwise."""
    key = _from_header(request.environ) or body_key
    if not key:
        raise KeyUnauthorized(f"a {kind} key is required (HTTP Basic user name)")
    owner = current_app.extensions["retain"].keys.owner(key)
    if owner is None:
        raise KeyUnauthorized(f"unknown or expired {kind} key")
    if owner.kind != kind:
        raise Forbidden(f"a {owner.kind} key cannot be used here; this endpoint takes a {kind} key")
    g.tenant_id = owner.tenant_id
    return owner


def requires(kind: str) -> Callable:
    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            authenticate(kind)
            return view(*args, **kwargs)
        return wrapper
    return decorate
