"""The local stack as a whole: which services exist, in which order they start and stop."""

from __future__ import annotations

from typing import Callable

from retain.config import Settings
from retain.errors import StackError
from retain.stack.cassandra import CassandraNode
from retain.stack.redis import RedisService
from retain.stack.jars import cassandra_lib
from retain.stack.java import find_java
from retain.stack.process import wait_until
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
        if any(not node.process.is_running() for node in self.nodes[:dcs]):
            # Fail on a missing Java or unresolvable jars before starting anything.
            self.fetch(progress)
        statuses = []
        for svc in [self.redis, *self.nodes[:dcs]]:
            progress(f"{svc.name}: {'already running' if svc.process.is_running() else 'starting'}")
            statuses.append(svc.start())
            progress(f"{svc.name}: ready at {statuses[-1].address}")
        self._wait_for_ring(progress)
        return statuses

    def _wait_for_ring(self, progress: Progress) -> None:
        """Wait until every running node knows every other: a keyspace naming a datacenter its
        coordinator has not heard of yet is rejected."""
        running = [n for n in self.nodes if n.process.is_running()]
        if len(running) < 2:
            return
        progress("cassandra: waiting for the nodes to see each other")
        wanted = {n.ip for n in running}
        wait_until(lambda: all(n.peers() >= wanted - {n.ip} for n in running),
                   self.settings.stack_start_timeout, "the Cassandra nodes to see each other (gossip)")

    def fetch(self, progress: Progress = _quiet) -> dict[str, str]:
        """Find Java and resolve Cassandra's jars (once; then cached), without starting anything."""
        java = find_java(self.settings.java_home)
        progress(f"cassandra: jars of cassandra-all {self.settings.cassandra_version} (resolved once, then cached)")
        lib = cassandra_lib(self.settings.cache_dir, self.settings.cassandra_version)
        return {"java": java, "cassandra_lib": str(lib), "cassandra_version": self.settings.cassandra_version}

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
