"""Plain GETs: the API worker's fast path past gunicorn's parser, environ and response.

Nearly all of the API's traffic is lookups: a GET or HEAD with a few headers and no body. For such
a request gunicorn's HTTP parser, environ builder and response writer took about a third of the
worker's CPU (py-spy, cache hits): more than the Flask app's routing and the lookup together. Here
a request whose whole head arrived in one read, and that uses none of what makes HTTP/1.1 tricky,
is parsed with a few string operations, handed to the same WSGI app, and answered in one write.

Anything else is not ours: :func:`parse` returns None and the worker hands the bytes, unchanged,
to gunicorn, whose own checks and errors then apply. So a request with a body, a framing or
forwarding header, an underscore in a header name, a duplicate header, an absolute or odd target,
HTTP/1.0, or a head over gunicorn's limits is served exactly as before. The answer keeps
gunicorn's guarantees: response headers are validated (no header injection), hop-by-hop ones are
dropped, and HEAD, 1xx, 204 and 304 carry no body.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from gunicorn import SERVER, util
from gunicorn.http.message import TOKEN_RE
from gunicorn.http.wsgi import HEADER_VALUE_RE, base_environ
from gunicorn.util import is_hoppish, unquote_to_wsgi_str

HEAD_END = b"\r\n\r\n"
METHODS = ("GET", "HEAD")
# Headers that change how the message is framed, upgraded or attributed: gunicorn's to judge.
DECLINED = frozenset({"CONTENT-LENGTH", "TRANSFER-ENCODING", "EXPECT", "UPGRADE", "HTTP2-SETTINGS", "TE",
                      "TRAILER", "FORWARDED", "PROXY"})
DECLINED_PREFIXES = ("X-FORWARDED",)
NO_BODY = (204, 304)


class Declined(Exception):
    """The app's answer cannot be written as given (an invalid or injected response header)."""


@dataclass
class PlainGet:
    method: str
    target: str
    headers: dict[str, str]  # upper-case names
    size: int  # bytes of the head, its blank line included

    @property
    def close(self) -> bool:
        return self.headers.get("CONNECTION", "").lower() == "close"


def declined_headers(cfg: Any) -> frozenset[str]:
    """The header names that leave a request to gunicorn under ``cfg`` (its scheme headers too)."""
    return DECLINED | {name.upper() for name in cfg.secure_scheme_headers}


def parse(data: bytes, cfg: Any, declined: frozenset[str] | None = None) -> PlainGet | None:
    """The plain GET or HEAD at the start of ``data``, or None: gunicorn's then. ``declined``:
    ``declined_headers(cfg)``, computed once by a caller that parses many requests."""
    end = data.find(HEAD_END)
    if end < 0 or not data.startswith((b"GET ", b"HEAD ")):
        return None
    try:
        lines = data[:end].decode("ascii").split("\r\n")
    except UnicodeDecodeError:
        return None
    request_line, fields = lines[0], lines[1:]
    if len(request_line) > (cfg.limit_request_line or len(request_line)) or len(fields) > cfg.limit_request_fields:
        return None
    parts = request_line.split(" ")
    if len(parts) != 3 or parts[0] not in METHODS or parts[2] != "HTTP/1.1":
        return None
    target = parts[1]
    if not target.startswith("/") or target.startswith("//") or not target.isprintable() or "#" in target:
        return None
    headers: dict[str, str] = {}
    declined = declined if declined is not None else declined_headers(cfg)
    for line in fields:
        name, colon, value = line.partition(":")
        too_long = cfg.limit_request_field_size and len(line) > cfg.limit_request_field_size
        if not colon or too_long or not TOKEN_RE.fullmatch(name) or "_" in name:
            return None
        name, value = name.upper(), value.strip(" \t")
        if (name in headers or name in declined or name.startswith(DECLINED_PREFIXES)
                or not value.isprintable()):
            return None
        headers[name] = value
    if "HOST" not in headers:
        return None
    return PlainGet(parts[0], target, headers, end + len(HEAD_END))


def environ(request: PlainGet, base: dict[str, Any], sock: Any, client: tuple, server: tuple,
            script_name: str) -> dict[str, Any]:
    """The WSGI environ gunicorn's ``wsgi.create`` would build for ``request`` (TCP, no TLS)."""
    path, _, query = request.target.partition("?")
    env = dict(base)
    env.update({"REQUEST_METHOD": request.method, "QUERY_STRING": query, "RAW_URI": request.target,
                "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "gunicorn.socket": sock,
                "SCRIPT_NAME": script_name, "SERVER_NAME": str(server[0]), "SERVER_PORT": str(server[1])})
    if script_name:
        if not path.startswith(script_name):
            raise Declined(f"request path {path!r} does not start with SCRIPT_NAME {script_name!r}")
        path = path[len(script_name):]
    env["PATH_INFO"] = unquote_to_wsgi_str(path)
    env["REMOTE_ADDR"], env["REMOTE_PORT"] = client[0], str(client[1])
    for name, value in request.headers.items():
        env["CONTENT_TYPE" if name == "CONTENT-TYPE" else "HTTP_" + name.replace("-", "_")] = value
    return env


def answer(request: PlainGet, status: str, headers: list[tuple[str, str]], body: bytes, date: str,
           close: bool) -> tuple[bytes, bool]:
    """The bytes of the answer, and whether the connection closes after it."""
    code = int(status[:3])
    lines = [f"HTTP/1.1 {status}\r\nServer: {SERVER}\r\nDate: {date}\r\n"]
    length = None
    for name, value in headers:
        if not TOKEN_RE.fullmatch(name) or not HEADER_VALUE_RE.fullmatch(value):
            raise Declined(f"invalid response header {name!r}")
        value = value.strip(" \t")
        lower = name.lower()
        if lower == "content-length":
            length = value
        elif is_hoppish(name):
            close = close or (lower == "connection" and value.lower() == "close")
            continue
        lines.append(f"{name}: {value}\r\n")
    bodiless = request.method == "HEAD" or code < 200 or code in NO_BODY
    if length is None and not bodiless:
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("Connection: close\r\n\r\n" if close else "Connection: keep-alive\r\n\r\n")
    head = "".join(lines).encode("latin-1")
    return (head if bodiless else head + body), close


class PlainServer:
    """Serves a connection's next request for an epoll worker (``worker``): the plain GET here,
    anything else by gunicorn's ``handle``."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self.base = {**base_environ(worker.cfg), "wsgi.multithread": True}
        self.script_name = os.environ.get("SCRIPT_NAME", "")  # as gunicorn reads it
        self.second, self.date = 0, ""
        self.declined = declined_headers(worker.cfg)

    def http_date(self) -> str:
        now = int(time.time())
        if now != self.second:  # formatted once a second, not once a request
            self.second, self.date = now, util.http_date(now)
        return self.date

    def handle(self, conn: Any) -> bool:
        """Serve the next request on ``conn``; whether to keep the connection."""
        worker = self.worker
        conn.sock.setblocking(True)  # as gthread's handle: reads wait (up to the socket's timeout)
        conn.init()
        if conn.is_http2:
            return worker.handle(conn)  # HTTP/2 with prior knowledge: its parser has no HTTP/1 bytes
        unreader = conn.parser.unreader
        try:
            data = unreader.read()
        except OSError:
            return False  # reset, or stalled: gunicorn's handle would close it too
        # TCP only: gunicorn's own environ handles Unix sockets (no ports) and TLS.
        tcp = isinstance(conn.client, tuple) and isinstance(conn.server, tuple) and not worker.cfg.is_ssl
        request = parse(data, worker.cfg, self.declined) if data and tcp else None
        if request is None:
            if not data:
                return False  # the client closed its side
            unreader.unread(data)
            return worker.handle(conn)
        if len(data) > request.size:
            unreader.unread(data[request.size:])  # pipelined: the next request's bytes
        try:
            payload, close = self.respond(conn, request)
        except Exception:  # noqa: BLE001 - as gunicorn: a 500 and the connection closed
            worker.log.exception("Error handling request %s", request.target)
            payload, close = None, True
        try:
            if payload is None:
                util.write_error(conn.sock, 500, "Internal Server Error", "")
            else:
                conn.sock.sendall(payload)
        except OSError:
            return False
        return not close

    def respond(self, conn: Any, request: PlainGet) -> tuple[bytes, bool]:
        worker = self.worker
        env = environ(request, self.base, conn.sock, conn.client, conn.server, self.script_name)
        started: dict[str, Any] = {}
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if exc_info is None and started:
                raise AssertionError("Response headers already set!")
            started["status"], started["headers"] = status, headers
            return written.append

        result = worker.wsgi(env, start_response)
        try:
            body = b"".join([*written, *result])
        finally:
            if hasattr(result, "close"):
                result.close()
        worker.nr += 1
        if worker.nr >= worker.max_requests and worker.alive:
            worker.log.info("Autorestarting worker after current request.")
            worker.alive = False
        close = request.close or not worker.alive or not worker.cfg.keepalive
        return answer(request, started["status"], started["headers"], body, self.http_date(), close)
