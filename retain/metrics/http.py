"""The API's metrics, request ids and access log: one WSGI middleware around the Flask app.

Per request it costs a few microseconds: a request id, one histogram observation, an in-flight
gauge up and down, and for some requests an access-log line:

- every write (any method but GET and HEAD: batches, jobs) and every read that failed (401, 403, 429,
  5xx) or took longer than ``RETAIN_API_SLOW_REQUEST_MS``; every successful read too with
  ``RETAIN_API_LOG_READS=true``. At thousands of lookups a second a line each would cost about a
  sixth of the API's CPU, and a slow disk or log pipe would block the requests writing to it: the
  latency histogram counts every read instead.

- ``retain_http_request_duration_seconds{route,method,status}``: the route is Flask's rule
  (``/v1/profiles/<user_id>``), never the raw path, so the series stay few whatever clients send;
  a path no rule matches is ``(unmatched)``, a method outside the usual ones ``OTHER``.
- ``retain_http_requests_in_flight``: summed over gunicorn's workers (a dead worker's share is
  dropped by the ``child_exit`` hook).
- ``GET /metrics`` on the API's own port, answered here before Flask (so it is neither counted as a
  route nor subject to key auth): unauthenticated, like ``/healthz``. It exposes no tenant data,
  only route latencies; block the path at a public load balancer, or turn it off with
  ``RETAIN_API_METRICS=false``.
- ``X-Request-Id``: the client's (when acceptable, see retain.logs) or a new one, answered in the
  same header, set for the request's log lines and carried into the tasks it enqueues.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable

from flask import Flask, request
from prometheus_client import Gauge, Histogram

from retain.config import Settings
from retain.logs import REQUEST_ID_HEADER, accept_request_id, configure, request_id
from retain.metrics.registry import REGISTRY, enable_multiprocess, exposition, process_dir, process_exited

UNMATCHED = "(unmatched)"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_READS = frozenset({"GET", "HEAD"})
_NOTABLE_READ_STATUS = frozenset({"401", "403", "429"})  # refused clients: worth a line; 404s are not
ROUTE_KEY = "retain.route"  # environ key: the route template, for the histogram's label
# From a cached profile (about a millisecond) to a slow batch import.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

access_log = logging.getLogger("retain.access")


@functools.cache
def _metrics() -> tuple[Histogram, Gauge]:
    duration = Histogram("retain_http_request_duration_seconds", "API request latency by route template, "
                         "method and status", ("route", "method", "status"), buckets=BUCKETS, registry=REGISTRY)
    in_flight = Gauge("retain_http_requests_in_flight", "API requests being served",
                      multiprocess_mode="livesum", registry=REGISTRY)
    return duration, in_flight


def _note_route() -> None:
    # The last moment the matched rule is known where the middleware can read it afterwards.
    current = request._get_current_object()  # one context lookup for both attributes
    if current.url_rule is not None:
        current.environ[ROUTE_KEY] = current.url_rule.rule


class ObservedApp:
    """Wraps a WSGI app: request id, latency histogram, in-flight gauge, access log, /metrics."""

    def __init__(self, app: Callable, expose: bool, log_reads: bool, slow_seconds: float) -> None:
        self.app, self.expose, self.log_reads, self.slow_seconds = app, expose, log_reads, slow_seconds
        self.duration, self.in_flight = _metrics()

    def _logged(self, method: str, status: str, elapsed: float) -> bool:
        return (self.log_reads or method not in _READS or elapsed > self.slow_seconds or status[0] == "5"
                or status in _NOTABLE_READ_STATUS)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if self.expose and environ.get("PATH_INFO") == "/metrics":
            return _serve_metrics(environ, start_response)
        rid = accept_request_id(environ.get("HTTP_X_REQUEST_ID"))
        token = request_id.set(rid)
        status = ["500"]

        def start(line: str, headers: list, exc_info=None):
            status[0] = line[:3]
            headers.append((REQUEST_ID_HEADER, rid))
            return start_response(line, headers, exc_info)

        self.in_flight.inc()
        began = time.perf_counter()
        try:
            return self.app(environ, start)
        finally:
            elapsed = time.perf_counter() - began
            self.in_flight.dec()
            method = environ.get("REQUEST_METHOD", "")
            method = method if method in _METHODS else "OTHER"
            route = environ.get(ROUTE_KEY, UNMATCHED)
            self.duration.labels(route, method, status[0]).observe(elapsed)
            if self._logged(method, status[0], elapsed) and access_log.isEnabledFor(logging.INFO):
                path = environ.get("PATH_INFO", "")
                access_log.info("%s %s %s %.1fms", method, path, status[0], elapsed * 1000,
                                extra={"method": method, "path": path, "route": route, "status": int(status[0]),
                                       "duration_ms": round(elapsed * 1000, 3),
                                       "remote_addr": environ.get("REMOTE_ADDR")})
            request_id.reset(token)


def _serve_metrics(environ: dict, start_response: Callable) -> list[bytes]:
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        start_response("405 METHOD NOT ALLOWED", [("Allow", "GET, HEAD"), ("Content-Length", "0")])
        return []
    body, content_type = exposition()
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body))),
                              ("Cache-Control", "no-store")])
    return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]


def instrument(app: Flask, settings: Settings) -> None:
    """Wrap ``app`` (create_app calls this once per process, before it serves)."""
    app.before_request_funcs.setdefault(None, []).insert(0, _note_route)
    app.wsgi_app = ObservedApp(app.wsgi_app, settings.api_metrics,  # type: ignore[method-assign]
                               settings.api_log_reads, settings.api_slow_request_ms / 1000)


def prepare_server(settings: Settings, host: str, port: int) -> None:
    """In gunicorn's master, before it forks the workers: logs, and one metrics directory for all."""
    configure(settings, "api")
    if settings.api_metrics:
        enable_multiprocess(process_dir(settings, f"api-{host}-{port}"))


def child_exit(server: object, worker: object) -> None:
    """gunicorn's child_exit hook: a dead worker's requests are no longer in flight."""
    process_exited(worker.pid)  # type: ignore[attr-defined]
