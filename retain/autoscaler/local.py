"""A pool of `retain worker` processes on this machine: the default fleet, used by the demo.

Worker i of pool P is the managed process ``fleet-P-i`` (pid file and log under RETAIN_HOME, like
every service retain starts); with RETAIN_WORKER_METRICS_PORT set, its exporter listens on that
port + i. Growing starts the lowest free slots; shrinking sends the highest
ones a warm shutdown (SIGTERM to the worker itself): it stops consuming, finishes the tasks it
holds and exits, so no task in flight is killed. A draining worker no longer counts as capacity.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from retain.autoscaler.fleet import Fleet
from retain.config import Settings
from retain.stack.process import ManagedProcess


class LocalFleet(Fleet):
    def __init__(self, settings: Settings, pool: str, queues: tuple[str, ...], max_slots: int = 64) -> None:
        self.settings, self.pool, self.queues, self.max_slots = settings, pool, queues, max_slots

    def _slot(self, index: int) -> ManagedProcess:
        return ManagedProcess.under(self.settings.home, f"fleet-{self.pool}-{index}")

    def _draining_mark(self, worker: ManagedProcess) -> Path:
        return worker.pid_file.with_suffix(".draining")

    def _serving(self) -> list[int]:
        serving = []
        for index in range(self.max_slots):
            worker = self._slot(index)
            mark = self._draining_mark(worker)
            if not worker.is_running():
                mark.unlink(missing_ok=True)  # a drained worker's slot is free again
            elif not mark.exists():
                serving.append(index)
        return serving

    def draining(self) -> int:
        return sum(self._draining_mark(self._slot(i)).exists() and self._slot(i).is_running()
                   for i in range(self.max_slots))

    def current(self) -> int:
        return len(self._serving())

    def resize(self, desired: int) -> None:
        serving = self._serving()
        if desired > len(serving):
            free = (i for i in range(self.max_slots) if not self._slot(i).is_running())
            for index, _ in zip(free, range(desired - len(serving))):
                self._start(index)
        for index in sorted(serving, reverse=True)[:max(len(serving) - desired, 0)]:
            worker = self._slot(index)
            self._draining_mark(worker).write_text("")
            worker.terminate()

    def _start(self, index: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIN_")}
        env.update(self.settings.to_env())
        if self.settings.worker_metrics_port:
            # One exporter per worker process: slot i serves on the configured port + i.
            env["RETAIN_WORKER_METRICS_PORT"] = str(self.settings.worker_metrics_port + index)
        hostname = f"{self.pool}-{index}@{socket.gethostname()}"
        self._slot(index).spawn([sys.executable, "-m", "retain", "worker", "--queues", ",".join(self.queues),
                                 f"--hostname={hostname}"], env=env)

    def stop_all(self, timeout: float = 60.0) -> int:
        """Stop every worker of the pool (warm, then forced after ``timeout``); returns how many."""
        return sum(self._slot(i).stop(timeout) for i in range(self.max_slots))
