"""Helpers for tests against real services: polling with deadlines, free ports, child processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, TypeVar

import requests

from retain.config import Settings
from retain.stack.process import ManagedProcess

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def poll(probe: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Call ``probe`` until it returns something truthy; fail naming ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except Exception as exc:  # noqa: BLE001 - a probe may fail until the thing is there
            last_error, value = exc, None
        if value:
            return value
        time.sleep(interval)
    detail = f" (last error: {last_error!r})" if last_error else ""
    raise AssertionError(f"within {timeout:.0f}s, this did not happen: {what}{detail}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children(pid: int) -> set[int]:
    """The pids of ``pid``'s child processes (gunicorn's workers, a worker's pool), from /proc."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(p) for p in (task / "children").read_text().split()}
    return found


def child_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIN_") or k.startswith("RETAIN_TEST_")}
    return {**env, **settings.to_env(), "PYTHONUNBUFFERED": "1"}


def retain_process(settings: Settings, name: str) -> ManagedProcess:
    return ManagedProcess.under(settings.home, name)


def start_worker(settings: Settings, name: str, queues: str = "all") -> ManagedProcess:
    """A real `retain worker` process; returns once it answers a ping."""
    from celery import Celery

    proc = retain_process(settings, name)
    hostname = f"{name}@{socket.gethostname()}"
    argv = [sys.executable, "-m", "retain", "worker", "--queues", queues, f"--hostname={hostname}"]
    proc.spawn(argv, env=child_env(settings))
    control = Celery(broker=settings.broker_url)

    def answers() -> bool:
        assert proc.is_running(), f"worker {name} exited:\n{proc.log_tail(30)}"
        return bool(control.control.ping(destination=[hostname], timeout=1.0))

    try:
        poll(answers, 90, f"worker {hostname} answers a ping")
    finally:
        control.close()
    return proc


def start_api(settings: Settings, name: str = "test-api") -> tuple[ManagedProcess, str]:
    """A real gunicorn API process on a free port; returns it and its base URL."""
    proc = retain_process(settings, name)
    port = free_port()
    argv = [sys.executable, "-m", "retain", "api", "--host", "127.0.0.1", "--port", str(port)]
    proc.spawn(argv, env=child_env(settings))
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.is_running(), f"API exited:\n{proc.log_tail(30)}"
        return requests.get(f"{url}/healthz", timeout=1).status_code == 200

    try:
        poll(healthy, 60, f"the API at {url} answers /healthz")
    except BaseException:
        proc.stop(10)  # not left serving (or starting) after the test that asked for it failed
        raise
    return proc, url


def run_cli(settings: Settings, *args: str, check: int | None = 0, **env: str) -> subprocess.CompletedProcess:
    """`retain ARGS` in a child process with these settings; asserts the exit code unless None."""
    out = subprocess.run([sys.executable, "-m", "retain", *args], capture_output=True, text=True,
                         env={**child_env(settings), **env}, cwd=ROOT, timeout=600)
    if check is not None:
        assert out.returncode == check, f"retain {' '.join(args)} exited {out.returncode}:\n{out.stderr[-3000:]}"
    return out


def start_demo(settings: Settings, log_path: Path, *args: str) -> subprocess.Popen:
    """`retain demo ARGS` in a child process, its progress (stderr) into ``log_path``, its stdout piped."""
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, "-m", "retain", "demo", *args], cwd=ROOT, env=child_env(settings),
                                stdout=subprocess.PIPE, stderr=log, text=True)


@contextmanager
def demo_running(settings: Settings, log_path: Path, *args: str) -> Iterator[subprocess.Popen]:
    """`retain demo ARGS`, given once every process it starts runs and has answered (it is creating
    the tenants); killed on the way out if it is still running."""
    demo = start_demo(settings, log_path, *args)
    try:
        poll(lambda: demo.poll() is None and "==> creating tenants" in log_path.read_text(), 300,
             f"the demo starting its processes (log: {log_path})")
        yield demo
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(30)


def crash_settings(settings: Settings, keyspace: str, broker_db: int, name: str, **overrides) -> Settings:
    """Settings for a test that kills workers: its own keyspace, data prefix and home, and a broker
    and result backend in Redis databases ``broker_db`` and ``broker_db + 1``, emptied first. Short
    time limits and visibility timeout make a killed worker's task come back within seconds."""
    from retain.store.redis import redis_client

    isolated = settings.replace(
        broker_url=f"{settings.redis_url.rsplit('/', 1)[0]}/{broker_db}",
        result_backend=f"{settings.redis_url.rsplit('/', 1)[0]}/{broker_db + 1}",
        cassandra_keyspace=keyspace, redis_prefix=f"retain:t{os.urandom(4).hex()}:",
        task_time_limits={q: 15 for q in ("ingest", "profiles", "train", "maintenance")},
        broker_visibility_timeout=20, home=settings.home / name, **overrides)
    for url in (isolated.broker_url, isolated.result_backend):
        client = redis_client(isolated.replace(redis_url=url))
        client.flushdb()
        client.close()
    return isolated
