"""The local stack as a whole: which services exist, in which order they start and stop."""

from __future__ import annotations

from typing import Callable

from retain.config import Settings
from retain.errors import StackError
from retain.stack.cassandra import CassandraNode
from retain.stack.redis import RedisService
from retain.stack.service import Service, ServiceStatus

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class Stack:
    """Redis plus one Cassandra node per datacenter, under ``settings.home``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = RedisService(settings)
        self.nodes = [CassandraNode(settings, i + 1) for i in range(len(settings.stack_cassandra_addresses))]

    def _known_nodes(self) -> list[CassandraNode]:
        """Node 1, and every other node that was ever configured or is running."""
        return [n for n in self.nodes
                if n.index == 1 or n.process.is_running() or (n.home / "conf" / n.name).exists()]

    def services(self) -> list[Service]:
        return [self.redis, *self._known_nodes()]

    def service(self, name: str) -> Service:
        aliases = {"cassandra": "cassandra-dc1"}
        name = aliases.get(name, name)
        for svc in [self.redis, *self.nodes]:
            if svc.name == name:
                return svc
        names = ", ".join(s.name for s in [self.redis, *self.nodes])
        raise StackError(f"unknown service {name!r}; services are {names}")

    def up(self, dcs: int = 1, progress: Progress = _quiet) -> list[ServiceStatus]:
        """Start Redis and the first ``dcs`` Cassandra nodes; those already running are kept."""
        if not 1 <= dcs <= len(self.nodes):
            raise StackError(f"--dcs must be between 1 and {len(self.nodes)} (one address per node in "
                             "RETAIN_STACK_CASSANDRA_ADDRESSES)")
        statuses = []
        for svc in [self.redis, *self.nodes[:dcs]]:
            progress(f"{svc.name}: {'already running' if svc.process.is_running() else 'starting'}")
            statuses.append(svc.start())
            progress(f"{svc.name}: ready at {statuses[-1].address}")
        return statuses

    def down(self, only: str | None = None, progress: Progress = _quiet) -> list[str]:
        """Stop what retain started (Cassandra first, Redis last); the names of what was stopped."""
        targets = [self.service(only)] if only else list(reversed(self.services()))
        stopped = []
        for svc in targets:
            if svc.process.is_running():
                progress(f"{svc.name}: stopping")
            if svc.stop():
                stopped.append(svc.name)
        return stopped

    def status(self) -> list[ServiceStatus]:
        return [svc.status() for svc in self.services()]

    def logs(self, name: str, lines: int = 100) -> str:
        return self.service(name).process.log_tail(lines)
