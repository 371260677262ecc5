"""Lookups answered from the API process's memory before Flask (retain.webapi.memoryhits), against
the real stores: the same answer Flask gives, and every other request left to Flask."""

from __future__ import annotations

import base64
import uuid

import pytest
from werkzeug.test import EnvironBuilder

from retain.metrics.http import ROUTE_KEY
from retain.webapi.app import create_app
from retain.webapi.memoryhits import MemoryHits
from retain.webapi.profiles import ONE
from tests.harness import poll
from tests.test_profiles_api import rebuilt

# Set per answer, not part of the representation.
VARYING = {"Date", "X-Request-Id"}


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


@pytest.fixture
def served(stack, settings, schema):
    """The API's Flask app, the memory path in front of it, and the paths that reached Flask."""
    app = create_app(settings)
    stores = app.extensions["retain"]
    reached: list[str] = []

    def flask(environ, start_response):
        reached.append(environ["PATH_INFO"])
        return app.wsgi_app.app.app(environ, start_response)  # inside the metrics: Flask's own
    hits = MemoryHits(flask, stores)
    yield app, hits, reached
    stores.profiles.cache.close()
    stores.cassandra.close()


def call(app, path: str, method: str = "GET", **headers: str) -> tuple[str, dict[str, str], bytes, dict]:
    environ = EnvironBuilder(path=path, method=method, headers=headers).get_environ()
    started: list = []
    result = app(environ, lambda status, answered, exc_info=None: started.extend([status, dict(answered)]))
    body = b"".join(result)
    if hasattr(result, "close"):
        result.close()
    return started[0], started[1], body, environ


def held(hits: MemoryHits, reached: list[str], path: str, auth: str) -> tuple:
    """The first answer to ``path`` given without Flask: the first lookups go to Flask, which reads
    Redis and keeps the profile once the near cache's listener is live."""
    def from_memory():
        before = len(reached)
        answer = call(hits, path, Authorization=auth)
        return answer if len(reached) == before else None
    return poll(from_memory, 10, f"{path} answered from the process's memory")


def test_a_profile_held_in_memory_is_answered_as_flask_answers_it(served, schema, settings, tenant) -> None:
    app, hits, reached = served
    user = f"m-{uuid.uuid4().hex[:6]}"
    [profile] = rebuilt(schema, settings, tenant["id"], user, cache=True)
    path, auth = f"/v1/profiles/{user}", _basic(tenant["read"])
    status, headers, body, environ = held(hits, reached, path, auth)
    # A revalidation that does not match is Flask's, and answers the same representation.
    f_status, f_headers, f_body, _ = call(hits, path, Authorization=auth, **{"If-None-Match": '"other"'})
    assert reached[-1] == path
    assert (status, body) == (f_status, f_body) == ("200 OK", body) and app.json.loads(body) == profile
    assert {k: v for k, v in headers.items() if k not in VARYING} == \
        {k: v for k, v in f_headers.items() if k not in VARYING}
    assert headers["X-Retain-Source"] == "cache" and headers["Content-Type"] == "application/json"
    assert environ[ROUTE_KEY] == ONE, "the latency histogram would count it as an unmatched path"
    before = len(reached)
    h_status, h_headers, h_body, _ = call(hits, path, "HEAD", Authorization=auth)
    assert len(reached) == before and (h_status, h_body) == ("200 OK", b"") and h_headers == headers


def test_everything_else_is_left_to_flask(served, schema, settings, tenant) -> None:
    _, hits, reached = served
    user = f"m-{uuid.uuid4().hex[:6]}"
    rebuilt(schema, settings, tenant["id"], user, cache=True)
    path, auth = f"/v1/profiles/{user}", _basic(tenant["read"])
    held(hits, reached, path, auth)
    others = [  # (path, method, headers, status Flask answers)
        (f"{path}?fields=p_alive", "GET", {"Authorization": auth}, "200 OK"),
        (path, "GET", {"Authorization": auth, "If-None-Match": "*"}, "304 NOT MODIFIED"),
        (path, "GET", {"Authorization": _basic(tenant["write"])}, "403 FORBIDDEN"),
        (path, "GET", {"Authorization": _basic("rk_made_up")}, "401 UNAUTHORIZED"),
        (path, "GET", {"Authorization": "Basic %%%"}, "401 UNAUTHORIZED"),
        (path, "GET", {}, "401 UNAUTHORIZED"),
        (path, "DELETE", {"Authorization": auth}, "405 METHOD NOT ALLOWED"),
        ("/v1/profiles/never-rebuilt", "GET", {"Authorization": auth}, "404 NOT FOUND"),
        (f"{path}/more", "GET", {"Authorization": auth}, "404 NOT FOUND"),
        ("/v1/profiles/%C3%A9t%C3%A9", "GET", {"Authorization": auth}, "404 NOT FOUND"),
    ]
    for target, method, headers, expected in others:
        before = len(reached)
        status, _, body, _ = call(hits, target, method, **headers)
        assert len(reached) == before + 1, f"{method} {target} {headers} was answered before Flask"
        assert status == expected, (target, method, headers, status, body)
