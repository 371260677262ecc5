"""Draining a worker on an EC2 spot instance before EC2 takes the instance away.

With ``RETAIN_WORKER_SPOT_WATCH`` on, a thread of the worker's main process polls the instance
metadata service every ``RETAIN_WORKER_SPOT_POLL_SECONDS``:

* a **spot interruption notice** (``spot/instance-action``: terminate, stop or hibernate at a time,
  about two minutes ahead) makes the worker stop consuming at once, let the tasks it holds finish,
  and exit with a warm shutdown as soon as they have. Tasks still running
  ``RETAIN_WORKER_SPOT_MARGIN_SECONDS`` before the deadline are stopped by a cold shutdown: their
  messages were never acknowledged (acks_late), so the broker channel puts them back in their queue
  as the worker closes it and another worker runs them (a cold shutdown takes a second or two).
  Should even that hang, a second signal a third of the margin before the deadline makes Celery
  stop hard; the unacknowledged messages then come back after the visibility timeout.
  Either way a task completes or is redelivered; none is lost.
* a **rebalance recommendation** (``events/recommendations/rebalance``: the instance is at
  elevated risk, no deadline) makes the worker stop consuming and exit once its tasks are done, so
  that the replacement capacity a fleet with capacity rebalancing launches takes the work before
  any notice arrives; ``RETAIN_WORKER_SPOT_DRAIN_ON_REBALANCE=false`` only logs it. A notice that
  follows puts the drain under the notice's deadline.

The thread also reports the instance's busy state (tasks held, ``retain.autoscaler.busy``) so the
Auto Scaling backend protects busy instances from scale-in.

Everything that touches the broker runs on the worker's own event loop (``consumer.call_soon``) or
through the signals Celery handles in its main thread: kombu objects are not thread-safe.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import datetime, timezone

import redis
from celery.signals import worker_ready, worker_shutdown
from celery.worker import state

from retain.config import Settings
from retain.worker.imds import Imds, InstanceAction, MetadataUnavailable, Rebalance

log = logging.getLogger("retain.worker.spot")

BUSY_TTL_SECONDS = 120.0


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class SpotWatcher(threading.Thread):
    """Watches the instance metadata and drains the worker whose consumer it was given."""

    def __init__(self, consumer, settings: Settings, pid: int | None = None) -> None:
        super().__init__(name="retain-spot-watcher", daemon=True)
        self.consumer = consumer
        self.settings = settings
        self.pid = pid or os.getpid()
        self.imds = Imds(settings.worker_imds_url)
        self.poll_seconds = settings.worker_spot_poll_seconds
        self.margin = settings.worker_spot_margin_seconds
        self.instance_id: str | None = None
        self.notice: InstanceAction | None = None
        self.rebalance: Rebalance | None = None
        self.cutoff: float | None = None  # monotonic time at which running tasks are stopped
        self.consumers_cancelled = threading.Event()
        self.stopping = threading.Event()
        self._draining = False
        self._warm_sent = False
        self._escalations = 0
        self._last_error = ""
        self._reported: tuple[int, float] | None = None  # (in flight, monotonic time of the report)
        self._data: redis.Redis | None = None

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> None:
        log.info("spot watcher polling %s every %.1fs", self.imds.base_url, self.poll_seconds)
        next_poll = 0.0
        while not self.stopping.is_set():
            now = time.monotonic()
            try:
                if now >= next_poll and self.notice is None:
                    next_poll = now + self.poll_seconds
                    self.poll_metadata()
                self.report_busy()
                if self._draining:
                    self.step_drain()
            except Exception:  # noqa: BLE001 - a dead watcher would let the instance go with its tasks
                log.exception("spot watcher: unexpected error; carrying on")
            # Poll fast while draining, so the worker exits as soon as its last task is done.
            wait = 0.25 if self._draining else max(0.0, next_poll - time.monotonic())
            self.stopping.wait(wait)

    def poll_metadata(self) -> None:
        try:
            notice = self.imds.instance_action()
            if notice is not None:
                self.on_interruption(notice)
            elif self.rebalance is None:
                recommendation = self.imds.rebalance()
                if recommendation is not None:
                    self.on_rebalance(recommendation)
            if self.instance_id is None:  # only the busy reports need it
                self.instance_id = self.imds.instance_id()
            self._last_error = ""
        except MetadataUnavailable as exc:
            # Logged when it changes: an unreachable service would otherwise fill the log every poll.
            if str(exc) != self._last_error:
                log.warning("spot watcher: %s", exc)
                self._last_error = str(exc)

    # -- notices ----------------------------------------------------------------------------------
    def on_interruption(self, notice: InstanceAction) -> None:
        self.notice = notice
        left = notice.time - time.time()
        self.cutoff = time.monotonic() + left - self.margin
        log.warning("spot interruption notice: EC2 will %s this instance at %s (in %.0fs); draining: no new "
                    "tasks, %d held; tasks still running at %s are stopped and requeued", notice.action,
                    _utc(notice.time), left, self.in_flight(), _utc(notice.time - self.margin))
        self.start_drain()

    def on_rebalance(self, recommendation: Rebalance) -> None:
        self.rebalance = recommendation
        if not self.settings.worker_spot_drain_on_rebalance:
            log.warning("spot rebalance recommendation (%s): this instance is at elevated risk of interruption; "
                        "not draining (RETAIN_WORKER_SPOT_DRAIN_ON_REBALANCE=false)", _utc(recommendation.notice_time))
            return
        log.warning("spot rebalance recommendation (%s): draining: no new tasks, exiting once the %d held are done",
                    _utc(recommendation.notice_time), self.in_flight())
        self.start_drain()

    # -- draining ---------------------------------------------------------------------------------
    def start_drain(self) -> None:
        if self._draining:
            return
        self._draining = True
        self.consumer.call_soon(self._cancel_consumers)

    def _cancel_consumers(self) -> None:
        # Runs on the worker's event loop. Deselecting every queue also keeps a consumer that
        # reconnects to the broker from consuming again.
        try:
            for queue in list(self.consumer.app.amqp.queues.consume_from):
                self.consumer.cancel_task_queue(queue)
        finally:
            self.consumers_cancelled.set()

    def in_flight(self) -> int:
        """Tasks this worker holds: running, or received and waiting for a pool process."""
        return len(state.reserved_requests)

    def step_drain(self) -> None:
        now = time.monotonic()
        if not self._warm_sent and not self._escalations and self.consumers_cancelled.is_set() \
                and self.in_flight() == 0:
            log.warning("spot drain: no task left, stopping the worker")
            self._warm_sent = True
            self.report_busy(force=True)
            os.kill(self.pid, signal.SIGTERM)  # Celery's warm shutdown, handled in the main thread
        elif self.cutoff is not None and now >= self.cutoff:
            self.escalate(now)

    def escalate(self, now: float) -> None:
        assert self.cutoff is not None
        # SIGQUIT is Celery's cold shutdown: running tasks are cancelled without acknowledgement and the
        # channel restores their messages to the queue on close. A second one is its hard shutdown.
        if self._escalations == 0:
            log.warning("spot drain: the interruption is %.0fs away and %d task(s) are still running; "
                        "stopping them, they will be redelivered", self.margin, self.in_flight())
        elif self._escalations == 1 and now >= self.cutoff + self.margin * 2 / 3:
            log.error("spot drain: the cold shutdown did not finish; stopping hard")
        else:
            return
        self._escalations += 1
        os.kill(self.pid, signal.SIGQUIT)

    # -- busy state for the autoscaler ------------------------------------------------------------
    def report_busy(self, force: bool = False) -> None:
        if self.instance_id is None:
            return
        held = 0 if force else self.in_flight()
        now = time.monotonic()
        last = self._reported
        # On every change between idle and busy, and while busy often enough to keep the entry alive.
        if not force and last is not None and (last[0] > 0) == (held > 0) and \
                (held == 0 or now - last[1] < min(self.poll_seconds, BUSY_TTL_SECONDS / 4)):
            return
        from retain.autoscaler.busy import report
        from retain.store.redis import redis_client

        try:
            if self._data is None:
                self._data = redis_client(self.settings)
            report(self._data, self.settings.redis_prefix, self.instance_id, held,
                   ttl=max(BUSY_TTL_SECONDS, 4 * self.poll_seconds))
            self._reported = (held, now)
        except redis.RedisError as exc:
            log.warning("spot watcher: could not report the busy state: %s", exc)


_watcher: SpotWatcher | None = None


@worker_ready.connect
def _start_watcher(sender=None, **_: object) -> None:
    # worker_ready comes again after a reconnection to the broker: one watcher per worker.
    global _watcher
    from retain.worker import resources

    settings = resources.settings()
    if not settings.worker_spot_watch or sender is None or _watcher is not None:
        return
    _watcher = SpotWatcher(sender, settings)
    _watcher.start()


@worker_shutdown.connect
def _report_idle(**_: object) -> None:
    if _watcher is not None:
        _watcher.stopping.set()
        _watcher.report_busy(force=True)
