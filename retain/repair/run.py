"""``retain db repair``: every node's primary ranges, one node at a time, under the repair lease."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from retain.config import Settings
from retain.errors import RepairError
from retain.repair.lock import Holder, RepairLease
from retain.repair.ring import RingNode, ring_nodes
from retain.repair.runs import FAILED, OK, NodeRun, RunLog
from retain.stack.nodetool import Nodetool
from retain.store.cassandra import CassandraStore

FULL, INCREMENTAL = "full", "incremental"
KINDS = (FULL, INCREMENTAL)


@dataclass
class RepairReport:
    run_id: uuid.UUID
    keyspace: str
    kind: str
    nodes: list[NodeRun] = field(default_factory=list)
    abandoned: list[NodeRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(run.result == OK for run in self.nodes)

    def summary(self) -> str:
        failed = [run.node for run in self.nodes if run.result != OK]
        head = f"{self.kind} repair {self.run_id} of keyspace {self.keyspace}: {len(self.nodes)} node(s)"
        return head + (f", failed on {', '.join(failed)}" if failed else ", all ok")

    def to_dict(self) -> dict:
        return {"run_id": str(self.run_id), "keyspace": self.keyspace, "kind": self.kind, "ok": self.ok,
                "nodes": [run.to_dict() for run in self.nodes],
                "abandoned": [run.to_dict() for run in self.abandoned]}


def run_repair(store: CassandraStore, settings: Settings, kind: str = FULL, keyspace: str | None = None,
               progress: Callable[[str], None] = lambda _: None) -> RepairReport:
    """Repair ``keyspace`` (default: retain's own) node by node and record each node's run.

    Raises RepairLocked when another repair holds the lease; a node whose repair fails is recorded
    and the next node is repaired all the same (their ranges are independent), and the report says
    which failed. The runs and the lease live in the store's keyspace, whatever keyspace is repaired.
    """
    if kind not in KINDS:
        raise RepairError(f"unknown repair kind {kind!r}; one of {', '.join(KINDS)}")
    keyspace = keyspace or settings.cassandra_keyspace
    # Everything that can fail without touching the cluster fails before the lease is taken.
    nodetool = Nodetool(settings)
    nodes = ring_nodes(store, keyspace)
    runs = RunLog(store)
    run_id = uuid.uuid1()
    holder = Holder.this_process(str(run_id), keyspace, kind)
    report = RepairReport(run_id, keyspace, kind)
    with RepairLease(store, holder) as lease:
        report.abandoned = runs.abandon_unfinished(keyspace, run_id)
        for node in nodes:
            if lease.lost.is_set():
                raise RepairError(f"{report.summary()}; stopped before {node.address}: the repair lease was "
                                  "lost (Cassandra did not answer its renewals, or another run took it)")
            progress(f"repairing {node.address} ({node.dc}): {len(node.ranges)} primary range(s), {kind}")
            run = _repair_node(nodetool, runs, settings, node, run_id, keyspace, kind, holder)
            progress(f"  {run.result} in {run.seconds:.1f}s" + ("" if run.result == OK else f"\n{run.output}"))
            report.nodes.append(run)
    return report


def _repair_node(nodetool: Nodetool, runs: RunLog, settings: Settings, node: RingNode, run_id: uuid.UUID,
                 keyspace: str, kind: str, holder: Holder) -> NodeRun:
    run = NodeRun(run_id, keyspace, node.address, node.host_id, node.dc, kind, node.ranges,
                  datetime.now(timezone.utc), holder=f"{holder.host}:{holder.pid}")
    runs.start(run)
    try:
        result = nodetool.repair(node.address, keyspace, full=kind == FULL,
                                 timeout=settings.repair_node_timeout_seconds)
    except BaseException as exc:  # Ctrl-C, Celery's soft time limit: the row says how the run ended
        runs.finish(run.finished(FAILED, f"interrupted: {exc!r}"))
        raise
    done = run.finished(OK if result.ok else FAILED, result.output)
    runs.finish(done)
    return done
