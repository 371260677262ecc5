"""Sending NDJSON event files to retain's HTTP API (``POST /v1/import``).

Events go in gzip-compressed NDJSON batches bounded by count and by uncompressed size. A batch is
retried as it was — same lines, same messageIds — after a 429, 502, 503 or 504, a connection error
or a timeout, until a deadline; the server dedupes by messageId, so a retry never stores an event
twice. Any other 4xx (or an unexpected status) stops the upload with an error naming the file, the
line range and the server's message: resending the same bytes would fail the same way.
"""

from __future__ import annotations

import email.utils
import gzip
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import requests

from retain import __version__
from retain.errors import RetainError

RETRY_STATUSES = frozenset({429, 502, 503, 504})
_BACKOFF_FIRST = 0.5
_BACKOFF_MAX = 30.0


class IngestClientError(RetainError):
    """An upload stopped: bad input, a refused batch or a server that stayed unavailable."""


@dataclass(frozen=True)
class Batch:
    """Lines ``first_line``..``last_line`` (1-based) of ``path``, as one request body."""

    path: Path
    first_line: int
    last_line: int
    lines: list[bytes]

    @property
    def raw_bytes(self) -> int:
        return sum(len(line) + 1 for line in self.lines)

    def body(self) -> bytes:
        return b"\n".join(self.lines) + b"\n"

    def where(self) -> str:
        return f"{self.path}: lines {self.first_line}-{self.last_line}"


@dataclass
class BatchResult:
    batch: Batch
    events: int
    attempts: int
    accepted: int | None
    rejected: list[Any]


@dataclass
class SendReport:
    files: list[Path] = field(default_factory=list)
    events: int = 0
    batches: int = 0
    retries: int = 0
    accepted: int = 0
    raw_bytes: int = 0
    sent_bytes: int = 0
    seconds: float = 0.0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rejected_count(self) -> int:
        return sum(entry["count"] for entry in self.rejected)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [str(path) for path in self.files], "events": self.events, "batches": self.batches,
            "retries": self.retries, "accepted": self.accepted, "rejected_count": self.rejected_count,
            "rejected": self.rejected, "raw_bytes": self.raw_bytes, "sent_bytes": self.sent_bytes,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events / self.seconds, 1) if self.seconds > 0 else None,
        }


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files to send: each file given, and each directory's ``events-*.ndjson`` in name order.

    A generator's directory also holds ``truth.json`` and ``users.ndjson``, which are not events.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.glob("events-*.ndjson"))
            if not found:
                raise IngestClientError(f"{path}: no events-*.ndjson files in this directory")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise IngestClientError(f"{path}: no such file or directory")
    return files


def count_events(files: Sequence[Path]) -> int:
    """Non-blank lines in ``files``: the total a progress bar counts towards."""
    total = 0
    for path in files:
        with open(path, "rb") as handle:
            total += sum(1 for line in handle if line.strip())
    return total


def read_batches(path: Path, batch_size: int, max_batch_bytes: int) -> Iterator[Batch]:
    """Consecutive non-blank lines of ``path``, at most ``batch_size`` and ``max_batch_bytes`` a batch."""
    lines: list[bytes] = []
    size = 0
    first = last = 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            if len(line) + 1 > max_batch_bytes:
                raise IngestClientError(f"{path}: line {number} is {len(line)} bytes, more than a batch may hold "
                                        f"({max_batch_bytes})")
            if lines and (len(lines) >= batch_size or size + len(line) + 1 > max_batch_bytes):
                yield Batch(path, first, last, lines)
                lines, size = [], 0
            if not lines:
                first = number
            lines.append(line)
            size += len(line) + 1
            last = number
    if lines:
        yield Batch(path, first, last, lines)


def _server_message(response: requests.Response) -> str:
    try:
        document = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason or "no message"
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message", "")
        return f"{code}: {message}" if code else str(message)
    if isinstance(error, str):
        return error
    return str(document)[:300]


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _rejections(value: Any) -> tuple[list[Any], int]:
    """The server's ``rejected`` field as (details, count): a list of reasons, or just a number."""
    if isinstance(value, list):
        return value, len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return [], value
    return [], 0


class _Sender:
    def __init__(self, session: requests.Session, endpoint: str, retry_deadline: float, timeout: float,
                 sleep: Callable[[float], None]) -> None:
        self.session = session
        self.endpoint = endpoint
        self.retry_deadline = retry_deadline
        self.timeout = timeout
        self.sleep = sleep

    def send(self, batch: Batch) -> tuple[requests.Response, int, int]:
        """POST ``batch`` until it is answered for good; returns the response, attempts and bytes sent."""
        # Compressed once: every retry sends the very same bytes.
        body = gzip.compress(batch.body(), compresslevel=6, mtime=0)
        deadline = time.monotonic() + self.retry_deadline
        attempts = 0
        while True:
            attempts += 1
            wait: float | None = None
            try:
                response = self.session.post(self.endpoint, data=body, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    return response, attempts, len(body)
                if response.status_code not in RETRY_STATUSES:
                    raise IngestClientError(f"{batch.where()}: the server answered {response.status_code}: "
                                            f"{_server_message(response)}")
                problem = f"HTTP {response.status_code}: {_server_message(response)}"
                wait = _retry_after(response)
            if wait is None:
                backoff = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (attempts - 1))
                wait = backoff * random.uniform(0.5, 1.0)  # jitter: clients that failed together spread out
            remaining = deadline - time.monotonic()
            if wait > remaining:
                raise IngestClientError(f"{batch.where()}: gave up after {attempts} attempt(s) in "
                                        f"{self.retry_deadline:g}s; last problem: {problem}")
            self.sleep(wait)


def send_files(paths: list[Path], url: str, write_key: str, batch_size: int = 500,
               max_batch_bytes: int = 450_000, progress: Callable[[BatchResult], None] | None = None,
               retry_deadline: float = 300, timeout: float = 60.0,
               sleep: Callable[[float], None] = time.sleep) -> SendReport:
    """Send the events of ``paths`` (files, or directories of ``events-*.ndjson``) to ``{url}/v1/import``.

    ``progress`` is called after each acknowledged batch. Raises :class:`IngestClientError` when a
    batch is refused or the server stays unavailable for ``retry_deadline`` seconds.
    """
    if batch_size < 1 or max_batch_bytes < 2:
        raise IngestClientError(f"batch size and bytes must be positive (got {batch_size}, {max_batch_bytes})")
    if not write_key:
        raise IngestClientError("a write key is required")
    began = time.monotonic()
    report = SendReport(files=expand_paths(paths))
    with requests.Session() as session:
        session.auth = (write_key, "")
        session.headers.update({"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip",
                                "User-Agent": f"retain-ingest-client/{__version__}"})
        sender = _Sender(session, url.rstrip("/") + "/v1/import", retry_deadline, timeout, sleep)
        for path in report.files:
            for batch in read_batches(path, batch_size, max_batch_bytes):
                response, attempts, sent = sender.send(batch)
                try:
                    document = response.json()
                except ValueError:
                    document = {}
                if not isinstance(document, dict):
                    document = {}
                accepted = document.get("accepted")
                rejected, rejected_count = _rejections(document.get("rejected"))
                report.batches += 1
                report.retries += attempts - 1
                report.events += len(batch.lines)
                report.raw_bytes += batch.raw_bytes
                report.sent_bytes += sent
                report.accepted += accepted if isinstance(accepted, int) else 0
                if rejected_count:
                    report.rejected.append({"file": str(path), "lines": [batch.first_line, batch.last_line],
                                            "count": rejected_count, "rejected": rejected})
                if progress is not None:
                    progress(BatchResult(batch, len(batch.lines), attempts,
                                         accepted if isinstance(accepted, int) else None, rejected))
    report.seconds = time.monotonic() - began
    return report
