"""Lookups answered from the API process's memory, before Flask.

Most lookups are of popular profiles (an email send, a home page) that the process already holds
in memory (retain.profiles.nearcache) under a read key it already knows (retain.tenancy.keycache).
Through Flask (request context, routing, auth decorator, response object) such a lookup took about
0.5 ms of the API's CPU; answered here, with the very headers and body the Flask route sends, it
takes about 0.2 (bench/profiles.py: 0.20-0.22 ms against /healthz's 0.42). The latency tail at a
given share of the peak grows with the CPU each request takes.

Only a plain ``GET``/``HEAD /v1/profiles/<user_id>`` qualifies: no query string (a field selection),
no ``If-None-Match`` (a revalidation), a well-formed key of the read kind whose owner is held fresh,
and a profile held in memory. Anything else, including every refusal and every miss, goes to Flask
unchanged, which decides it as before; so nothing here reads Redis or Cassandra, or can fail. The
metrics middleware around this still counts each request (under the route's template) and gives it
its request id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from retain.metrics.http import ROUTE_KEY
from retain.webapi.auth import held_tenant
from retain.webapi.profiles import JSON, ONE, lookup_headers

PREFIX = ONE.split("<", 1)[0]  # "/v1/profiles/"


class MemoryHits:
    """WSGI middleware: ``app`` for every request but a profile lookup held in memory by ``stores``."""

    def __init__(self, app: Callable, stores: Any) -> None:
        self.app, self.keys, self.near = app, stores.keys, stores.profiles.cache
        self.cache_control = stores.profile_cache_control

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if (path.startswith(PREFIX) and environ.get("REQUEST_METHOD") in ("GET", "HEAD")
                and not environ.get("QUERY_STRING") and "HTTP_IF_NONE_MATCH" not in environ):
            user_id = path[len(PREFIX):]
            # A WSGI path is Latin-1 decoded: one with other characters is Flask's to decode.
            tenant = held_tenant(self.keys, environ, "read") if user_id.isascii() and "/" not in user_id else None
            entry = self.near.held(tenant, user_id) if tenant and user_id else None
            if entry is not None and entry.body is not None:
                body = entry.body.encode()
                _, headers = lookup_headers(entry.version, "cache", self.cache_control)
                environ[ROUTE_KEY] = ONE
                start_response("200 OK", [("Content-Type", JSON), ("Content-Length", str(len(body))),
                                          *headers.items()])
                return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]
        return self.app(environ, start_response)
