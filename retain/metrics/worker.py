"""A worker's observability: its logs (with task and request ids), task metrics, and their exporter.

With ``RETAIN_WORKER_METRICS_PORT`` set, the worker's main process turns on multiprocess mode
before its pool forks (directory RETAIN_HOME/metrics/worker-NODENAME-MACHINE, emptied at start) and
serves ``/metrics`` on that port once it is ready; the pool processes, where tasks run, write
their metrics to that directory. Every worker process needs a port of its own: a worker whose port
is taken logs a warning and runs without an exporter (metrics never stop work). 0 turns it off.

- ``retain_task_duration_seconds{task,state}``: run time of each task by final state (SUCCESS,
  FAILURE, RETRY, ...).
- ``retain_task_failures_total{task,exception}``: the exception's class name, a bounded set.
- ``retain_events_ingested_total{tenant}`` (events newly stored), ``retain_events_duplicates_total
  {tenant}`` (dropped as already seen), ``retain_dead_letters_total{tenant,field}`` (rejected
  events by the field at fault; the reason text is unbounded, so it stays in the dead-letter
  record), ``retain_profiles_rebuilt_total{tenant}``. Tenants are a bounded set (each is a
  customer); users are not, and never label anything. Counted from the tasks' results, so the
  pipeline code stays free of metrics; a redelivered batch counts its dead letters again (their
  records are rewritten in place) but never its events (the ledger drops them).
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter as Tally
from typing import Any

from celery.signals import setup_logging, task_failure, task_postrun, task_prerun, worker_init, worker_ready
from prometheus_client import Counter, Histogram

from retain import logs
from retain.metrics.registry import REGISTRY, enable_multiprocess, process_dir, serve_exporter
from retain.worker import resources

log = logging.getLogger("retain.worker")
# What the logs call this process; `retain beat` sets "beat" before Celery configures logging.
process_name = "worker"
# From a small ingest batch to a training run.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 7200.0)


class TaskMetrics:
    def __init__(self) -> None:
        self.duration = Histogram("retain_task_duration_seconds", "Task run time by task and final state",
                                  ("task", "state"), buckets=BUCKETS, registry=REGISTRY)
        self.failures = Counter("retain_task_failures", "Tasks that raised, by task and exception class",
                                ("task", "exception"), registry=REGISTRY)
        self.ingested = Counter("retain_events_ingested", "Events newly stored by ingest workers",
                                ("tenant",), registry=REGISTRY)
        self.duplicates = Counter("retain_events_duplicates", "Events dropped as already stored (same messageId)",
                                  ("tenant",), registry=REGISTRY)
        self.dead_letters = Counter("retain_dead_letters", "Rejected events written as dead letters, by the "
                                    "field at fault", ("tenant", "field"), registry=REGISTRY)
        self.rebuilt = Counter("retain_profiles_rebuilt", "Profiles written by streaming rebuilds",
                               ("tenant",), registry=REGISTRY)


@functools.cache
def metrics() -> TaskMetrics:
    return TaskMetrics()


# --- logs ------------------------------------------------------------------------------------
@setup_logging.connect
def _configure_logs(loglevel: int | str | None = None, logfile: str | None = None, **_: object) -> None:
    # Connected, so Celery leaves the root logger to us: the same format as the API's.
    stream = open(logfile, "a", buffering=1) if logfile else None  # noqa: SIM115 - lives as long as the process
    logs.configure(resources.settings(), process_name, level=loglevel or None, stream=stream)


# --- per task --------------------------------------------------------------------------------
_started: dict[str, float] = {}


@task_prerun.connect
def _task_started(task_id: str | None = None, task: Any = None, **_: object) -> None:
    if not task_id:
        return
    _started[task_id] = time.perf_counter()
    carried = getattr(task.request, logs.TASK_HEADER, None) if task is not None else None
    logs.request_id.set(carried if logs.valid_request_id(carried) else None)
    logs.task_id.set(task_id)
    logs.task_name.set(getattr(task, "name", None))


@task_postrun.connect
def _task_finished(task_id: str | None = None, task: Any = None, args: Any = None, kwargs: Any = None,
                   retval: Any = None, state: str | None = None, **_: object) -> None:
    try:
        began = _started.pop(task_id, None) if task_id else None
        name = getattr(task, "name", None) or "?"
        if began is not None:
            metrics().duration.labels(name, state or "UNKNOWN").observe(time.perf_counter() - began)
        if state == "SUCCESS":
            _count_result(name, args or (), kwargs or {}, retval)
    finally:
        for var in (logs.request_id, logs.task_id, logs.task_name):
            var.set(None)


@task_failure.connect
def _task_failed(sender: Any = None, exception: BaseException | None = None, **_: object) -> None:
    metrics().failures.labels(getattr(sender, "name", None) or "?", type(exception).__name__).inc()


def _count_result(name: str, args: Any, kwargs: dict, retval: Any) -> None:
    if not isinstance(retval, dict):
        return
    tenant = str(retval.get("tenant", "?"))
    if name == "ingest.batch":
        committed = int(retval.get("committed", 0))
        metrics().ingested.labels(tenant).inc(committed)
        metrics().duplicates.labels(tenant).inc(max(int(retval.get("events", 0)) - committed, 0))
        payload = args[0] if args else kwargs.get("payload")
        rejected = payload.get("rejected") if isinstance(payload, dict) else None
        for field, count in Tally(str(r.get("field", "?")) for r in rejected or () if isinstance(r, dict)).items():
            metrics().dead_letters.labels(tenant, field).inc(count)
    elif name == "profiles.rebuild":
        metrics().rebuilt.labels(tenant).inc(int(retval.get("written", 0)))


# --- exporter --------------------------------------------------------------------------------
@worker_init.connect
def _metrics_dir(sender: Any = None, **_: object) -> None:
    settings = resources.settings()
    if settings.worker_metrics_port and sender is not None:
        # Before the pool forks: the pool processes inherit the mode and the directory.
        enable_multiprocess(process_dir(settings, f"worker-{sender.hostname}"))
    # Created once here, not by the first tasks of a threaded pool at once (all are labelled, so no
    # value exists until a pool process records one).
    metrics()


@worker_ready.connect
def _serve_metrics(**_: object) -> None:
    settings = resources.settings()
    port = settings.worker_metrics_port
    if not port:
        return
    try:
        serve_exporter(settings.metrics_host, port)
    except OSError as exc:
        log.warning("worker metrics not served: cannot listen on %s:%d (%s); give each worker on a machine "
                    "its own RETAIN_WORKER_METRICS_PORT", settings.metrics_host, port, exc)
    else:
        log.info("worker metrics at http://%s:%d/metrics", settings.metrics_host, port)
