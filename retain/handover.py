"""A thread about to wait hands its serving over first.

The API's worker (retain.webapi.worker) lets one thread per process serve at a time: two threads
serving at once only contend for Python's interpreter lock, each system call letting the other take
it, and on a busy machine every such hand-over is a wait for a core. But a request that waits on
Cassandra, a fill lock, S3 or a slow client must not hold up the process's other connections: code
about to wait calls :func:`before_waiting`, and the worker's hook for the calling thread lets
another thread serve meanwhile. Elsewhere (a Celery worker, a CLI, a test) no hook is set and the
call does nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

_local = threading.local()


def on_waiting(hook: Callable[[], None] | None) -> None:
    """Call ``hook`` (once) the next time this thread is about to wait; None: nothing to call."""
    _local.hook = hook


def before_waiting() -> None:
    """This thread is about to wait (on a store, a lock, a client): run its hook, if it has one."""
    hook = getattr(_local, "hook", None)
    if hook is not None:
        _local.hook = None
        hook()
