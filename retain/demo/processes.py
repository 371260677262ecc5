"""The processes `retain demo` runs beside the stack, as a production deployment would split them:
an ingest worker, a training worker, beat, the API, Flower and the autoscaler (which starts and
stops the profile workers itself). Each is a managed process (pid file and log under RETAIN_HOME);
the demo checks they are all alive at every step, so a process that dies is reported by name with
the end of its log instead of leaving the demo waiting.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from retain.autoscaler.local import LocalFleet
from retain.config import Settings
from retain.errors import RetainError
from retain.stack.process import ManagedProcess


class DemoError(RetainError):
    """A step of the demo failed; the message says which and where to look."""


@dataclass(frozen=True)
class Role:
    name: str      # managed process name, under RETAIN_HOME
    label: str     # what the demo calls it in messages
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()  # settings of this process alone (its metrics port)


def _free_port(block: int = 1) -> int:
    """A port such that it and the ``block - 1`` after it can be bound now."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = sock.getsockname()[1]
        if base + block <= 65535 and all(_bindable(base + i) for i in range(1, block)):
            return base
    raise DemoError(f"found no {block} free consecutive ports on 127.0.0.1")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def fleet_size(settings: Settings) -> int:
    """The most profile workers the autoscaler may start (each needs its own exporter port)."""
    return settings.autoscaler_max_workers.get("profiles", 8)


def metrics_ports(settings: Settings) -> dict[str, int]:
    """Exporter ports: from the settings when set, else free ones (each worker process needs its own)."""
    return {"demo-worker": _free_port(), "demo-trainer": _free_port(),
            "fleet": settings.worker_metrics_port or _free_port(fleet_size(settings)),
            "demo-autoscaler": settings.autoscaler_metrics_port or _free_port()}


def roles(settings: Settings, ports: dict[str, int] | None = None) -> list[Role]:
    host = socket.gethostname()
    retain = (sys.executable, "-m", "retain")
    ports = ports or {}

    def exporter(name: str, variable: str = "RETAIN_WORKER_METRICS_PORT") -> tuple[tuple[str, str], ...]:
        return ((variable, str(ports[name])),) if name in ports else ()

    return [
        Role("demo-worker", "ingest worker",
             (*retain, "worker", "--queues", "ingest,maintenance", f"--hostname=demo-ingest@{host}"),
             exporter("demo-worker")),
        # Training runs Spark in the task's process: one at a time, apart from ingestion.
        Role("demo-trainer", "training worker",
             (*retain, "worker", "--queues", "train", "--concurrency", "1", f"--hostname=demo-train@{host}"),
             exporter("demo-trainer")),
        Role("demo-beat", "beat", (*retain, "beat")),
        Role("demo-api", "API", (*retain, "api", "--host", settings.api_host, "--port", str(settings.api_port))),
        Role("demo-flower", "Flower", (*retain, "flower", "--host", settings.flower_host,
                                      "--port", str(settings.flower_port))),
        # The autoscaler hands the fleet's base port to the profile workers it starts (slot i: base + i).
        Role("demo-autoscaler", "autoscaler", (*retain, "autoscaler", "run"),
             exporter("demo-autoscaler", "RETAIN_AUTOSCALER_METRICS_PORT") + exporter("fleet")),
    ]


@dataclass
class DemoProcesses:
    settings: Settings
    started: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ports = metrics_ports(self.settings)
        self.roles = {role.name: role for role in roles(self.settings, self.ports)}

    def metrics_urls(self) -> dict[str, str]:
        host = self.settings.metrics_host if self.settings.metrics_host != "0.0.0.0" else "127.0.0.1"
        urls = {self.roles[name].label: f"http://{host}:{port}/metrics" for name, port in self.ports.items()
                if name in self.roles}
        base = self.ports["fleet"]
        last = base + fleet_size(self.settings) - 1
        urls["profile workers"] = f"http://{host}:{base}/metrics .. :{last} (one per worker)"
        return urls

    def proc(self, name: str) -> ManagedProcess:
        return ManagedProcess.under(self.settings.home, name)

    def fleet(self) -> LocalFleet:
        return LocalFleet(self.settings, "profiles", ("profiles",))

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIN_")}
        env.update(self.settings.to_env())
        for role in self.roles.values():
            proc = self.proc(role.name)
            if not proc.is_running():
                proc.spawn(list(role.argv), env={**env, **dict(role.env)})
                self.started.append(role.name)

    def check(self, during: str) -> None:
        """Raise DemoError naming the first of the demo's processes that is no longer running."""
        for role in self.roles.values():
            proc = self.proc(role.name)
            if not proc.is_running():
                status = proc.exit_status() or "is not running"
                raise DemoError(f"the {role.label} ({role.name}) {status} during {during}; its log "
                                f"{proc.log_file} ends with:\n{proc.log_tail(12)}\nrun `retain demo` again: it "
                                "starts what is missing and reuses what is there")

    def wait(self, ready: Callable[[], object], timeout: float, what: str, during: str,
             tick: Callable[[float], None] | None = None, every: float = 10.0) -> object:
        """Poll ``ready`` until truthy, checking the processes; ``tick(elapsed)`` about every ``every`` s."""
        began = time.monotonic()
        next_tick = began + every
        while True:
            self.check(during)
            try:
                value = ready()
            except (requests.RequestException, OSError, RetainError):
                value = None  # not up yet
            if value:
                return value
            now = time.monotonic()
            if now - began > timeout:
                raise DemoError(f"{what} did not happen within {timeout:.0f} s (during {during}); logs are in "
                                f"{self.settings.home.resolve() / 'logs'}")
            if tick and now >= next_tick:
                tick(now - began)
                next_tick = now + every
            time.sleep(0.25)

    def stop(self, progress: Callable[[str], None]) -> None:
        """Stop what the demo started: the autoscaler first (so it starts nothing more), then its fleet."""
        order = sorted(self.started, key=lambda name: name != "demo-autoscaler")
        for name in order:
            if self.proc(name).stop(60):
                progress(f"    stopped {self.roles[name].label}")
            if name == "demo-autoscaler":
                stopped = self.fleet().stop_all(60)
                if stopped:
                    progress(f"    stopped {stopped} profile worker(s)")
        self.started.clear()
