"""The autoscaler's gauges, one series per pool, served by `retain autoscaler run` on
``RETAIN_AUTOSCALER_METRICS_PORT`` (0: off). Desired against current capacity is the figure to
watch: a pool whose current stays below desired is not getting the workers it asks for.
``retain_autoscaler_last_look_timestamp_seconds`` tells a stuck controller (broker unreachable)
from a quiet one.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from typing import Any

from prometheus_client import Gauge

from retain.config import Settings
from retain.metrics.registry import REGISTRY, serve_exporter

log = logging.getLogger("retain.autoscaler")


class PoolGauges:
    def __init__(self) -> None:
        def gauge(name: str, text: str) -> Gauge:
            return Gauge(f"retain_autoscaler_{name}", text, ("pool",), registry=REGISTRY)

        self.desired = gauge("desired_workers", "Workers the policy asks for")
        self.current = gauge("current_workers", "Workers serving (draining ones excluded)")
        self.waiting = gauge("queue_waiting", "Tasks waiting in the pool's queues")
        self.reserved = gauge("queue_reserved", "Tasks delivered to workers and not yet acknowledged")
        self.rate = gauge("service_rate", "Tasks per second one worker serves (measured; NaN until known)")
        self.last_look = gauge("last_look_timestamp_seconds", "When the controller last looked at the pool")


@functools.cache
def gauges() -> PoolGauges:
    return PoolGauges()


def record(steps: Iterable[Any]) -> None:
    """Set the gauges from one look's steps (retain.autoscaler.controller.Step)."""
    g = gauges()
    for step in steps:
        g.desired.labels(step.pool).set(step.desired)
        g.current.labels(step.pool).set(step.current)
        g.waiting.labels(step.pool).set(step.waiting)
        g.reserved.labels(step.pool).set(step.reserved)
        g.rate.labels(step.pool).set(float("nan") if step.rate is None else step.rate)
        g.last_look.labels(step.pool).set(step.at)


def serve(settings: Settings) -> bool:
    """Start the exporter if a port is set; False (with a warning) if it could not listen."""
    port = settings.autoscaler_metrics_port
    if not port:
        return False
    gauges()
    try:
        serve_exporter(settings.metrics_host, port)
    except OSError as exc:
        log.warning("autoscaler metrics not served: cannot listen on %s:%d (%s)", settings.metrics_host, port, exc)
        return False
    log.info("autoscaler metrics at http://%s:%d/metrics", settings.metrics_host, port)
    return True
