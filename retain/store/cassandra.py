"""The Cassandra session: DC-aware, token-aware, prepared statements, consistency per operation.

Every process talks to the datacenter it is configured for (``cassandra_local_dc``) and to no other:
writes at LOCAL_QUORUM from the processing region, API reads at LOCAL_ONE in every region. A
region whose datacenter is down fails its health check instead of quietly reading across the ocean.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Sequence

from cassandra import ConsistencyLevel, DriverException
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.protocol import ErrorMessage
from cassandra.policies import (ConstantSpeculativeExecutionPolicy, DCAwareRoundRobinPolicy,
                                ExponentialReconnectionPolicy, TokenAwarePolicy)
from cassandra.query import PreparedStatement

from retain.config import Settings
from retain.errors import StoreUnavailable

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

    def write(self, cql: str, params: Sequence[Any] = ()) -> Any:
        return self.session.execute(self.prepare(cql), params, execution_profile=WRITE)

    def read(self, cql: str, params: Sequence[Any] = ()) -> Any:
        return self.session.execute(self.prepare(cql), params, execution_profile=READ)

    def execute(self, cql: str, params: Sequence[Any] | None = None, profile: str = WRITE,
                timeout: float | None = None) -> Any:
        """Run unprepared CQL (schema changes, one-off checks)."""
        kwargs = {"timeout": timeout} if timeout else {}
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
