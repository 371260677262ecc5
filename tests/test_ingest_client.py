"""The ingest client against a small recording HTTP server: gzip NDJSON batches within limits, the
write key as Basic user, a retried batch resent unchanged, and refusals that name file and lines.

The server is a stand-in for the API's /v1/import, to test the client's HTTP behaviour only."""

from __future__ import annotations

import base64
import gzip
import json
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner

from retain.commands.ingest import ingest_command
from retain.generator import generate
from retain.ingest_client import IngestClientError, expand_paths, read_batches, send_files


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    raw: bytes
    lines: list[bytes]
    client_port: int
    status: int = 0


@dataclass
class FakeImport:
    """Answers POSTs from a script of (status, headers, body) then with 200 and the accepted count."""

    script: list[tuple[int, dict[str, str], dict]] = field(default_factory=list)
    rejected: dict[int, list] = field(default_factory=dict)  # request number -> rejected items
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, record: Recorded) -> tuple[int, dict[str, str], dict]:
        with self.lock:
            self.requests.append(record)
            number = len(self.requests)
            if self.script:
                return self.script.pop(0)
        return 200, {}, {"success": True, "accepted": len(record.lines), "rejected": self.rejected.get(number, [])}


@pytest.fixture
def server() -> Iterator[FakeImport]:
    fake = FakeImport()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the client's session expects

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
            record = Recorded(self.path, dict(self.headers), raw, body.splitlines(), self.client_address[1])
            status, headers, document = fake.answer(record)
            record.status = status
            payload = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield fake
    httpd.shutdown()
    httpd.server_close()
    thread.join(10)


@pytest.fixture(scope="module")
def events_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("events")
    generate("acme", 60, 14, 2, out, start=datetime(2025, 3, 1), events_per_file=400)
    return out


def _message_ids(lines: list[bytes]) -> list[str]:
    return [json.loads(line)["messageId"] for line in lines]


def _all_lines(directory: Path) -> list[bytes]:
    return [line for path in sorted(directory.glob("events-*.ndjson")) for line in path.read_bytes().splitlines()]


def test_every_event_arrives_once_after_a_503(server: FakeImport, events_dir: Path) -> None:
    server.script = [(503, {"Retry-After": "0"}, {"error": {"status": 503, "code": "unavailable", "message": "busy"}})]
    report = send_files([events_dir], server.url, "wk_test", batch_size=50, max_batch_bytes=20_000)

    first, retried = server.requests[0], server.requests[1]
    assert first.status == 503 and retried.status == 200
    assert first.raw == retried.raw and _message_ids(first.lines) == _message_ids(retried.lines)
    delivered = [line for r in server.requests if r.status == 200 for line in r.lines]
    assert delivered == _all_lines(events_dir)  # all, in order, once; not truth.json or users.ndjson
    for request in server.requests:
        assert request.path == "/v1/import"
        assert request.headers["Content-Type"] == "application/x-ndjson"
        assert request.headers["Content-Encoding"] == "gzip"
        user, _, password = base64.b64decode(request.headers["Authorization"].split()[1]).decode().partition(":")
        assert (user, password) == ("wk_test", "")
        assert len(request.lines) <= 50 and sum(len(line) + 1 for line in request.lines) <= 20_000
    assert any(sum(len(line) + 1 for line in r.lines) > 15_000 for r in server.requests)  # bytes did bind
    assert report.events == len(delivered) and report.batches == len(server.requests) - 1
    assert report.retries == 1 and report.accepted == report.events and report.rejected_count == 0
    assert [p.name for p in report.files] == sorted(p.name for p in events_dir.glob("events-*.ndjson"))
    assert len({r.client_port for r in server.requests}) < len(server.requests)  # connections were kept alive


def test_429_and_connection_trouble_back_off_then_succeed(server: FakeImport, events_dir: Path) -> None:
    server.script = [(429, {}, {"error": {"status": 429, "code": "too_many_requests", "message": "slow down"}}),
                     (502, {}, {})]
    waits: list[float] = []
    report = send_files([events_dir / "events-00001.ndjson"], server.url, "wk", batch_size=1000, sleep=waits.append)
    assert report.retries == 2 and report.batches == 1 and report.events == 400
    assert len(waits) == 2 and 0 < waits[0] < waits[1]


def test_a_refused_batch_stops_with_file_lines_and_message(server: FakeImport, tmp_path: Path) -> None:
    path = tmp_path / "mine.ndjson"
    path.write_text("".join(json.dumps({"type": "track", "messageId": f"m{i}"}) + "\n" for i in range(10)))
    server.script = [(200, {}, {"success": True, "accepted": 4, "rejected": []}),
                     (400, {}, {"error": {"status": 400, "code": "bad_request", "message": "line 2: no timestamp"}})]
    with pytest.raises(IngestClientError) as caught:
        send_files([path], server.url, "wk", batch_size=4)
    message = str(caught.value)
    assert "mine.ndjson: lines 5-8" in message and "400" in message and "line 2: no timestamp" in message
    assert len(server.requests) == 2  # a 400 is not retried


def test_an_unreachable_server_is_retried_until_the_deadline(events_dir: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(IngestClientError, match="gave up after .* attempt.*ConnectionError"):
        send_files([events_dir / "events-00001.ndjson"], f"http://127.0.0.1:{port}", "wk", retry_deadline=1.0)


def test_rejected_events_are_reported_per_batch(server: FakeImport, events_dir: Path) -> None:
    server.rejected = {2: [{"index": 3, "reason": "timestamp in the future"}]}
    results = []
    report = send_files([events_dir / "events-00001.ndjson"], server.url, "wk", batch_size=100,
                        progress=results.append)
    assert report.rejected == [{"file": str(events_dir / "events-00001.ndjson"), "lines": [101, 200], "count": 1,
                                "rejected": [{"index": 3, "reason": "timestamp in the future"}]}]
    assert report.rejected_count == 1 and [r.events for r in results] == [100] * 4


def test_paths_batches_and_oversized_lines(tmp_path: Path, events_dir: Path) -> None:
    assert all(p.name.startswith("events-") for p in expand_paths([events_dir]))
    with pytest.raises(IngestClientError, match="no events-"):
        expand_paths([tmp_path])
    with pytest.raises(IngestClientError, match="no such file"):
        expand_paths([tmp_path / "missing.ndjson"])
    path = tmp_path / "blank.ndjson"
    path.write_bytes(b'{"a":1}\n\n{"b":22}\n{"c":333}\n' + b'{"d":"' + b"x" * 100 + b'"}\n')
    batches = list(read_batches(path, batch_size=2, max_batch_bytes=200))
    assert [(b.first_line, b.last_line, len(b.lines)) for b in batches] == [(1, 3, 2), (4, 5, 2)]
    assert [(b.first_line, len(b.lines)) for b in read_batches(path, 10, 120)] == [(1, 3), (5, 1)]
    with pytest.raises(IngestClientError, match="line 5 is 108 bytes"):
        list(read_batches(path, 10, 100))


def test_ingest_command_prints_one_json_document(server: FakeImport, events_dir: Path) -> None:
    result = CliRunner().invoke(ingest_command, [str(events_dir), "--url", server.url, "--write-key", "wk",
                                                 "--batch-size", "200", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["events"] == len(_all_lines(events_dir)) and document["retries"] == 0
    assert document["batches"] == len(server.requests)
