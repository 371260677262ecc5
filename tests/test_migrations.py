"""Schema migrations against the real Cassandra node."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from retain.errors import MigrationError
from retain.store.cassandra import CassandraStore
from retain.store.schema import MIGRATIONS_DIR, load_migrations, migrate, split_statements
from tests.harness import ROOT, child_env


def schema_of(store: CassandraStore) -> list[tuple]:
    rows = store.execute("SELECT table_name, column_name, type, kind FROM system_schema.columns "
                         "WHERE keyspace_name = %s", (store.keyspace,))
    return sorted(tuple(row) for row in rows)


def test_split_statements_ignores_comments_and_quoted_semicolons() -> None:
    cql = "-- a comment; with a semicolon\nCREATE TABLE a (k text PRIMARY KEY);\n" \
          "INSERT INTO a (k) VALUES ('x;y');\n\n// trailing comment\n"
    assert split_statements(cql) == ["CREATE TABLE a (k text PRIMARY KEY)", "INSERT INTO a (k) VALUES ('x;y')"]


def test_migrate_twice_leaves_the_schema_unchanged(keyspace: CassandraStore, settings) -> None:
    # The fixture migrated once already; its statements went through dc1's node and migrate waited
    # for the cluster once, at the end: dc2's node must know every table when it returns.
    before = schema_of(keyspace)
    assert ("tenants", "tenant_id", "text", "partition_key") in before
    dc2 = CassandraStore(settings.replace(cassandra_hosts=[settings.stack_cassandra_addresses[1]],
                                          cassandra_local_dc="dc2"), keyspace=keyspace.keyspace)
    try:
        assert schema_of(dc2) == before, "dc2's node does not have the schema migrate applied"
    finally:
        dc2.close()
    report = migrate(keyspace, {"dc1": 1})
    assert report.applied == [] and report.schema_agreed
    assert report.already == [m.path.name for m in load_migrations(MIGRATIONS_DIR)]
    assert schema_of(keyspace) == before
    replication = keyspace.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
                                   (keyspace.keyspace,)).one().replication
    assert replication["class"].endswith("NetworkTopologyStrategy") and replication["dc1"] == "1"


def test_failing_migration_names_the_file_and_the_cql_error(blank_keyspace: CassandraStore, tmp_path: Path) -> None:
    keyspace = blank_keyspace
    (tmp_path / "0001_ok.cql").write_text("CREATE TABLE IF NOT EXISTS ok (k text PRIMARY KEY);")
    (tmp_path / "0002_broken.cql").write_text("CREATE TABLE IF NOT EXISTS fine (k text PRIMARY KEY);\n"
                                              "CREATE TABEL nope (k text PRIMARY KEY);")
    (tmp_path / "0003_later.cql").write_text("CREATE TABLE IF NOT EXISTS later (k text PRIMARY KEY);")
    with pytest.raises(MigrationError) as caught:
        migrate(keyspace, {"dc1": 1}, tmp_path)
    message = str(caught.value)
    assert "0002_broken.cql" in message and "statement 2 of 2" in message
    assert "TABEL" in message  # the server's syntax error quotes the offending input
    tables = {row[0] for row in schema_of(keyspace)}
    assert "ok" in tables and "later" not in tables, "migration stopped at the failing file"
    versions = {row.version for row in keyspace.execute(f"SELECT version FROM {keyspace.keyspace}.schema_migrations")}
    assert 2 not in versions and 3 not in versions


def test_edited_migration_is_refused(blank_keyspace: CassandraStore, tmp_path: Path) -> None:
    keyspace = blank_keyspace
    migration = tmp_path / "0001_first.cql"
    migration.write_text("CREATE TABLE IF NOT EXISTS first (k text PRIMARY KEY);")
    migrate(keyspace, {"dc1": 1}, tmp_path)
    migration.write_text("CREATE TABLE IF NOT EXISTS first (k text PRIMARY KEY, v text);")
    with pytest.raises(MigrationError, match="0001_first.cql: changed after it was applied"):
        migrate(keyspace, {"dc1": 1}, tmp_path)


def test_cli_migrate_reports_failure_and_exits_non_zero(blank_keyspace: CassandraStore, tmp_path: Path, settings) -> None:
    keyspace = blank_keyspace
    (tmp_path / "0001_broken.cql").write_text("CREATE TABLE oops (k nosuchtype PRIMARY KEY);")
    env = child_env(settings.replace(cassandra_keyspace=keyspace.keyspace))
    out = subprocess.run([sys.executable, "-m", "retain", "db", "migrate", "--dir", str(tmp_path)],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 1
    assert out.stderr.startswith("error: 0001_broken.cql: statement 1 of 1 failed")
    assert "nosuchtype" in out.stderr


def test_cli_migrate_json(keyspace: CassandraStore, settings) -> None:
    import json

    env = child_env(settings.replace(cassandra_keyspace=keyspace.keyspace))
    out = subprocess.run([sys.executable, "-m", "retain", "db", "migrate", "--json"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["keyspace"] == keyspace.keyspace and report["applied"] == [] and report["schema_agreed"] is True
