"""Malformed and hostile input: always a clear 4xx with a JSON body, never a 500, never a partial write."""

from __future__ import annotations

import gzip
import json
import re
import zlib

import pytest
import requests
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from retain.webapi.openapi import document
from tests.harness import start_api
from tests.ingest_helpers import message, post


def error_of(answer: requests.Response) -> dict:
    assert answer.headers["Content-Type"].startswith("application/json"), answer.text[:200]
    return answer.json()["error"]


def test_invalid_json_names_the_body(api, tenant) -> None:
    answer = post(api, "/v1/batch", tenant["write"], b"{not json")
    assert answer.status_code == 400 and error_of(answer)["field"] == "body"


def test_batch_must_be_an_array(api, tenant) -> None:
    answer = post(api, "/v1/batch", tenant["write"], {"batch": {"type": "track"}})
    assert answer.status_code == 400 and error_of(answer)["field"] == "batch"


@pytest.mark.parametrize("path, body, field", [
    ("/v1/track", {"event": "x"}, "userId"),
    ("/v1/track", {"userId": "u", "event": ""}, "event"),
    ("/v1/track", {"userId": "u", "event": "x", "timestamp": "yesterday"}, "timestamp"),
    ("/v1/track", {"userId": "u", "event": "x", "timestamp": "2999-01-01T00:00:00Z"}, "timestamp"),
    ("/v1/track", {"userId": "u", "event": "x", "timestamp": "2010-01-01T00:00:00Z"}, "timestamp"),
    ("/v1/track", {"userId": ["u"], "event": "x"}, "userId"),
    ("/v1/track", {"userId": "u", "event": "x", "properties": "nope"}, "properties"),
    ("/v1/page", {"type": "track", "userId": "u", "event": "x"}, "type"),
    ("/v1/alias", {"userId": "u"}, "previousId"),
    ("/v1/group", {"userId": "u"}, "groupId"),
])
def test_single_calls_name_the_field(api, tenant, path: str, body: dict, field: str) -> None:
    answer = post(api, path, tenant["write"], body)
    assert answer.status_code == 400, answer.text
    assert error_of(answer)["field"] == field


def test_unknown_key_and_missing_key(api) -> None:
    answer = post(api, "/v1/batch", "wk_nobody", {"batch": [message("u")]})
    assert answer.status_code == 401 and "unknown" in error_of(answer)["message"]
    assert "Basic" in answer.headers["WWW-Authenticate"]
    anonymous = requests.post(f"{api}/v1/batch", json={"batch": []}, timeout=10)
    assert anonymous.status_code == 401


def test_oversize_body_and_event(api, tenant) -> None:
    big = {"batch": [message("u", properties={"x": "y" * 20_000}) for _ in range(30)]}
    answer = post(api, "/v1/batch", tenant["write"], big)
    assert answer.status_code == 413 and "limit" in error_of(answer)["message"]
    single = post(api, "/v1/track", tenant["write"], message("u", properties={"x": "y" * 40_000}))
    assert single.status_code == 413


def test_gzip_bomb_is_refused_without_inflating_it(api, tenant) -> None:
    bomb = gzip.compress(b"[" + b" " * (200 * 1024 * 1024) + b"]", compresslevel=9)
    assert len(bomb) < 500 * 1024
    answer = requests.post(f"{api}/v1/batch", data=bomb, auth=(tenant["write"], ""), timeout=30,
                           headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert answer.status_code == 413 and "decompressed" in error_of(answer)["message"]


def test_corrupt_gzip_and_unknown_encoding(api, tenant) -> None:
    corrupt = requests.post(f"{api}/v1/batch", data=b"\x1f\x8b garbage", auth=(tenant["write"], ""), timeout=10,
                            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert corrupt.status_code == 400 and error_of(corrupt)["field"] == "body"
    brotli = requests.post(f"{api}/v1/batch", data=zlib.compress(b"{}"), auth=(tenant["write"], ""), timeout=10,
                           headers={"Content-Type": "application/json", "Content-Encoding": "br"})
    assert brotli.status_code == 415


def test_broker_down_is_503_with_retry_after(stack, settings, schema, tenant) -> None:
    # An API whose broker is unreachable (nothing listens on port 1); Redis and Cassandra are fine.
    broken = settings.replace(broker_url="redis://127.0.0.1:1/1", home=settings.home / "broken-broker")
    proc, url = start_api(broken, "broker-down-api")
    try:
        answer = post(url, "/v1/batch", tenant["write"], {"batch": [message("u")]})
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "5"
        assert "nothing was accepted" in error_of(answer)["message"]
    finally:
        proc.stop(30)


def test_openapi_documents_every_route(api) -> None:
    from retain.webapi import create_app

    published = requests.get(f"{api}/openapi.json", timeout=10).json()
    assert published == json.loads(json.dumps(document()))
    assert published["openapi"].startswith("3.")
    app = create_app()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        assert path in published["paths"], f"{rule.rule} is not in /openapi.json"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in published["paths"][path], f"{method} {rule.rule} is not documented"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
segment_keys = st.sampled_from(["type", "userId", "anonymousId", "event", "name", "timestamp", "sentAt",
                                "messageId", "properties", "context", "traits", "previousId", "groupId"])
messages = st.dictionaries(segment_keys, json_values, max_size=8)


@hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(["/v1/batch", "/v1/import", "/v1/track", "/v1/page", "/v1/identify", "/v1/group"]),
       body=st.one_of(json_values, st.builds(lambda b: {"batch": b}, st.lists(messages, max_size=5)), messages),
       raw=st.binary(max_size=64), use_raw=st.booleans())
def test_fuzz_never_500(api, tenant, path, body, raw, use_raw) -> None:
    data = raw if use_raw else json.dumps(body).encode()
    answer = requests.post(f"{api}{path}", data=data, auth=(tenant["write"], ""), timeout=30,
                           headers={"Content-Type": "application/json"})
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        assert "error" in answer.json()
    else:
        assert answer.json()["success"] is True
