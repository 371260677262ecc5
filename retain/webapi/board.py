"""Keep-alive connections spread evenly over the API's worker processes.

A worker keeps every connection it accepts until the client closes it, and serves them with one
core at most (Python's GIL). When the workers share one listening socket, whichever wakes first
takes a new connection; when each has its own (SO_REUSEPORT), the kernel picks one by hash. Either
way a handful of long-lived connections (a load balancer's, an email sender's pool) may land mostly
on one process, which then queues requests behind its GIL while the others idle: the tail latency
of the whole API is that process's.

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

# A live worker posts at least once a second.
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
        TTIN: that worker then accepts whatever it is offered)."""
        return next((i for i in range(self.slots) if i not in taken), None)


class BoardMember:
    """What a worker class mixes in to take part: its slot, and the questions it asks the board."""

    board: ConnectionBoard | None = None  # set in the master before it forks (retain.webapi.server)
    slot: int | None = None  # set by pre_fork

    def may_accept(self, held: int) -> bool:
        return self.board is None or self.slot is None or self.board.may_accept(self.slot, held)

    def post(self, held: int, serving: bool) -> None:
        """Post what this worker holds; a stopping one (``serving`` false) takes itself off the board,
        as it accepts nothing more and must not be the peer the others wait for."""
        if self.board is not None and self.slot is not None:
            if serving:
                self.board.post(self.slot, held)
            else:
                self.board.clear(self.slot)


def pre_fork(server: Any, worker: Any) -> None:
    """gunicorn's pre_fork hook (in the master): give the new worker a slot no live worker holds."""
    board = BoardMember.board
    if board is not None:
        worker.slot = board.free_slot({w.slot for w in server.WORKERS.values()})
        if worker.slot is not None:
            board.clear(worker.slot)


def worker_exited(worker: Any) -> None:
    """From gunicorn's child_exit hook: the slot is free, and its connections are gone."""
    if BoardMember.board is not None and worker.slot is not None:
        BoardMember.board.clear(worker.slot)
