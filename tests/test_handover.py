"""retain.handover: a thread's hook runs once, the next time that thread is about to wait."""

from __future__ import annotations

import threading

from retain.handover import before_waiting, on_waiting


def test_the_hook_runs_once_and_only_for_its_own_thread() -> None:
    calls: list[str] = []
    before_waiting()  # no hook: nothing happens
    on_waiting(lambda: calls.append("main"))
    other = threading.Thread(target=before_waiting)  # another thread's wait is not this one's
    other.start()
    other.join()
    assert calls == []
    before_waiting()
    before_waiting()
    assert calls == ["main"], "the hook runs the first time the thread waits, then is spent"
    on_waiting(lambda: calls.append("again"))
    on_waiting(None)
    before_waiting()
    assert calls == ["main"], "a hook taken back does not run"
