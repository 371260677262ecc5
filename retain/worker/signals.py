"""Worker lifecycle hooks: fresh connections in every pool process, closed on shutdown."""

from __future__ import annotations

import logging
import time

import redis
from celery.signals import task_postrun, task_prerun, worker_process_init, worker_process_shutdown, worker_ready

from retain.worker import resources
from retain.worker import spot  # noqa: F401  (the spot interruption watcher, started on worker_ready)

log = logging.getLogger("retain.worker")


@worker_process_init.connect
def _fresh_connections(**_: object) -> None:
    # The Cassandra driver's threads and Redis sockets do not survive fork().
    resources.reset()


@worker_process_shutdown.connect
def _close_connections(exitcode: int | None = None, **_: object) -> None:
    # billiard's pool process exits with -(256 - signum) on a termination signal.
    resources.close(signalled=isinstance(exitcode, int) and exitcode < 0)


@worker_ready.connect
def _announce(sender=None, **_: object) -> None:
    queues = sorted(q.name for q in sender.app.amqp.queues.consume_from.values()) if sender else []
    log.info("retain worker ready, consuming %s", ",".join(queues))


_started: dict[str, float] = {}


@task_prerun.connect
def _task_started(task_id: str | None = None, **_: object) -> None:
    if task_id:
        _started[task_id] = time.monotonic()


@task_postrun.connect
def _task_served(task_id: str | None = None, task=None, **_: object) -> None:
    # Busy time per queue, what the autoscaler derives the per-worker service rate from.
    began = _started.pop(task_id, None) if task_id else None
    queue = (getattr(task.request, "delivery_info", None) or {}).get("routing_key") if task else None
    if began is None or not queue:
        return
    from retain.autoscaler.stats import record

    try:
        record(resources.data_redis(), resources.settings().redis_prefix, queue, time.monotonic() - began, time.time())
    except redis.RedisError:  # statistics must never fail a task that succeeded
        log.warning("could not record the service time of a %s task", queue, exc_info=True)
