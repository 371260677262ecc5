"""`retain demo`: bring the system up on this machine and show it working end to end.

At this stage: the local stack, the schema, a real worker and the API, and a task's round trip
through the broker. Later issues add ingestion, training and profiles. The demo stops only what it
started: services that were already running are left as they were.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

import click
import requests

from retain.config import Settings
from retain.errors import RetainError
from retain.stack import Stack
from retain.stack.process import ManagedProcess, wait_until
from retain.store.cassandra import CassandraStore
from retain.store.schema import migrate


class DemoError(RetainError):
    """A step of the demo failed; the message says which and where to look."""


@dataclass
class Demo:
    settings: Settings
    progress: Callable[[str], None] = print
    started: list[str] = field(default_factory=list)

    def _proc(self, name: str) -> ManagedProcess:
        return ManagedProcess.under(self.settings.home, name)

    def _step(self, message: str) -> float:
        self.progress(f"==> {message}")
        return time.monotonic()

    def run(self, dcs: int = 1, exit_when_done: bool = False, as_json: bool = False) -> dict:
        stack = Stack(self.settings)
        summary: dict = {}
        try:
            t0 = self._step(f"starting the local stack (Redis, Cassandra in {dcs} datacenter(s))")
            before = {s.name for s in stack.status() if s.state == "running"}
            statuses = stack.up(dcs, progress=lambda m: self.progress(f"    {m}"))
            self.started += [s.name for s in statuses if s.name not in before]
            summary["stack_up_seconds"] = round(time.monotonic() - t0, 1)

            self._step("applying the Cassandra schema")
            store = CassandraStore(self.settings)
            try:
                report = migrate(store, self.settings.cassandra_replication)
            finally:
                store.close()
            summary["migrations"] = report.to_dict()

            self._step("starting a Celery worker on every queue and the API (gunicorn)")
            worker = self._start_worker()
            api_url = self._start_api()

            self._step("sending a task through the broker to the worker and back")
            summary["round_trip"] = self._round_trip(worker)
            summary["services"] = [s.to_dict() for s in stack.status()]
            summary["api"] = {"url": api_url, "readyz": requests.get(f"{api_url}/readyz", timeout=5).json()}
            summary["logs"] = str(self.settings.home.resolve() / "logs")
        except BaseException:
            # A failed step, Ctrl-C or a bug: leave nothing behind that this run started.
            self._stop_started(stack)
            raise
        if as_json:
            click.echo(json.dumps(summary, indent=2, default=str))
        else:
            click.echo(self._text(summary))
        if exit_when_done:
            self._stop_started(stack)
        else:
            self._wait_for_interrupt(stack)
        return summary

    def _start_worker(self) -> ManagedProcess:
        proc = self._proc("demo-worker")
        if not proc.is_running():
            name = f"demo@{socket.gethostname()}"
            argv = [sys.executable, "-m", "retain", "worker", "--queues", "all", f"--hostname={name}"]
            proc.spawn(argv, env=self._env())
            self.started.append(proc.name)
        return proc

    def _start_api(self) -> str:
        proc = self._proc("demo-api")
        host, port = self.settings.api_host, self.settings.api_port
        url = f"http://{host}:{port}"
        if not proc.is_running():
            argv = [sys.executable, "-m", "retain", "api", "--host", host, "--port", str(port)]
            proc.spawn(argv, env=self._env())
            self.started.append(proc.name)

        def healthy() -> bool:
            if not proc.is_running():
                raise DemoError(f"the API exited during start; see {proc.log_file}:\n{proc.log_tail(15)}")
            try:
                return requests.get(f"{url}/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(healthy, 60, f"the API at {url}", on_timeout=lambda: proc.log_tail(15))
        return url

    def _round_trip(self, worker: ManagedProcess) -> dict:
        from retain.worker.app import app

        token = uuid.uuid4().hex
        started = time.monotonic()
        result = app.send_task("maintenance.probe", args=[token, 0])
        deadline = started + 90
        while not result.ready():
            if not worker.is_running():
                raise DemoError(f"the worker exited; see {worker.log_file}:\n{worker.log_tail(15)}")
            if time.monotonic() > deadline:
                raise DemoError(f"no worker completed task {result.id} within 90 s; see {worker.log_file}")
            time.sleep(0.2)
        value = result.get(timeout=5)
        return {"task": "maintenance.probe", "id": result.id, "result": value,
                "seconds": round(time.monotonic() - started, 2)}

    def _env(self) -> dict:
        return {**os.environ, **self.settings.to_env()}

    def _stop_started(self, stack: Stack) -> None:
        for name in reversed(self.started):
            if name.startswith("demo-"):
                self._proc(name).stop(60)
            else:
                stack.down(name)
            self.progress(f"    stopped {name}")
        self.started.clear()

    def _wait_for_interrupt(self, stack: Stack) -> None:
        # A shell starts background jobs with SIGINT ignored; Ctrl-C and a plain `kill` must both
        # still end the demo cleanly.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _interrupt)
        self.progress("running; press Ctrl-C to stop what the demo started")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            self.progress("stopping")
            self._stop_started(stack)


    def _text(self, summary: dict) -> str:
        rt = summary["round_trip"]
        lines = ["", "retain is running", "", "Services:"]
        for s in summary["services"]:
            lines.append(f"  {s['name']:16} {s['state']:9} {s['address']:22} log {s['log']}")
        lines += [
            f"  {'worker':16} running   queues ingest,profiles,train,maintenance",
            f"  {'api':16} running   {summary['api']['url']}",
            "",
            f"Stack up in {summary['stack_up_seconds']} s; schema {summary['migrations']['keyspace']}: "
            f"{len(summary['migrations']['applied'])} migration(s) applied now, "
            f"{len(summary['migrations']['already_applied'])} already.",
            f"Task round trip: {rt['task']} {rt['id']} ran on {rt['result']['host']} in {rt['seconds']} s.",
            f"API readiness: {summary['api']['readyz']['status']} ({summary['api']['url']}/readyz)",
            f"Logs: {summary['logs']}",
            "",
            "Try: curl " + summary["api"]["url"] + "/readyz   |   retain stack status",
        ]
        return "\n".join(lines)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
