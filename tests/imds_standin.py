"""A stand-in for the EC2 instance metadata service (IMDSv2) on loopback, for spot-drain tests.

moto does not serve the metadata paths a spot worker polls, so this small threaded HTTP server
does: ``PUT /latest/api/token`` hands out tokens (the TTL header is required), every ``GET``
without a valid token gets 401, and the spot interruption notice and rebalance recommendation are
404 until the test sets them.
"""

from __future__ import annotations

import json
import secrets
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INSTANCE_ACTION = "/latest/meta-data/spot/instance-action"
REBALANCE = "/latest/meta-data/events/recommendations/rebalance"
INSTANCE_ID = "/latest/meta-data/instance-id"


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ImdsStandIn:
    """The server; ``url`` is its base URL. Use as a context manager."""

    def __init__(self, instance_id: str = "i-0123456789abcdef0") -> None:
        self.instance_id = instance_id
        self.documents: dict[str, str] = {}
        self.tokens: set[str] = set()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="imds-standin", daemon=True)

    def __enter__(self) -> "ImdsStandIn":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)

    # -- what the test controls ---------------------------------------------------------------
    def interrupt(self, at: float, action: str = "terminate") -> None:
        """Publish a spot interruption notice: ``action`` at epoch time ``at``."""
        with self._lock:
            self.documents[INSTANCE_ACTION] = json.dumps({"action": action, "time": iso(at)})

    def recommend_rebalance(self, at: float) -> None:
        with self._lock:
            self.documents[REBALANCE] = json.dumps({"noticeTime": iso(at)})

    def revoke_tokens(self) -> None:
        """Forget every token handed out (what a restarted metadata service does)."""
        with self._lock:
            self.tokens.clear()

    def polled(self, path: str) -> int:
        """How many authorised GETs of ``path`` the server answered."""
        with self._lock:
            return sum(1 for method, p, status in self.requests if method == "GET" and p == path and status != 401)

    # -- the HTTP side ------------------------------------------------------------------------
    def _answer(self, method: str, path: str, headers) -> tuple[int, str]:
        with self._lock:
            if method == "PUT":
                if path != "/latest/api/token":
                    return 404, ""
                ttl = headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
                if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                    return 400, ""
                token = secrets.token_urlsafe(24)
                self.tokens.add(token)
                return 200, token
            if headers.get("X-aws-ec2-metadata-token") not in self.tokens:
                return 401, ""
            if path == INSTANCE_ID:
                return 200, self.instance_id
            if path in self.documents:
                return 200, self.documents[path]
            return 404, ""

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                status, body = standin._answer(method, self.path, self.headers)
                with standin._lock:
                    standin.requests.append((method, self.path, status))
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                self._serve("GET")

            def do_PUT(self) -> None:  # noqa: N802
                self._serve("PUT")

            def log_message(self, *_: object) -> None:
                pass

        return Handler
