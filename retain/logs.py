"""Logs of every long-running retain process (API, worker, beat, autoscaler): one setup, two formats.

``RETAIN_LOG_FORMAT=json`` (the default) writes one JSON object per line on stderr: ``ts`` (UTC,
ISO 8601), ``level``, ``logger``, ``message``, ``process`` (api, worker, ...), ``pid``, and when
known ``request_id``, ``task_id`` and ``task``, then any ``extra`` fields of the record and
``exc`` for a traceback. ``text`` is the same information on one human-readable line.

Request ids travel with the work: the API puts the request's id (the client's ``X-Request-Id`` or
a new one) in a context variable, every task published while it is set carries it in a message
header (:func:`_carry_request_id`), and the worker sets it again around the task (see
retain.metrics.worker), so the worker's lines about a task name the request that caused it — and
so do the lines of any task that task sends in turn.
"""

from __future__ import annotations

import logging
import random
import re
import sys
import time
from contextvars import ContextVar
from typing import Any, TextIO

import msgspec
from celery.signals import before_task_publish

from retain.config import Settings

REQUEST_ID_HEADER = "X-Request-Id"
# The Celery message header that carries the request id to the worker (a task's request attribute).
TASK_HEADER = "retain_request_id"

request_id: ContextVar[str | None] = ContextVar("retain_request_id", default=None)
task_id: ContextVar[str | None] = ContextVar("retain_task_id", default=None)
task_name: ContextVar[str | None] = ContextVar("retain_task_name", default=None)

# Clients' ids are echoed into logs and response headers: printable, short, no separators that
# could forge a log field or a header. Anything else is replaced, never refused.
_VALID_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=/+-]{0,127}")
# Anything a record carries that JSON has no type for (exceptions, paths, ...) is written as str().
_encode = msgspec.json.Encoder(enc_hook=str).encode
# Attributes every LogRecord has; anything else on a record came through ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def new_request_id() -> str:
    # 128 bits of the process's random generator (seeded from the OS, reseeded in each forked
    # process), not os.urandom: a request id need not be secret, and a system call per request
    # lets the API's other thread take the interpreter lock, which this one then waits to get back.
    return f"{random.getrandbits(128):032x}"


def valid_request_id(value: object) -> bool:
    return isinstance(value, str) and _VALID_ID.fullmatch(value) is not None


def accept_request_id(value: str | None) -> str:
    """The client's request id if it is acceptable, else a new one."""
    return value if value and _VALID_ID.fullmatch(value) else new_request_id()


_second: tuple[int, str] = (-1, "")


def _utc(created: float) -> str:
    global _second
    whole, cached = int(created), _second  # one read: another thread may replace it meanwhile
    if cached[0] != whole:  # one strftime per second of logging, not per line
        cached = _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{cached[1]}.{int((created - whole) * 1000):03d}Z"


def _context() -> dict[str, str]:
    found = {"request_id": request_id.get(), "task_id": task_id.get(), "task": task_name.get()}
    return {key: value for key, value in found.items() if value}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    names = record.__dict__.keys() - _STANDARD
    return {key: record.__dict__[key] for key in sorted(names) if not key.startswith("_")} if names else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {"ts": _utc(record.created), "level": record.levelname, "logger": record.name,
                                    "message": record.getMessage(), "process": self.process, "pid": record.process}
        document.update(_context())
        for key, value in _extras(record).items():
            document.setdefault(key, value)
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exc"] = record.exc_text
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        try:
            return _encode(document).decode()
        except (TypeError, ValueError, msgspec.EncodeError):  # e.g. a dict with tuple keys in an extra
            return _encode({key: value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
                            for key, value in document.items()}).decode()


class TextFormatter(logging.Formatter):
    """``ts LEVEL logger [process pid] message key=value ...`` for people reading a terminal."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        line = (f"{_utc(record.created)} {record.levelname:7} {record.name} [{self.process} {record.process}] "
                f"{record.getMessage()}")
        fields = {**_context(), **{k: v for k, v in _extras(record).items() if not isinstance(v, (dict, list))}}
        if fields:
            line += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        return line


def formatter(settings: Settings, process: str) -> logging.Formatter:
    return JsonFormatter(process) if settings.log_format == "json" else TextFormatter(process)


def configure(settings: Settings, process: str, level: str | int | None = None, stream: TextIO | None = None) -> None:
    """Send every logger's records to ``stream`` (stderr) in the configured format.

    Idempotent: a second call (Celery may configure a process again) replaces the handler the
    first one added instead of doubling every line.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_retain", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._retain = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter(settings, process))
    root.addHandler(handler)
    root.setLevel(level or settings.log_level)


def gunicorn_logger_class(settings: Settings, process: str = "api") -> type:
    """A gunicorn logger whose own lines (boot, worker exits) use the same format as ours."""
    from gunicorn.glogging import Logger

    class RetainGunicornLogger(Logger):
        def setup(self, cfg) -> None:
            super().setup(cfg)
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    if getattr(handler, "_gunicorn", False):
                        handler.setFormatter(formatter(settings, process))

    return RetainGunicornLogger


@before_task_publish.connect
def _carry_request_id(headers: dict | None = None, **_: object) -> None:
    # The API's request (or the task being run) that sends this task: the worker logs it again.
    current = request_id.get()
    if current and headers is not None:
        headers.setdefault(TASK_HEADER, current)
