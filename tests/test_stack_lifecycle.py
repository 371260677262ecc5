"""A stack of its own, driven through the CLI: the demo starting it and Ctrl-C stopping it, up twice,
down twice, honest status, readiness with Cassandra stopped, and the errors a user can run into."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest
import requests

from retain.config import Settings
from retain.stack import Stack
from tests.harness import run_cli as retain
from tests.harness import demo_running, free_port, start_api


@pytest.fixture(scope="module")
def own(tmp_path_factory, settings: Settings) -> Settings:
    """Settings for a separate stack: its own home, Redis port and Cassandra address."""
    redis_port = free_port()
    own_settings = settings.replace(
        home=tmp_path_factory.mktemp("lifecycle") / "home",
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        broker_url=f"redis://127.0.0.1:{redis_port}/1",
        result_backend=f"redis://127.0.0.1:{redis_port}/2",
        stack_cassandra_addresses=["127.0.0.13"], cassandra_hosts=["127.0.0.13"], stack_jmx_port=7599,
        api_port=free_port(), flower_port=free_port(),
    )
    yield own_settings
    Stack(own_settings).down()


def states(settings: Settings) -> dict[str, dict]:
    out = retain(settings, "stack", "status", "--json", check=None)
    return {s["name"]: s for s in json.loads(out.stdout)["services"]}


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if text in cmdline and state != "Z":
                found.append(int(entry.name))
    return found


def test_demo_starts_the_stack_and_ctrl_c_stops_what_it_started(own: Settings, tmp_path) -> None:
    # From an empty home: the demo starts the stack itself, and Ctrl-C once its processes run stops
    # them and the stack. (tests/test_demo.py runs it to the end, on the test stack.)
    log_path = tmp_path / "demo.err"
    with demo_running(own, log_path, "--users", "50", "--days", "14") as demo:
        assert {name: s["state"] for name, s in states(own).items()} == {"redis": "running", "cassandra-dc1": "running"}
        demo.send_signal(signal.SIGINT)
        demo.wait(120)
    err = log_path.read_text()
    assert "stopped cassandra-dc1" in err and "stopped redis" in err, err[-2000:]
    assert all(s["state"] == "stopped" for s in states(own).values())
    assert processes_mentioning(str(own.home.resolve())) == []


def test_up_twice_down_twice_and_honest_status(own: Settings) -> None:
    first = json.loads(retain(own, "stack", "up", "--json").stdout)["services"]
    pids = {s["name"]: s["pid"] for s in first}
    assert set(pids) == {"redis", "cassandra-dc1"} and all(pids.values())
    again = json.loads(retain(own, "stack", "up", "--json").stdout)["services"]
    assert {s["name"]: s["pid"] for s in again} == pids, "a second `up` must keep the running services"
    assert {name: s["state"] for name, s in states(own).items()} == {"redis": "running", "cassandra-dc1": "running"}

    api, url = start_api(own, "lifecycle-api")
    try:
        assert requests.get(f"{url}/readyz", timeout=10).status_code == 200
        retain(own, "stack", "down", "--service", "cassandra-dc1")
        ready = requests.get(f"{url}/readyz", timeout=20)
        assert ready.status_code == 503
        assert ready.json()["failed"] == ["cassandra"]
        assert "Cassandra" in ready.json()["checks"]["cassandra"]
        assert ready.json()["checks"]["redis"] == "ok"
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        status = retain(own, "stack", "status", "--json", check=3)
        assert {s["name"]: s["state"] for s in json.loads(status.stdout)["services"]} == \
            {"redis": "running", "cassandra-dc1": "stopped"}
    finally:
        api.stop(30)

    assert json.loads(retain(own, "stack", "down", "--json").stdout)["stopped"] == ["redis"]
    assert json.loads(retain(own, "stack", "down", "--json").stdout)["stopped"] == []
    assert all(s["state"] == "stopped" for s in states(own).values())
    assert processes_mentioning(str(own.home.resolve())) == [], "a process of the stack outlived `down`"
    for pid in pids.values():
        assert not Path(f"/proc/{pid}/cmdline").exists() or processes_mentioning(str(pid)) == []


def test_port_busy_is_named(own: Settings) -> None:
    port = int(own.redis_url.rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        out = retain(own, "stack", "up", check=1)
    assert f"port busy: 127.0.0.1:{port}" in out.stderr
    assert "Traceback" not in out.stderr


def test_java_missing_is_named_before_anything_starts(own: Settings) -> None:
    out = retain(own, "stack", "up", check=1, RETAIN_JAVA_HOME="/nonexistent/jdk")
    assert out.stderr.startswith("error: Java missing")
    assert "RETAIN_JAVA_HOME" in out.stderr
    assert all(s["state"] == "stopped" for s in states(own).values()), "nothing starts when Java is missing"


def test_unresolvable_cassandra_version_is_named(own: Settings, tmp_path: Path) -> None:
    out = retain(own, "stack", "up", check=1, RETAIN_CASSANDRA_VERSION="4.99.99",
                 RETAIN_CACHE_DIR=str(tmp_path / "cache"))
    assert "could not resolve org.apache.cassandra:cassandra-all:4.99.99" in out.stderr


def test_logs_of_unknown_service_is_an_error(own: Settings) -> None:
    out = retain(own, "stack", "logs", "mysql", check=1)
    assert "unknown service 'mysql'" in out.stderr


def test_out_of_disk_is_named_before_starting(own: Settings, monkeypatch) -> None:
    # Filling a real disk is not an option on a shared machine; the free-space reading is replaced.
    from collections import namedtuple

    from retain.errors import StackError
    from retain.stack import service

    usage = namedtuple("usage", "total used free")
    low = usage(total=10 * 1024**3, used=10 * 1024**3 - 300 * 1024**2, free=300 * 1024**2)
    monkeypatch.setattr(service.shutil, "disk_usage", lambda path: low)
    with pytest.raises(StackError, match=r"out of disk: 300 MiB free under .* needs at least 2 GiB"):
        Stack(own).redis.start()
    assert not Stack(own).redis.process.is_running()
