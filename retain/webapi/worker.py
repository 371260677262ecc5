"""The API's gunicorn worker: gthread, with keep-alive connections spread evenly over the processes.

A gthread worker keeps every connection it accepts until the client closes it, and serves them
with one core at most (Python's GIL). When the workers share one listening socket, whichever wakes
first takes a new connection; when each has its own (SO_REUSEPORT), the kernel picks one by hash.
Either way a handful of long-lived connections (a load balancer's, an email sender's pool) may land
mostly on one process, which then queues requests behind its GIL while the others idle: the tail
latency of the whole API is that process's.

So the workers share one socket and a small board in shared memory (created by the master before
it forks them) where each posts how many connections it holds; a worker accepts only while it
holds no more than the least loaded of its live peers. A peer that has not posted for
``STALE_SECONDS`` (stuck, or gone) does not count, so a hung worker never stops the others from
accepting.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

# A live worker posts at least once a second (gthread's event loop wakes at least that often).
STALE_SECONDS = 3.0


class ConnectionBoard:
    """Per worker slot: connections held, and when it last posted (CLOCK_MONOTONIC is system-wide)."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._cells = multiprocessing.RawArray("d", 2 * slots)  # [held, posted] per slot

    def post(self, slot: int, held: int) -> None:
        self._cells[2 * slot], self._cells[2 * slot + 1] = held, time.monotonic()

    def clear(self, slot: int) -> None:
        self._cells[2 * slot] = self._cells[2 * slot + 1] = 0.0

    def may_accept(self, slot: int, held: int) -> bool:
        """Whether a worker holding ``held`` connections holds no more than every live peer."""
        fresh = time.monotonic() - STALE_SECONDS
        peers = [self._cells[2 * i] for i in range(self.slots) if i != slot and self._cells[2 * i + 1] > fresh]
        return not peers or held <= min(peers)

    def free_slot(self, taken: set[int | None]) -> int | None:
        """A slot no live worker holds; None when all are (more workers were added at run time, by
        TTIN: that worker accepts as plain gthread does)."""
        return next((i for i in range(self.slots) if i not in taken), None)


class BalancedThreadWorker(ThreadWorker):
    """gthread that leaves a new connection to a peer holding fewer (see the module's docstring)."""

    board: ConnectionBoard | None = None  # set in the master before it forks (retain.webapi.server)
    slot: int | None = None  # set by pre_fork

    def _balanced(self) -> bool:
        return self.board is not None and self.slot is not None

    def notify(self) -> None:
        super().notify()  # every turn of the event loop, and of the graceful stop's
        if self._balanced():
            if self.alive:
                self.board.post(self.slot, self.nr_conns)
            else:
                # Stopping: it accepts nothing more, so it must not be the peer the others wait for.
                self.board.clear(self.slot)

    def accept(self, listener: Any) -> None:
        if not self._balanced():
            super().accept(listener)
        # Level-triggered: the socket stays readable, and the peer that may accept is woken by it too.
        elif self.board.may_accept(self.slot, self.nr_conns):
            super().accept(listener)
            # Now, not at the next turn of the loop: the peers woken by the same connection decide
            # meanwhile.
            self.board.post(self.slot, self.nr_conns)


def pre_fork(server: Any, worker: Any) -> None:
    """gunicorn's pre_fork hook (in the master): give the new worker a slot no live worker holds."""
    board = BalancedThreadWorker.board
    if board is not None:
        worker.slot = board.free_slot({w.slot for w in server.WORKERS.values()})
        if worker.slot is not None:
            board.clear(worker.slot)


def worker_exited(worker: Any) -> None:
    """From gunicorn's child_exit hook: the slot is free, and its connections are gone."""
    if BalancedThreadWorker.board is not None and worker.slot is not None:
        BalancedThreadWorker.board.clear(worker.slot)
