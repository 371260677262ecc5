"""Writing messages as NDJSON in global time order, a bounded number per file.

Messages arrive out of order (a session started late yesterday ends today; an email opened
tomorrow is decided when it is sent), so they wait in a heap until the caller promises that nothing
earlier will come (``flush_before``). Memory stays at a few days of events, not the whole window.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from retain import __version__

_EPOCH = datetime(1970, 1, 1)
# Fixed, so that messageIds depend only on tenant, seed and position: re-running a generation
# produces the same ids, and the API's dedupe recognises a re-sent file.
_MESSAGE_NAMESPACE = uuid.UUID("6f1c1c1e-4b8a-5d0e-9a57-2f4f0d1b7e21")
_NAMESPACE_BYTES = _MESSAGE_NAMESPACE.bytes
LIBRARY = {"name": "retain-generator", "version": __version__}
# One encoder for every line: json.dumps with options builds a new one per call.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def message_id(name: str) -> str:
    """``str(uuid.uuid5(_MESSAGE_NAMESPACE, name))``, without building UUID objects (it is per event)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def iso_ms(ms: int) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, e.g. ``2025-03-01T08:15:02.125Z``."""
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"


class EventWriter:
    """Buffers messages, then writes them chronologically to ``events-00001.ndjson``, ...."""

    def __init__(self, out_dir: Path, tenant: str, seed: int, end_ms: int, events_per_file: int = 50_000) -> None:
        self.out_dir = out_dir
        self.end_ms = end_ms
        self.events_per_file = events_per_file
        self.files: list[Path] = []
        self.events = 0
        self.by_event: Counter[str] = Counter()
        self.first_ms: int | None = None
        self.last_ms: int | None = None
        self._prefix = f"{tenant}:{seed}:"
        self._heap: list[tuple[int, int, dict[str, Any]]] = []
        self._seq = 0
        self._handle: TextIO | None = None
        self._in_file = 0

    def emit(self, ms: int, sent_delay_ms: int, message: dict[str, Any]) -> bool:
        """Queue ``message`` (without ids and times) at ``ms``; False if it falls after the window."""
        if ms >= self.end_ms:
            return False
        message["_sent"] = ms + sent_delay_ms
        self._seq += 1
        heapq.heappush(self._heap, (ms, self._seq, message))
        return True

    def flush_before(self, ms: int) -> None:
        """Write every queued message earlier than ``ms``; the caller emits nothing earlier later."""
        heap = self._heap
        while heap and heap[0][0] < ms:
            at, _, message = heapq.heappop(heap)
            self._write(at, message)

    def close(self) -> None:
        self.flush_before(2 ** 62)
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _write(self, ms: int, fields: dict[str, Any]) -> None:
        if self._handle is None or self._in_file >= self.events_per_file:
            if self._handle is not None:
                self._handle.close()
            path = self.out_dir / f"events-{len(self.files) + 1:05d}.ndjson"
            self.files.append(path)
            # newline="\n" keeps the bytes identical across platforms.
            self._handle = open(path, "w", encoding="utf-8", newline="\n")
            self._in_file = 0
        sent = fields.pop("_sent")
        message: dict[str, Any] = {"type": fields.pop("type")}
        if "event" in fields:
            message["event"] = fields.pop("event")
        if "name" in fields:
            message["name"] = fields.pop("name")
        message["userId"] = fields.pop("userId")
        message["anonymousId"] = fields.pop("anonymousId", None)
        message["messageId"] = message_id(self._prefix + str(self.events))
        message["timestamp"] = iso_ms(ms)
        message["sentAt"] = iso_ms(sent)
        message.update(fields)  # context, then properties or traits
        self._handle.write(_ENCODE(message) + "\n")
        self.events += 1
        self._in_file += 1
        self.by_event[message.get("event") or message["type"]] += 1
        if self.first_ms is None:
            self.first_ms = ms
        self.last_ms = ms
