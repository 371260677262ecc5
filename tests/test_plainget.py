"""The epoll worker's fast path for plain GETs (retain.webapi.plainget): what it takes, what it leaves
to gunicorn, and that a client cannot tell the two apart."""

from __future__ import annotations

import base64
import socket
from types import SimpleNamespace

import pytest

from retain.webapi.plainget import Declined, PlainGet, answer, parse
from tests.harness import start_api
from tests.test_api_workers import _answers, _closed_by_server

CFG = SimpleNamespace(limit_request_line=4094, limit_request_fields=100, limit_request_field_size=8190,
                      secure_scheme_headers={"X-FORWARDED-PROTOCOL": "ssl", "X-FORWARDED-PROTO": "https",
                                             "X-FORWARDED-SSL": "on"})
PLAIN = b"GET /v1/profiles/u%201?fields=a HTTP/1.1\r\nHost: api\r\nAuthorization: Basic eA==\r\n\r\n"


def test_a_plain_get_is_parsed_and_the_next_request_left_alone() -> None:
    request = parse(PLAIN + b"GET /next", CFG)
    assert request == PlainGet("GET", "/v1/profiles/u%201?fields=a", {"HOST": "api", "AUTHORIZATION": "Basic eA=="},
                               len(PLAIN))
    assert parse(PLAIN.replace(b"GET", b"HEAD", 1), CFG).method == "HEAD"
    assert parse(PLAIN.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"), CFG).close


@pytest.mark.parametrize("data", [
    PLAIN[:-2],  # the head is not complete yet
    PLAIN.replace(b"GET", b"POST", 1),
    PLAIN.replace(b"HTTP/1.1", b"HTTP/1.0"),
    PLAIN.replace(b"/v1/profiles", b"http://api/v1/profiles"),  # absolute form
    PLAIN.replace(b"/v1/profiles", b"//v1/profiles"),
    PLAIN.replace(b"Host: api\r\n", b""),  # HTTP/1.1 without a Host
    PLAIN.replace(b"Host: api", b"Host: api\r\nHost: other"),  # a duplicate
    PLAIN.replace(b"Host: api", b"Host: api\r\nContent-Length: 5"),  # a body
    PLAIN.replace(b"Host: api", b"Host: api\r\nTransfer-Encoding: chunked"),
    PLAIN.replace(b"Host: api", b"Host: api\r\nExpect: 100-continue"),
    PLAIN.replace(b"Host: api", b"Host: api\r\nUpgrade: h2c"),
    PLAIN.replace(b"Host: api", b"Host: api\r\nX-Forwarded-For: 10.0.0.1"),
    PLAIN.replace(b"Host: api", b"Host: api\r\nX-Forwarded-Proto: https"),
    PLAIN.replace(b"Host: api", b"Host: api\r\nForwarded: for=10.0.0.1"),
    PLAIN.replace(b"Host: api", b"Host: api\r\nX_Api_Key: k"),  # underscores: gunicorn drops those
    PLAIN.replace(b"Host: api", b"Host: api\r\n folded"),  # obsolete line folding
    PLAIN.replace(b"Host: api", b"Host: api\r\nBad Name: x"),
    PLAIN.replace(b"Host: api", b"Host: api\x01"),  # a control character
    PLAIN.replace(b"u%201", "ü".encode()),  # not ASCII
    PLAIN.replace(b"u%201", b"u" * 5000),  # over limit_request_line
], ids=lambda d: d[:60].decode("latin-1"))
def test_anything_else_is_left_to_gunicorn(data: bytes) -> None:
    assert parse(data, CFG) is None


def test_the_answer_keeps_gunicorns_guarantees() -> None:
    get, head = parse(PLAIN, CFG), parse(PLAIN.replace(b"GET", b"HEAD", 1), CFG)
    data, close = answer(get, "200 OK", [("Content-Type", "application/json"), ("Keep-Alive", "x")], b"{}", "D", False)
    assert data == (b"HTTP/1.1 200 OK\r\nServer: gunicorn\r\nDate: D\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 2\r\nConnection: keep-alive\r\n\r\n{}") and not close
    data, _ = answer(head, "200 OK", [("Content-Length", "2")], b"{}", "D", False)
    assert data.endswith(b"Content-Length: 2\r\nConnection: keep-alive\r\n\r\n"), "HEAD: no body"
    data, _ = answer(get, "304 NOT MODIFIED", [("ETag", '"v1"')], b"", "D", False)
    assert b"Content-Length" not in data and data.endswith(b"\r\n\r\n")
    assert answer(get, "200 OK", [("Connection", "close")], b"", "D", False)[1], "the app may close"
    with pytest.raises(Declined):
        answer(get, "200 OK", [("X-Evil", "a\r\nSet-Cookie: b")], b"", "D", False)
    with pytest.raises(Declined):
        answer(get, "200 OK", [("Bad Name", "a")], b"", "D", False)


@pytest.fixture(scope="module", params=[True, False], ids=["plain-get", "gunicorn-only"])
def api(request, settings):
    proc, url = start_api(settings.replace(api_workers=1, api_threads=2, api_worker="epoll",
                                           api_plain_get=request.param), f"api-plainget-{request.param}")
    yield int(url.rsplit(":", 1)[1])
    proc.stop(30)


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        buf = b""
        while chunk := sock.recv(65536):
            buf += chunk
        return buf


def _comparable(raw: bytes) -> tuple[bytes, set[bytes], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *fields = head.split(b"\r\n")
    return status, {f for f in fields if not f.lower().startswith((b"date:", b"x-request-id:"))}, body


@pytest.mark.parametrize("path", ["/healthz", "/v1/profiles/nobody", "/v1/profiles/nobody?fields=bad", "/nope"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_client_cannot_tell_the_paths_apart(api, tenant, method: str, path: str) -> None:
    auth = base64.b64encode(f"{tenant['read']}:".encode()).decode()
    plain = f"{method} {path} HTTP/1.1\r\nHost: api\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"
    # A repeated Accept is declined by the fast path (and joined by gunicorn): gunicorn serves it.
    declined = plain.replace("Host: api", "Host: api\r\nAccept: */*\r\nAccept: */*")
    fast, slow = _exchange(api, plain.encode()), _exchange(api, declined.encode())
    assert fast.startswith(b"HTTP/1.1 ") and _comparable(fast) == _comparable(slow)


def test_a_head_in_two_pieces_and_connection_close(api) -> None:
    with socket.create_connection(("127.0.0.1", api), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        sock.sendall(b"st: api\r\n\r\n")
        assert _answers(sock, 1)[0].startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
        head, = _answers(sock, 1)
        assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head
        assert _closed_by_server(sock), "Connection: close was not honoured"
