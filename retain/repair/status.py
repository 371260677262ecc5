"""``retain db repair status``: each node's last successful repair against gc_grace_seconds.

A tombstone older than gc_grace_seconds may be purged; a replica that missed the delete and was not
repaired within that time brings the deleted row back. The age of a node's repair counts from when
it started (what it repaired is what existed then).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from retain.config import Settings
from retain.errors import RepairError
from retain.repair.lock import Holder, current_holder
from retain.repair.ring import gc_grace_seconds, ring_nodes
from retain.repair.runs import NodeRun, RunLog
from retain.store.cassandra import CASSANDRA_ERRORS, CassandraStore

_RECENT_RUNS = 500


@dataclass
class NodeStatus:
    node: str
    host_id: str
    dc: str
    ranges: int
    last_success: dict | None
    age_seconds: float | None
    stale: bool
    last_run: dict | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class RepairStatus:
    keyspace: str
    gc_grace_seconds: int | None
    nodes: list[NodeStatus] = field(default_factory=list)
    running: Holder | None = None

    @property
    def stale(self) -> list[NodeStatus]:
        return [node for node in self.nodes if node.stale]

    def to_dict(self) -> dict:
        return {"keyspace": self.keyspace, "gc_grace_seconds": self.gc_grace_seconds,
                "stale": [node.node for node in self.stale], "nodes": [node.to_dict() for node in self.nodes],
                "running": self.running.to_dict() if self.running else None}

    def text(self) -> str:
        grace = f"{self.gc_grace_seconds}s" if self.gc_grace_seconds else "none (no table needs repair in time)"
        lines = [f"keyspace {self.keyspace}: smallest gc_grace_seconds {grace}"]
        if self.running:
            lines.append(f"running now: {self.running.describe()}")
        lines.append(f"{'NODE':16} {'DC':6} {'LAST SUCCESS (started)':24} {'AGE':>10}  LAST RUN")
        for node in self.nodes:
            started = node.last_success["started_at"].strftime("%Y-%m-%d %H:%M:%SZ") if node.last_success else "never"
            age = _age(node.age_seconds) if node.age_seconds is not None else "-"
            last = f"{node.last_run['result']} ({node.last_run['kind']})" if node.last_run else "-"
            lines.append(f"{node.node:16} {node.dc:6} {started:24} {age:>10}  {last}")
        for node in self.stale:
            why = "never repaired" if node.last_success is None else f"last repaired {_age(node.age_seconds)} ago"
            lines.append(f"WARNING: {node.node} ({node.dc}) {why}, longer than gc_grace_seconds "
                         f"({self.gc_grace_seconds}s): deleted data may come back; run `retain db repair`")
        return "\n".join(lines)


def _age(seconds: float | None) -> str:
    seconds = seconds or 0.0
    if seconds >= 86400:
        return f"{seconds / 86400:.1f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 60:.0f}m" if seconds >= 60 else f"{seconds:.0f}s"


def repair_status(store: CassandraStore, settings: Settings, keyspace: str | None = None,
                  now: datetime | None = None) -> RepairStatus:
    """Every node holding primary ranges of ``keyspace`` now, with its last success and last run."""
    keyspace = keyspace or settings.cassandra_keyspace
    now = now or datetime.now(timezone.utc)
    runs = RunLog(store)
    grace = gc_grace_seconds(store, keyspace)
    try:
        successes = runs.last_successes(keyspace)
        recent = runs.runs(keyspace, _RECENT_RUNS)
        running = current_holder(store)
    except CASSANDRA_ERRORS as exc:
        raise RepairError(f"could not read the repair records in {store.keyspace} (is it migrated? "
                          f"`retain db migrate`): {exc}") from exc
    latest: dict[str, NodeRun] = {}
    for run in recent:
        latest.setdefault(str(run.host_id), run)
    status = RepairStatus(keyspace, grace, running=running)
    for node in ring_nodes(store, keyspace):
        success = successes.get(node.host_id)
        age = (now - success.started_at).total_seconds() if success else None
        stale = grace is not None and (age is None or age > grace)
        last = latest.get(str(node.host_id))
        status.nodes.append(NodeStatus(
            node.address, str(node.host_id), node.dc, len(node.ranges), success.to_dict() if success else None, age,
            stale, {"run_id": str(last.run_id), "result": last.result, "kind": last.kind,
                    "started_at": last.started_at, "ended_at": last.ended_at} if last else None))
    return status
