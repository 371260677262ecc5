"""`retain db repair` against the two-datacenter test stack: node by node, under one lease, recorded."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from celery import Celery
from click.testing import CliRunner

from retain.cli import main
from retain.repair.lock import Holder, RepairLease, current_holder
from retain.repair.ring import ring_nodes
from retain.repair.runs import ABANDONED, OK, RUNNING, NodeRun, RunLog
from retain.repair.status import repair_status
from retain.store.cassandra import CassandraStore
from tests.harness import ROOT, child_env, poll

GC_GRACE = 3600
DDL_TIMEOUT = 120


@pytest.fixture
def tiny_keyspace(two_dcs, schema: CassandraStore):
    """A small keyspace replicated to both datacenters, so each node has ranges to repair."""
    name = f"r_{uuid.uuid4().hex[:12]}"
    # Schema changes wait for both nodes to agree: slow on a busy machine.
    schema.execute(f"CREATE KEYSPACE {name} WITH replication = "
                   "{'class': 'NetworkTopologyStrategy', 'dc1': 1, 'dc2': 1}", timeout=DDL_TIMEOUT)
    schema.execute(f"CREATE TABLE {name}.kv (k int PRIMARY KEY, v text) WITH gc_grace_seconds = {GC_GRACE}",
                   timeout=DDL_TIMEOUT)
    schema.execute(f"CREATE TABLE {name}.later (k int PRIMARY KEY, v text) WITH gc_grace_seconds = {GC_GRACE * 4}",
                   timeout=DDL_TIMEOUT)
    # Purged at once by design: not what limits how late a repair may be.
    schema.execute(f"CREATE TABLE {name}.ephemeral (k int PRIMARY KEY, v text) WITH gc_grace_seconds = 0",
                   timeout=DDL_TIMEOUT)
    for k in range(50):
        schema.execute(f"INSERT INTO {name}.kv (k, v) VALUES (%s, %s)", (k, f"value {k}"))
    yield name
    schema.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=DDL_TIMEOUT)


def _nodes(settings) -> set[str]:
    return set(settings.stack_cassandra_addresses)


def _assert_one_run_per_node_in_turn(runs: list[NodeRun], settings, kind: str) -> None:
    assert {run.node for run in runs} == _nodes(settings)
    assert {run.dc for run in runs} == {"dc1", "dc2"}
    assert len({run.run_id for run in runs}) == 1, "one run covers every node"
    assert all(run.result == OK and run.kind == kind for run in runs), [(r.node, r.result, r.output) for r in runs]
    # Tokens 0 (dc1) and 100 (dc2): each node is the primary replica of the range ending at its token.
    assert {run.node: run.ranges for run in runs} == {"127.0.0.11": ("(100,0]",), "127.0.0.12": ("(0,100]",)}
    ordered = sorted(runs, key=lambda run: run.started_at)
    for before, after in zip(ordered, ordered[1:]):
        assert before.ended_at <= after.started_at, "nodes are repaired one at a time"


def test_the_daily_task_repairs_node_by_node_and_records_each_run(worker, settings, schema, tiny_keyspace) -> None:
    producer = Celery(broker=settings.broker_url, backend=settings.result_backend)
    producer.conf.update(accept_content=["json"], result_accept_content=["json"])
    try:
        outcome = producer.send_task("maintenance.repair", kwargs={"kind": "full", "keyspace": tiny_keyspace},
                                     queue="maintenance").get(timeout=300)
    finally:
        producer.close()
    assert outcome["ok"] is True, outcome
    runs = RunLog(schema).runs(tiny_keyspace)
    assert [str(run.run_id) for run in runs] == [outcome["run_id"]] * 2
    _assert_one_run_per_node_in_turn(runs, settings, "full")
    assert current_holder(schema) is None, "the lease is released"

    status = repair_status(schema, settings, tiny_keyspace)
    assert status.gc_grace_seconds == GC_GRACE
    assert {node.node for node in status.nodes} == _nodes(settings)
    assert not status.stale
    assert {node.last_success["run_id"] for node in status.nodes} == {outcome["run_id"]}


def test_a_repair_started_while_another_runs_is_refused(settings, schema, tiny_keyspace) -> None:
    first = subprocess.Popen(
        [sys.executable, "-m", "retain", "db", "repair", "--incremental", "--keyspace", tiny_keyspace, "--json"],
        cwd=ROOT, env=child_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        holder = poll(lambda: _holder_of(schema, tiny_keyspace), 120, "the first repair takes the lease",
                      interval=0.05)
        assert holder.pid == first.pid
        second = CliRunner().invoke(main, ["db", "repair", "--keyspace", tiny_keyspace])
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert second.exit_code == 4, second.output
    assert "another repair is running" in second.stderr
    assert f"pid {first.pid}" in second.stderr and holder.owner in second.stderr

    assert first.returncode == 0, err
    document = json.loads(out)
    assert document["ok"] and document["kind"] == "incremental"
    runs = RunLog(schema).runs(tiny_keyspace)
    assert {str(run.run_id) for run in runs} == {document["run_id"]}, "the refused repair recorded nothing"
    _assert_one_run_per_node_in_turn(runs, settings, "incremental")
    assert current_holder(schema) is None


def _holder_of(store: CassandraStore, keyspace: str) -> Holder | None:
    holder = current_holder(store)
    return holder if holder is not None and holder.keyspace == keyspace else None


def _record(log: RunLog, keyspace: str, node, started: datetime, result: str = OK) -> NodeRun:
    run = NodeRun(uuid.uuid1(), keyspace, node.address, node.host_id, node.dc, "full", node.ranges, started,
                  holder="test:1")
    log.start(run)
    if result != RUNNING:
        run = run.finished(result, "", ended_at=started + timedelta(seconds=5))
        log.finish(run)
    return run


def test_status_warns_when_a_node_was_not_repaired_within_gc_grace(settings, schema, tiny_keyspace) -> None:
    never = CliRunner().invoke(main, ["db", "repair", "status", "--keyspace", tiny_keyspace, "--json"])
    assert never.exit_code == 3, never.output
    assert set(json.loads(never.stdout)["stale"]) == _nodes(settings)

    log = RunLog(schema)
    ring = {node.address: node for node in ring_nodes(schema, tiny_keyspace)}
    now = datetime.now(timezone.utc)
    _record(log, tiny_keyspace, ring["127.0.0.11"], now - timedelta(seconds=GC_GRACE * 2))
    _record(log, tiny_keyspace, ring["127.0.0.12"], now - timedelta(minutes=10))
    # A later failure does not hide the last success, nor make it more recent.
    _record(log, tiny_keyspace, ring["127.0.0.11"], now - timedelta(minutes=5), result="failed")

    result = CliRunner().invoke(main, ["db", "repair", "status", "--keyspace", tiny_keyspace])
    assert result.exit_code == 3, result.output
    assert "WARNING: 127.0.0.11 (dc1) last repaired 2.0h ago, longer than gc_grace_seconds (3600s)" in result.stdout
    assert "WARNING: 127.0.0.12" not in result.stdout
    status = json.loads(CliRunner().invoke(main, ["db", "repair", "status", "--keyspace", tiny_keyspace,
                                                  "--json"]).stdout)
    by_node = {node["node"]: node for node in status["nodes"]}
    assert status["stale"] == ["127.0.0.11"]
    assert by_node["127.0.0.11"]["last_run"]["result"] == "failed"
    assert by_node["127.0.0.12"]["stale"] is False and by_node["127.0.0.12"]["age_seconds"] >= 600


def test_a_dead_holders_lease_expires_and_its_unfinished_run_is_marked_abandoned(settings, schema,
                                                                                  tiny_keyspace) -> None:
    dead = Holder("dead-run", "gone-host", 4242, tiny_keyspace, "full", datetime.now(timezone.utc))
    lease = RepairLease(schema, dead, ttl=3)
    lease.acquire()
    lease._stop.set()  # the holder dies: no more renewals, no release
    lease._thread.join()
    orphan = _record(RunLog(schema), tiny_keyspace, ring_nodes(schema, tiny_keyspace)[0],
                     datetime.now(timezone.utc), result=RUNNING)
    poll(lambda: current_holder(schema) is None, 30, "the dead holder's lease expires")

    heir = Holder.this_process(str(uuid.uuid1()), tiny_keyspace, "full")
    with RepairLease(schema, heir):
        assert current_holder(schema).owner == heir.owner
        abandoned = RunLog(schema).abandon_unfinished(tiny_keyspace, uuid.UUID(heir.owner))
    assert [run.run_id for run in abandoned] == [orphan.run_id]
    assert RunLog(schema).runs(tiny_keyspace)[0].result == ABANDONED
    assert current_holder(schema) is None
