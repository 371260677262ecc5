"""The Celery application: one queue per kind of work, configured so no task is lost.

A task is acknowledged only after it ran (acks_late) and is put back when its worker process dies
(reject_on_worker_lost), so a crash, a kill -9 or a spot reclaim leads to redelivery; tasks are
written to be idempotent for that reason. The broker's visibility timeout exceeds every time
limit, or a task still running would be handed to a second worker.

Producers need only this module (or any Celery app with the same broker): task modules are
imported by workers, never by a process that merely sends work by name.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from retain.config import QUEUES, Settings
from retain.worker.schedule import beat_schedule

TASK_MODULES = ["retain.tasks.ingest", "retain.tasks.maintenance", "retain.tasks.profiles", "retain.tasks.train"]


class QueueTimeLimits:
    """Task annotations giving every task the time limits of its queue (its name's first part)."""

    def __init__(self, limits: dict[str, int]) -> None:
        self.limits = limits

    def annotate(self, task) -> dict | None:
        hard = self.limits.get(task.name.split(".", 1)[0])
        return {"time_limit": hard, "soft_time_limit": int(hard * 0.9)} if hard else None


def transport_options(settings: Settings) -> dict:
    timeout = settings.broker_visibility_timeout
    return {
        "visibility_timeout": timeout,
        # Sweep the unacked set for messages of dead workers every tenth of the timeout (at most
        # once a minute), instead of kombu's default of roughly every 100 s regardless of it.
        "unacked_restore_interval": max(1, min(60, timeout // 10)),
        "unacked_restore_throttle": 1,
        "fanout_prefix": True,
        "fanout_patterns": True,
    }


def create_celery(settings: Settings) -> Celery:
    app = Celery("retain", broker=settings.broker_url, backend=settings.result_backend, include=TASK_MODULES)
    app.conf.update(
        task_queues=[Queue(name) for name in QUEUES],
        task_routes={f"{name}.*": {"queue": name} for name in QUEUES},
        task_default_queue="maintenance",
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_annotations=[QueueTimeLimits(settings.task_time_limits)],
        # Every place the Redis transport reads a visibility timeout: the broker and the result
        # backend's connection.
        broker_transport_options=transport_options(settings),
        result_backend_transport_options={"visibility_timeout": settings.broker_visibility_timeout},
        broker_connection_retry_on_startup=True,
        result_expires=settings.result_expires,
        result_extended=True,
        task_track_started=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_concurrency=settings.worker_concurrency,
        worker_prefetch_multiplier=1,
        timezone="UTC",
        enable_utc=True,
        beat_schedule=beat_schedule(settings),
    )
    app.retain_settings = settings
    return app


def prefetch_for(queues: list[str], settings: Settings) -> int:
    """Prefetch multiplier of a worker consuming ``queues``: 1 unless all of them are short."""
    if any(queue in settings.long_running_queues for queue in queues):
        return 1
    return settings.ingest_prefetch_multiplier


app = create_celery(Settings.from_env())

from retain.worker import signals  # noqa: E402,F401  (connects the worker signal handlers)
from retain.metrics import worker as _observability  # noqa: E402,F401  (logs, task metrics, exporter)
