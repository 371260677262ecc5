"""Worker lifecycle hooks: fresh connections in every pool process, closed on shutdown."""

from __future__ import annotations

import logging

from celery.signals import worker_process_init, worker_process_shutdown, worker_ready

from retain.worker import resources

log = logging.getLogger("retain.worker")


@worker_process_init.connect
def _fresh_connections(**_: object) -> None:
    # The Cassandra driver's threads and Redis sockets do not survive fork().
    resources.reset()


@worker_process_shutdown.connect
def _close_connections(**_: object) -> None:
    resources.close()


@worker_ready.connect
def _announce(sender=None, **_: object) -> None:
    queues = sorted(q.name for q in sender.app.amqp.queues.consume_from.values()) if sender else []
    log.info("retain worker ready, consuming %s", ",".join(queues))
