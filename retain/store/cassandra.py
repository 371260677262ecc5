"""The Cassandra session: DC-aware, token-aware, prepared statements, consistency per operation.

Every process talks to the datacenter it is configured for (``cassandra_local_dc``) and to no other:
writes at LOCAL_QUORUM from the processing region, API reads at LOCAL_ONE in every region. A
region whose datacenter is down fails its health check instead of quietly reading across the ocean.
"""

from __future__ import annotations

import re
import struct
import threading
from typing import Any, Sequence

from cassandra import ConsistencyLevel, DriverException
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.protocol import ErrorMessage
from cassandra.policies import (ConstantSpeculativeExecutionPolicy, DCAwareRoundRobinPolicy,
                                ExponentialReconnectionPolicy, TokenAwarePolicy)
from cassandra.query import BoundStatement, PreparedStatement

from retain.config import Settings
from retain.errors import StoreUnavailable
from retain.handover import before_waiting

# What a failed request can raise: driver errors, server error messages (syntax, invalid
# request) and the absence of any live host.
CASSANDRA_ERRORS = (DriverException, ErrorMessage, NoHostAvailable)

WRITE = "write"
READ = "read"


def consistency(name: str) -> int:
    """The driver's constant for a consistency level name such as LOCAL_QUORUM."""
    return getattr(ConsistencyLevel, name)


def make_cluster(settings: Settings, local_dc: str | None = None) -> Cluster:
    """A Cluster whose execution profiles route only to ``local_dc`` (default: the configured one)."""
    dc = local_dc or settings.cassandra_local_dc

    def profile(level: str, speculative=None) -> ExecutionProfile:
        policy = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=dc, used_hosts_per_remote_dc=0))
        return ExecutionProfile(load_balancing_policy=policy, consistency_level=consistency(level),
                                request_timeout=settings.cassandra_request_timeout,
                                speculative_execution_policy=speculative)

    write = profile(settings.cassandra_write_consistency)
    # A read that a slow replica holds up is sent to the next one (statements marked idempotent only).
    read = profile(settings.cassandra_read_consistency, ConstantSpeculativeExecutionPolicy(
        settings.cassandra_speculative_delay, 2) if settings.cassandra_speculative_delay > 0 else None)
    return Cluster(
        contact_points=list(settings.cassandra_hosts),
        port=settings.cassandra_port,
        execution_profiles={EXEC_PROFILE_DEFAULT: write, WRITE: write, READ: read},
        connect_timeout=settings.cassandra_connect_timeout,
        protocol_version=5,
        # The driver's default backs off to 10 minutes between attempts to reach a node that was
        # down: a repaired node would then sit unused for minutes.
        reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.5, max_delay=10.0),
    )


_TABLE = re.compile(r"\b(FROM|INTO|UPDATE)\s+([A-Za-z_][A-Za-z0-9_]*)(?=[\s(]|$)", re.IGNORECASE)


def qualify(cql: str, keyspace: str) -> str:
    """Name the keyspace of every unqualified table in a statement.

    Statements in code name bare tables so one store can serve any keyspace (tests use their own);
    the server warns about prepared statements that lean on a session keyspace, and a fully
    qualified statement is unambiguous.
    """
    return _TABLE.sub(lambda m: f"{m.group(1)} {keyspace}.{m.group(2)}", cql)


def _component(text: str) -> bytes:
    """One text column of a composite partition key, serialized as Cassandra hashes it."""
    raw = text.encode()
    return struct.pack(">H", len(raw)) + raw + b"\x00"


class _Routed(BoundStatement):
    """A bound statement routed by a key given to it: the driver derives none for a statement whose
    partition key is not bound by equality (an IN), and its token-aware policy would then send it
    to any node."""

    @property
    def routing_key(self) -> bytes | None:
        return self._routing_key


class CassandraStore:
    """A lazily connected session with a cache of prepared statements.

    Connect after forking (gunicorn and Celery prefork workers): the driver's event loop threads do
    not survive a fork, which is why nothing connects at import or in an app factory.
    """

    def __init__(self, settings: Settings, local_dc: str | None = None, keyspace: str | None = None) -> None:
        self.settings = settings
        self.local_dc = local_dc or settings.cassandra_local_dc
        self.keyspace = keyspace if keyspace is not None else settings.cassandra_keyspace
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._prepared: dict[str, PreparedStatement] = {}
        self._lock = threading.Lock()

    @property
    def session(self) -> Session:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    cluster = make_cluster(self.settings, self.local_dc)
                    try:
                        session = cluster.connect()
                    except NoHostAvailable as exc:
                        cluster.shutdown()
                        raise StoreUnavailable(f"Cassandra unreachable at {self._where()}: {exc}") from exc
                    self._cluster, self._session = cluster, session
        return self._session

    def _where(self) -> str:
        hosts = ",".join(self.settings.cassandra_hosts)
        return f"{hosts}:{self.settings.cassandra_port} (local DC {self.local_dc})"

    def prepare(self, cql: str) -> PreparedStatement:
        """A prepared statement for ``cql`` in this store's keyspace, prepared once per process."""
        statement = self._prepared.get(cql)
        if statement is None:
            statement = self.session.prepare(qualify(cql, self.keyspace))
            self._prepared[cql] = statement
        return statement

    def by_replica(self, statement: PreparedStatement, key_prefix: Sequence[str], keys: Sequence[str],
                   *params: Any) -> list[BoundStatement]:
        """``statement`` (``... WHERE <prefix columns> = ? AND <last key column> IN ? ...``) bound once
        per group of ``keys`` whose partitions live on the same replicas, and routed to them.

        One request per group instead of one per partition: a request costs the driver and the
        node ~0.1 ms of CPU each, whatever it reads. Grouping by replica set keeps the read on nodes
        that hold the data (an IN over unrelated partitions would make the coordinator fetch them
        from other nodes); in a large cluster groups shrink towards one key each, never worse than
        reading them one by one.
        """
        metadata = self.session.cluster.metadata
        prefix = b"".join(_component(part) for part in key_prefix)
        groups: dict[tuple, tuple[bytes, list[str]]] = {}
        for key in keys:
            routing = prefix + _component(key) if key_prefix else key.encode()  # one column: not composite
            replicas = tuple(host.host_id for host in metadata.get_replicas(self.keyspace, routing))
            groups.setdefault(replicas, (routing, []))[1].append(key)
        return [_Routed(statement, routing_key=routing).bind((*key_prefix, members, *params))
                for routing, members in groups.values()]

    def write(self, cql: str, params: Sequence[Any] = ()) -> Any:
        before_waiting()
        return self.session.execute(self.prepare(cql), params, execution_profile=WRITE)

    def read(self, cql: str, params: Sequence[Any] = ()) -> Any:
        before_waiting()
        return self.session.execute(self.prepare(cql), params, execution_profile=READ)

    def execute(self, cql: str, params: Sequence[Any] | None = None, profile: str = WRITE,
                timeout: float | None = None) -> Any:
        """Run unprepared CQL (schema changes, one-off checks)."""
        kwargs = {"timeout": timeout} if timeout else {}
        before_waiting()
        return self.session.execute(cql, params, execution_profile=profile, **kwargs)

    def local_hosts_up(self) -> list[str]:
        """Addresses of the nodes of the local DC that the driver considers up."""
        metadata = self.session.cluster.metadata
        return [h.address for h in metadata.all_hosts() if h.datacenter == self.local_dc and h.is_up]

    def close(self) -> None:
        with self._lock:
            if self._cluster is not None:
                self._cluster.shutdown()
            self._cluster = self._session = None
            self._prepared.clear()
