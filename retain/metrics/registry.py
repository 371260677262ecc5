"""Where retain's metrics live, and how they are exposed.

A process that is one Python process (the autoscaler) keeps its metrics in :data:`REGISTRY`. A
server that forks (gunicorn's workers, Celery's prefork pool) uses prometheus_client's
multiprocess mode: :func:`enable_multiprocess` points every process of the server at a directory
of its own (memory-mapped files, one per process), emptied when the server starts, and the
exposition sums the files. The mode must be on before the first metric value is created, which is
why every metric of retain is created lazily, on first use (see retain.metrics.http and .worker).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, values
from prometheus_client.exposition import start_http_server
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from retain.config import Settings

ENV = "PROMETHEUS_MULTIPROC_DIR"
# Not prometheus_client's global registry: retain's metrics only, registered once per process.
REGISTRY = CollectorRegistry(auto_describe=True)


def process_dir(settings: Settings, name: str) -> Path:
    """The multiprocess directory of one server: RETAIN_HOME/metrics/NAME-MACHINE, unique on a
    machine, and across machines that share RETAIN_HOME (containers on one volume)."""
    tag = re.sub(r"[^A-Za-z0-9_.@-]", "_", f"{name}-{socket.gethostname()}")
    return settings.home.resolve() / "metrics" / tag


def enable_multiprocess(directory: Path, wipe: bool = True) -> Path:
    """Turn on multiprocess mode for this process and those it forks afterwards.

    ``wipe`` empties the directory: a server starting must not add the totals of a previous run
    (whose processes are gone) to its own.
    """
    if wipe:
        shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[ENV] = str(directory)
    if not getattr(values.ValueClass, "_multiprocess", False):
        # prometheus_client chose its value class when it was imported, before the variable was set.
        values.ValueClass = values.MultiProcessValue()
    return directory


def multiprocess_dir() -> str | None:
    return os.environ.get(ENV) or None


def process_exited(pid: int) -> None:
    """Forget a dead process's live gauges (its in-flight count); counters keep its totals."""
    directory = multiprocess_dir()
    if directory:
        mark_process_dead(pid, directory)


def collecting_registry() -> CollectorRegistry:
    """What to expose: the sum over the server's processes in multiprocess mode, else REGISTRY."""
    directory = multiprocess_dir()
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, directory)
    return registry


def exposition() -> tuple[bytes, str]:
    """The Prometheus text exposition of this server's metrics, and its content type."""
    return generate_latest(collecting_registry()), CONTENT_TYPE_LATEST


class _Collecting:
    """Hands start_http_server the right registry at each scrape (files appear as processes start)."""

    def collect(self):
        return collecting_registry().collect()


def serve_exporter(host: str, port: int) -> tuple[object, threading.Thread]:
    """Serve /metrics on ``host:port`` from a daemon thread; OSError if the port is taken."""
    return start_http_server(port, addr=host, registry=_Collecting())
