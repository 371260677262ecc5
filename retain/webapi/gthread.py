"""gunicorn's gthread worker, taking part in the connection board (``RETAIN_API_WORKER=gthread``;
the default is retain.webapi.worker).

Its event loop hands every request to a pool thread, which hands the connection back through a
pipe: three wake-ups per request, where retain.webapi.worker's threads need one.
"""

from __future__ import annotations

from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from retain.webapi.board import BoardMember


class BalancedThreadWorker(BoardMember, ThreadWorker):
    """gthread that leaves a new connection to a peer holding fewer (see retain.webapi.board)."""

    def notify(self) -> None:
        super().notify()  # every turn of the event loop, and of the graceful stop's
        self.post(self.nr_conns, self.alive)

    def accept(self, listener: Any) -> None:
        # Level-triggered: the socket stays readable, and the peer that may accept is woken by it too.
        if self.may_accept(self.nr_conns):
            super().accept(listener)
            # Now, not at the next turn of the loop: the peers woken by the same connection decide
            # meanwhile.
            self.post(self.nr_conns, self.alive)
