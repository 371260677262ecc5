"""A service of the local stack: configure, start, wait for, check and stop one server process."""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

from retain.config import Settings
from retain.errors import StackError
from retain.stack.process import ManagedProcess, port_open, wait_until

MIN_FREE_DISK = 2 * 1024**3


@dataclass(frozen=True)
class ServiceStatus:
    """What `retain stack status` reports for one service."""

    name: str
    state: str  # running | unresponsive | stopped
    pid: int | None
    address: str
    log: str
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Launch:
    """How to run a service: its command line and environment."""

    argv: Sequence[str]
    env: Mapping[str, str] | None = None


class Service(ABC):
    """One server process of the local stack, started and stopped by retain alone."""

    name: str
    stop_timeout = 60.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        home = settings.home.resolve()
        self.home = home
        self.process = ManagedProcess.under(home, self.name)

    @property
    @abstractmethod
    def address(self) -> tuple[str, int]:
        """Host and port clients connect to."""

    def busy_ports(self) -> list[tuple[str, int]]:
        """Ports that must be free before this service starts."""
        return [self.address]

    @abstractmethod
    def prepare(self) -> Launch:
        """Write the service's configuration and return how to launch it."""

    @abstractmethod
    def ready(self) -> bool:
        """True once the service answers its clients."""

    def start(self) -> ServiceStatus:
        """Start the service unless it already runs; wait until it is ready."""
        if not self.process.is_running():
            self._check_can_start()
            launch = self.prepare()
            self.process.spawn(launch.argv, env=launch.env)
        wait_until(self._ready_or_dead, self.settings.stack_start_timeout, f"{self.name} to become ready",
                   on_timeout=self._log_hint)
        if not self.process.is_running():
            raise StackError(f"{self.name} exited during start ({self.process.exit_status()}).\n{self._log_hint()}")
        return self.status()

    def stop(self) -> bool:
        return self.process.stop(self.stop_timeout)

    def status(self) -> ServiceStatus:
        host, port = self.address
        pid = self.process.pid()
        where = f"{host}:{port}"
        log = str(self.process.log_file)
        if pid is None:
            foreign = port_open(host, port)
            detail = f"{where} is answered by a process retain did not start" if foreign else ""
            return ServiceStatus(self.name, "stopped", None, where, log, detail)
        if self.ready():
            return ServiceStatus(self.name, "running", pid, where, log)
        return ServiceStatus(self.name, "unresponsive", pid, where, log, f"process runs but {where} does not answer")

    def _ready_or_dead(self) -> bool:
        return not self.process.is_running() or self.ready()

    def _log_hint(self) -> str:
        tail = self.process.log_tail(25)
        return f"last lines of {self.process.log_file}:\n{tail}" if tail else f"(no output in {self.process.log_file})"

    def _check_can_start(self) -> None:
        for host, port in self.busy_ports():
            if port_open(host, port):
                raise StackError(
                    f"port busy: {host}:{port} is already in use by a process retain did not start, so "
                    f"{self.name} cannot start; stop that process or configure another address"
                )
        self.home.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.home).free
        if free < MIN_FREE_DISK:
            raise StackError(
                f"out of disk: {free // 1024**2} MiB free under {self.home}; {self.name} needs at least "
                f"{MIN_FREE_DISK // 1024**3} GiB"
            )

    def data_dir(self) -> Path:
        return self.home / "data" / self.name
