"""The cluster-wide repair lease: a row of ``repair_lock`` taken with a lightweight transaction.

Why Cassandra and not Redis: each region runs its own Redis, so a Redis lock would let the daily
repair of two regions overlap; the lease lives next to what it protects, in the keyspace every
region shares. It is written at SERIAL (Paxos across all datacenters, not LOCAL_SERIAL), so two
regions cannot both take it. SERIAL needs a quorum of all replicas, and so does a repair (it needs
every replica up): when the lease cannot be taken, the repair could not have run either.

The row has a TTL and a thread renews it while the repair runs, so a holder killed outright (kill -9,
a lost machine) blocks the next repair for at most LEASE_TTL seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from cassandra import ConsistencyLevel

from retain.errors import RepairError, RepairLocked
from retain.store.cassandra import CASSANDRA_ERRORS, CassandraStore

log = logging.getLogger(__name__)

LEASE_TTL = 120
RENEW_EVERY = LEASE_TTL / 4
LOCK_NAME = "repair"
_COLUMNS = "owner, host, pid, keyspace_name, kind, started_at, renewed_at"


@dataclass(frozen=True)
class Holder:
    """Who holds (or wants) the lease: a run of one process on one machine."""

    owner: str
    host: str
    pid: int
    keyspace: str
    kind: str
    started_at: datetime
    renewed_at: datetime | None = None

    @classmethod
    def this_process(cls, owner: str, keyspace: str, kind: str) -> "Holder":
        return cls(owner, socket.gethostname(), os.getpid(), keyspace, kind, datetime.now(timezone.utc))

    @classmethod
    def from_row(cls, row: Any) -> "Holder":
        return cls(row.owner, row.host, row.pid, row.keyspace_name, row.kind, _utc(row.started_at),
                   _utc(row.renewed_at))

    def describe(self) -> str:
        started = self.started_at.strftime("%Y-%m-%d %H:%M:%SZ") if self.started_at else "?"
        return (f"run {self.owner} ({self.kind} repair of keyspace {self.keyspace}) on host {self.host}, "
                f"pid {self.pid}, started {started}")

    def to_dict(self) -> dict:
        return {"run_id": self.owner, "host": self.host, "pid": self.pid, "keyspace": self.keyspace,
                "kind": self.kind, "started_at": self.started_at, "renewed_at": self.renewed_at}


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


class RepairLease:
    """Exclusive right to repair, for one run; a context manager that takes, renews and releases it.

    ``lost`` is set when renewals stop succeeding (another run took the lease after it expired, or
    Cassandra did not answer for a whole TTL): the holder must then stop before its next node.
    """

    def __init__(self, store: CassandraStore, holder: Holder, ttl: int = LEASE_TTL) -> None:
        self.store = store
        self.holder = holder
        self.ttl = ttl
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _lwt(self, cql: str, params: Sequence[Any]) -> Any:
        statement = self.store.prepare(cql).bind(params)
        statement.consistency_level = ConsistencyLevel.QUORUM
        statement.serial_consistency_level = ConsistencyLevel.SERIAL
        return self.store.session.execute(statement).one()

    def _values(self) -> tuple:
        h = self.holder
        return (h.owner, h.host, h.pid, h.keyspace, h.kind, h.started_at, datetime.now(timezone.utc))

    def acquire(self) -> None:
        """Take the lease, or raise RepairLocked naming the run that holds it."""
        try:
            row = self._lwt(f"INSERT INTO repair_lock (name, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                            f"IF NOT EXISTS USING TTL {self.ttl}", (LOCK_NAME, *self._values()))
        except CASSANDRA_ERRORS as exc:
            raise RepairError(f"could not take the repair lease in {self.store.keyspace} (is it migrated? "
                              f"`retain db migrate`): {exc}") from exc
        if not row.applied:
            raise RepairLocked(f"another repair is running: {Holder.from_row(row).describe()}; refusing to "
                               f"start a second one (its lease expires {self.ttl}s after the holder stops "
                               "renewing it)")
        self._thread = threading.Thread(target=self._renew_loop, name="repair-lease", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        last_ok = time.monotonic()
        while not self._stop.wait(min(RENEW_EVERY, self.ttl / 4)):
            try:
                # Every column is written again: the row lives as long as its newest cells.
                row = self._lwt(f"UPDATE repair_lock USING TTL {self.ttl} SET owner = ?, host = ?, pid = ?, "
                                "keyspace_name = ?, kind = ?, started_at = ?, renewed_at = ? "
                                "WHERE name = ? IF owner = ?", (*self._values(), LOCK_NAME, self.holder.owner))
            except CASSANDRA_ERRORS as exc:
                log.warning("could not renew the repair lease: %s", exc)
                if time.monotonic() - last_ok > self.ttl:
                    self.lost.set()
                    return
                continue
            if not row.applied:
                # The answer carries only the condition's column: who owns the lease now, if anyone.
                owner = getattr(row, "owner", None)
                log.error("the repair lease was lost: %s", f"run {owner} holds it" if owner else "it expired")
                self.lost.set()
                return
            last_ok = time.monotonic()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.lost.is_set():
            return
        try:
            self._lwt("DELETE FROM repair_lock WHERE name = ? IF owner = ?", (LOCK_NAME, self.holder.owner))
        except CASSANDRA_ERRORS as exc:
            # Not worth hiding the run's own outcome for: the row expires within the TTL.
            log.warning("could not release the repair lease (it expires within %ss): %s", self.ttl, exc)

    def __enter__(self) -> "RepairLease":
        self.acquire()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


def current_holder(store: CassandraStore) -> Holder | None:
    """The run holding the repair lease now, read at SERIAL; None when no repair runs."""
    statement = store.prepare(f"SELECT name, {_COLUMNS} FROM repair_lock WHERE name = ?").bind((LOCK_NAME,))
    statement.consistency_level = ConsistencyLevel.SERIAL
    row = store.session.execute(statement).one()
    return Holder.from_row(row) if row is not None and row.owner else None
