"""Schema migrations: ordered CQL files applied once each, recorded in ``schema_migrations``.

Files are named ``NNNN_description.cql`` and hold CQL for the keyspace they run in, without naming
it, so tests can migrate a keyspace of their own. The keyspace itself, with its per-datacenter
replication, comes from the settings; when the settings add a datacenter, ``migrate`` alters the
replication and says that a repair must follow.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from retain.errors import MigrationError
from retain.store.cassandra import CASSANDRA_ERRORS, CassandraStore

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.cql$")
_LOCK_TTL = 600
# How long a migration waits, once at its end, for every node to report the same schema.
AGREEMENT_SECONDS = 60.0


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def cql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.cql.encode()).hexdigest()[:16]

    def statements(self) -> list[str]:
        return split_statements(self.cql)


@dataclass
class MigrationReport:
    keyspace: str
    applied: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    replication_changed: bool = False
    schema_agreed: bool = True  # every node up reported the same schema version at the end

    def to_dict(self) -> dict:
        return {"keyspace": self.keyspace, "applied": self.applied, "already_applied": self.already,
                "replication_changed": self.replication_changed, "schema_agreed": self.schema_agreed}


class _SchemaChanges:
    """The schema statements of one migrate run: all through one coordinator, and the cluster's
    agreement awaited at the end (and once before the keyspace-bound session connects), not after
    each statement.

    The driver otherwise waits after each schema change until every node reports the same schema
    version: about a second per statement with two datacenters, most of a migration's time (15 s
    of 17 for a new keyspace). Through one node, each statement finds the ones before it applied
    there (sent to another node, it could run before that node heard of the table it names), so
    the one wait at the end is enough. With no node of the local datacenter up, the driver picks
    one per statement and waits after each, as before.
    """

    def __init__(self, store: CassandraStore) -> None:
        self.store = store
        self.cluster = store.session.cluster
        self.host = next((h for h in self.cluster.metadata.all_hosts() if h.is_up and h.datacenter == store.local_dc),
                         None)
        self.saved_wait = self.cluster.max_schema_agreement_wait

    def __enter__(self) -> "_SchemaChanges":
        if self.host is not None:
            self.cluster.max_schema_agreement_wait = 0
        return self

    def __exit__(self, *_: object) -> None:
        self.cluster.max_schema_agreement_wait = self.saved_wait

    def execute(self, cql: str, params: tuple | None = None, session=None):
        return (session or self.store.session).execute(cql, params, host=self.host)

    def agreed(self, refresh: bool = True, seconds: float = AGREEMENT_SECONDS) -> bool:
        """Wait for every node up to report the same schema; then, with ``refresh``, the driver's
        metadata (token-aware routing needs the keyspace's) is read again, as the driver does after
        each change."""
        agreed = bool(self.cluster.control_connection.wait_for_schema_agreement(wait_time=seconds))
        if agreed and refresh:
            self.cluster.refresh_keyspace_metadata(self.store.keyspace)
        return agreed


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.cql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_description.cql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path.name}: version {version} is also used by {found[version].path.name}")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


def split_statements(cql: str) -> list[str]:
    """Statements of a CQL script: split on ';' outside quotes, comments removed."""
    statements, current, quote = [], [], ""
    for line in cql.splitlines():
        if not quote and line.strip().startswith(("--", "//")):
            continue
        for char in line + "\n":
            if quote:
                quote = "" if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char == ";":
                statements.append("".join(current).strip())
                current = []
                continue
            current.append(char)
    statements.append("".join(current).strip())
    return [s for s in statements if s]


def _replication_cql(replication: dict[str, int]) -> str:
    pairs = ", ".join(f"'{dc}': {rf}" for dc, rf in sorted(replication.items()))
    return f"{{'class': 'NetworkTopologyStrategy', {pairs}}}"


def ensure_keyspace(store: CassandraStore, replication: dict[str, int], changes: _SchemaChanges) -> bool:
    """Create the keyspace, or align its replication with ``replication``; True if it changed."""
    ks = store.keyspace
    row = store.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", (ks,)).one()
    wanted = {dc: str(rf) for dc, rf in replication.items()}
    if row is None:
        changes.execute(f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {_replication_cql(replication)}")
        return False
    current = {k: v for k, v in row.replication.items() if k != "class"}
    if row.replication.get("class", "").endswith("NetworkTopologyStrategy") and current == wanted:
        return False
    changes.execute(f"ALTER KEYSPACE {ks} WITH replication = {_replication_cql(replication)}")
    return True


def migrate(store: CassandraStore, replication: dict[str, int], directory: Path = MIGRATIONS_DIR) -> MigrationReport:
    """Apply every migration of ``directory`` not yet recorded in the store's keyspace."""
    migrations = load_migrations(directory)
    report = MigrationReport(store.keyspace)
    with _SchemaChanges(store) as changes:
        try:
            report.replication_changed = ensure_keyspace(store, replication, changes)
            ks = store.keyspace
            changes.execute(f"CREATE TABLE IF NOT EXISTS {ks}.schema_migrations (version int PRIMARY KEY, "
                            "name text, checksum text, applied_at timestamp)")
            changes.execute(f"CREATE TABLE IF NOT EXISTS {ks}.schema_lock (name text PRIMARY KEY, owner text)")
        except CASSANDRA_ERRORS as exc:
            raise MigrationError(f"could not prepare keyspace {store.keyspace}: {exc}") from exc
        # The bound session of _apply connects to every node of the local datacenter: each must know
        # the keyspace first (immediate when they agree already); the metadata is read at the end.
        changes.agreed(refresh=False)
        owner = uuid.uuid4().hex
        _acquire(store, owner, changes)
        try:
            rows = changes.execute(f"SELECT version, name, checksum FROM {ks}.schema_migrations")
            done = {row.version: row for row in rows}
            for migration in migrations:
                label = migration.path.name
                if migration.version in done:
                    if done[migration.version].checksum != migration.checksum:
                        raise MigrationError(f"{label}: changed after it was applied (checksum differs); "
                                             "add a new migration instead of editing an applied one")
                    report.already.append(label)
                    continue
                _apply(store, migration, changes)
                report.applied.append(label)
        finally:
            changes.execute(f"DELETE FROM {ks}.schema_lock WHERE name = 'migrate' IF owner = %s", (owner,))
        report.schema_agreed = changes.agreed()
    return report


def _acquire(store: CassandraStore, owner: str, changes: _SchemaChanges) -> None:
    # A lightweight transaction so two `retain db migrate` at once cannot interleave statements.
    row = changes.execute(f"INSERT INTO {store.keyspace}.schema_lock (name, owner) VALUES ('migrate', %s) "
                          f"IF NOT EXISTS USING TTL {_LOCK_TTL}", (owner,)).one()
    if not row.applied:
        raise MigrationError(f"another migration holds the lock on {store.keyspace} (owner {row.owner}); "
                             f"retry when it finishes or after {_LOCK_TTL}s")


def _apply(store: CassandraStore, migration: Migration, changes: _SchemaChanges) -> None:
    statements = migration.statements()
    # Migration files do not name their keyspace, so they run in a session bound to it; a session
    # of its own, because a bound keyspace makes the server warn about the main session's
    # prepared statements.
    session = store.session.cluster.connect(store.keyspace)
    try:
        for number, statement in enumerate(statements, 1):
            try:
                changes.execute(statement, session=session)
            except CASSANDRA_ERRORS as exc:
                raise MigrationError(f"{migration.path.name}: statement {number} of {len(statements)} failed: "
                                     f"{exc}\n  {statement[:300]}") from exc
    finally:
        session.shutdown()
    changes.execute(
        f"INSERT INTO {store.keyspace}.schema_migrations (version, name, checksum, applied_at) "
        "VALUES (%s, %s, %s, toTimestamp(now()))",
        (migration.version, migration.name, migration.checksum),
    )


def applied_versions(store: CassandraStore) -> list[dict]:
    rows = store.execute(f"SELECT version, name, checksum, applied_at FROM {store.keyspace}.schema_migrations")
    return sorted(({"version": r.version, "name": r.name, "applied_at": r.applied_at.isoformat() if r.applied_at else None}
                   for r in rows), key=lambda r: r["version"])
