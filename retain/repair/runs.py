"""The record of repairs: every node's run, and each node's last success, per keyspace."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import Any

from retain.store.cassandra import CassandraStore

RUNNING, OK, FAILED, ABANDONED = "running", "ok", "failed", "abandoned"
# How far back a new run looks for rows a dead holder left `running`.
_ABANDON_SCAN = 200


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


@dataclass(frozen=True)
class NodeRun:
    """One node's repair within a run: which ranges, when, how it ended."""

    run_id: uuid.UUID
    keyspace: str
    node: str
    host_id: uuid.UUID
    dc: str
    kind: str
    ranges: tuple[str, ...]
    started_at: datetime
    ended_at: datetime | None = None
    result: str = RUNNING
    output: str = ""
    holder: str = ""

    def finished(self, result: str, output: str, ended_at: datetime | None = None) -> "NodeRun":
        return replace(self, result=result, output=output, ended_at=ended_at or datetime.now(timezone.utc))

    @property
    def seconds(self) -> float | None:
        return (self.ended_at - self.started_at).total_seconds() if self.ended_at else None

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(run_id=str(self.run_id), host_id=str(self.host_id), ranges=list(self.ranges),
                   seconds=self.seconds)
        return out

    @classmethod
    def from_row(cls, row: Any) -> "NodeRun":
        return cls(row.run_id, row.keyspace_name, row.node, row.host_id, row.dc or "", row.kind or "",
                   tuple(row.ranges or ()), _utc(row.started_at), _utc(row.ended_at), row.result or RUNNING,
                   row.output or "", row.holder or "")


@dataclass(frozen=True)
class LastSuccess:
    """A node's most recent successful repair of a keyspace."""

    host_id: uuid.UUID
    node: str
    dc: str
    run_id: uuid.UUID
    kind: str
    started_at: datetime
    ended_at: datetime | None

    def to_dict(self) -> dict:
        return {"run_id": str(self.run_id), "kind": self.kind, "started_at": self.started_at,
                "ended_at": self.ended_at}


_RUN_COLUMNS = "keyspace_name, run_id, node, host_id, dc, kind, ranges, started_at, ended_at, result, output, holder"


class RunLog:
    """Reads and writes ``repair_runs`` and ``repair_last_success`` in the store's keyspace."""

    def __init__(self, store: CassandraStore) -> None:
        self.store = store

    def start(self, run: NodeRun) -> None:
        self._write(run)

    def finish(self, run: NodeRun) -> None:
        self._write(run)
        if run.result == OK:
            self.store.write("INSERT INTO repair_last_success (keyspace_name, host_id, node, dc, run_id, kind, "
                             "started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (run.keyspace, run.host_id, run.node, run.dc, run.run_id, run.kind, run.started_at,
                              run.ended_at))

    def _write(self, run: NodeRun) -> None:
        self.store.write(f"INSERT INTO repair_runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (run.keyspace, run.run_id, run.node, run.host_id, run.dc, run.kind, list(run.ranges),
                          run.started_at, run.ended_at, run.result, run.output, run.holder))

    def runs(self, keyspace: str, limit: int = 100) -> list[NodeRun]:
        """The most recent node runs of ``keyspace``, newest run first."""
        rows = self.store.read(f"SELECT {_RUN_COLUMNS} FROM repair_runs WHERE keyspace_name = ? LIMIT ?",
                               (keyspace, limit))
        return [NodeRun.from_row(row) for row in rows]

    def last_successes(self, keyspace: str) -> dict[uuid.UUID, LastSuccess]:
        rows = self.store.read("SELECT host_id, node, dc, run_id, kind, started_at, ended_at FROM repair_last_success "
                               "WHERE keyspace_name = ?", (keyspace,))
        return {row.host_id: LastSuccess(row.host_id, row.node, row.dc or "", row.run_id, row.kind or "",
                                         _utc(row.started_at), _utc(row.ended_at)) for row in rows}

    def abandon_unfinished(self, keyspace: str, current_run: uuid.UUID) -> list[NodeRun]:
        """Mark rows still `running` from earlier runs as abandoned.

        Only the lease holder calls this, and the lease is exclusive: a row another run left
        `running` belongs to a holder that died (or lost its lease) before recording how it ended.
        """
        stale = [run for run in self.runs(keyspace, _ABANDON_SCAN) if run.result == RUNNING and run.run_id != current_run]
        for run in stale:
            self.finish(run.finished(ABANDONED, (run.output + "\nthe process running this repair stopped before "
                                                 "recording its end").strip()))
        return stale
