"""`retain demo --exit` end to end on the test stack, and its processes killed one at a time.

The demo runs beside the session's own processes: same stack (so `stack up` finds it running and the
demo leaves it alone), its own keyspace, Redis databases, ports and a small population, so a whole
run takes a few minutes. Each kill must end the demo with a message naming what died, leave none of
its processes behind, and a rerun after `retain stack up` must complete with no cleanup by hand.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid

import pytest

from retain.demo.processes import roles
from retain.stack.process import ManagedProcess
from tests.harness import demo_running, free_port, run_cli, start_demo

SMALL = ["--users", "60", "--days", "14"]


@pytest.fixture(scope="module")
def demo_settings(stack, settings, tmp_path_factory):
    base = settings.redis_url.rsplit("/", 1)[0]
    # A keyspace and a lake of its own: its Redis databases (and so the dedupe ledger) start empty
    # every run, so must everything the demo's counts are checked against.
    lake = tmp_path_factory.mktemp("demo-lake")
    own = settings.replace(
        cassandra_keyspace=f"retain_demo_{uuid.uuid4().hex[:8]}", redis_url=f"{base}/18", broker_url=f"{base}/16",
        result_backend=f"{base}/17", api_port=free_port(), flower_port=free_port(), lake_url=f"file://{lake}")
    from retain.store.redis import redis_client

    for url in (own.redis_url, own.broker_url, own.result_backend):
        client = redis_client(own.replace(redis_url=url))
        client.flushdb()
        client.close()
    return own


def _finish(demo: subprocess.Popen, settings, log_path, timeout: float) -> str:
    """The demo's stdout once it ends. One still running after ``timeout`` s is interrupted (so it
    stops its processes) and the test fails with where it was: its progress and its processes' logs.
    Under pytest-timeout's 600 s, which would say only that the test waited."""
    try:
        return demo.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        demo.send_signal(signal.SIGINT)
        try:
            demo.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.communicate()
        logs = "".join(f"\n--- {name}:\n{ManagedProcess.under(settings.home, name).log_tail(15)}"
                       for name in _names(settings))
        pytest.fail(f"the demo was still running after {timeout:.0f} s; its progress:\n"
                    f"{log_path.read_text()[-3000:]}\nits processes' logs:{logs}")


def _names(settings) -> list[str]:
    """The demo's processes and its profile fleet's (the demo caps the fleet at 2; 4 to be sure)."""
    return [role.name for role in roles(settings)] + [f"fleet-profiles-{i}" for i in range(4)]


def _leftovers(settings) -> list[str]:
    return [name for name in _names(settings) if ManagedProcess.under(settings.home, name).is_running()]


@pytest.mark.parametrize("victim, label", [("demo-worker", "ingest worker"), ("demo-beat", "beat"),
                                           ("demo-flower", "Flower"), ("demo-api", "API")])
def test_a_killed_process_ends_the_demo_with_its_name(demo_settings, tmp_path, victim, label) -> None:
    log_path = tmp_path / "demo.err"
    with demo_running(demo_settings, log_path, "--exit", "--json", *SMALL) as demo:
        pid = ManagedProcess.under(demo_settings.home, victim).pid()
        assert pid, f"{victim} is not running"
        os.kill(pid, signal.SIGKILL)
        _finish(demo, demo_settings, log_path, 300)
    err = log_path.read_text()
    assert demo.returncode != 0, f"the demo went on after {victim} was killed:\n{err[-2000:]}"
    assert f"the {label} ({victim})" in err, f"the error does not name {victim}:\n{err[-2000:]}"
    assert _leftovers(demo_settings) == [], "the failed demo left processes running"


def test_a_rerun_after_stack_up_completes(demo_settings, tmp_path) -> None:
    run_cli(demo_settings, "stack", "up", "--dcs", "2")
    began = time.monotonic()
    demo = start_demo(demo_settings, tmp_path / "demo.err", "--exit", "--json", *SMALL)
    out = _finish(demo, demo_settings, tmp_path / "demo.err", 420)
    err = (tmp_path / "demo.err").read_text()
    assert demo.returncode == 0, f"the demo failed after {time.monotonic() - began:.0f} s:\n{err[-4000:]}"
    summary = json.loads(out)
    for name, tenant in summary["tenants"].items():
        assert tenant["accepted"] == tenant["events"] == tenant["in_lake"] > 0, name
        assert tenant["profiles"] == tenant["users"] == 60, name
        assert tenant["model"]["version"], name
    assert len(summary["profiles"]) == 4 and all(p["user_id"] for p in summary["profiles"].values())
    assert summary["flower"]["password"] and summary["keys"]["demo-news"]["read"].startswith("rk_")
    assert _leftovers(demo_settings) == [], "the demo left processes running after --exit"
