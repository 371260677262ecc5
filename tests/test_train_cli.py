"""`retain train` and `retain models` as a user runs them (a Spark session of their own)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone

from pyspark import InheritableThread

from retain.tenancy.config import TenantConfig
from tests.harness import poll, run_cli as retain
from tests.lake_helpers import generated_lake

# Events that name no content item: the content model (ALS, about 40% of a cold run's time) is fitted
# by test_content, test_train, the task below and spark-submit; here a tenant without a catalogue.
NO_CONTENT = TenantConfig(content_id_properties=[])


def test_train_then_list_show_and_rollback(settings, schema, tenant, data_redis, test_settings, tmp_path) -> None:
    own = test_settings.replace(lake_url=f"file://{tmp_path}/lake", model_store_url=f"file://{tmp_path}/models",
                                spark_master="local[2]", spark_shuffle_partitions=4)
    generated_lake(data_redis, own, tenant["id"], tmp_path / "gen", users=400, days=60, seed=5,
                   start=datetime(2025, 1, 1, tzinfo=timezone.utc), config=NO_CONTENT)
    trained = json.loads(retain(own, "train", "--tenant", tenant["id"], "--cutoff", "2025-02-14",
                                "--holdout-days", "14", "--json").stdout)
    assert trained["status"] == "published" and set(trained["params"]["bgnbd"]) >= {"r", "alpha", "a", "b"}
    assert "content interactions" in trained["not_fitted"]["content"], trained["not_fitted"]
    listed = json.loads(retain(own, "models", "list", "--tenant", tenant["id"], "--json").stdout)["versions"]
    assert [v["version"] for v in listed] == [trained["version"]] and listed[0]["current"]
    shown = json.loads(retain(own, "models", "show", "--tenant", tenant["id"], trained["version"], "--json").stdout)
    assert shown["metrics"]["p_return_auc"] == trained["metrics"]["p_return_auc"]
    assert "no earlier version" in retain(own, "models", "rollback", "--tenant", tenant["id"], check=1).stderr
    assert "no artifact" in retain(own, "models", "show", "--tenant", tenant["id"], "v-nope", check=1).stderr
    bad = retain(own, "train", "--tenant", tenant["id"], "--cutoff", "last week", check=2)
    assert "--cutoff" in bad.stderr
    scored = json.loads(retain(own, "score", "--tenant", tenant["id"], "--as-of", "2025-03-01", "--json").stdout)
    assert scored["model_version"] == trained["version"] and scored["users"] == scored["written"] > 300
    assert "--as-of" in retain(own, "score", "--tenant", tenant["id"], "--as-of", "soon", check=2).stderr


def test_train_task_runs_on_a_real_worker(settings, schema, worker, tenant, data_redis, tmp_path) -> None:
    from retain.worker.app import app

    # The session worker reads the session settings' lake and model store; stage into that lake.
    # A staging prefix of this test's own keeps its flush apart from the session's staged events.
    staging = settings.replace(redis_prefix=f"retain:t{uuid.uuid4().hex[:8]}:")
    generated_lake(data_redis, staging, tenant["id"], tmp_path / "gen", users=300, days=60, seed=9,
                   start=datetime(2025, 1, 1, tzinfo=timezone.utc))
    result = app.send_task("train.tenant", args=[tenant["id"], "2025-02-14", 14], queue="train")
    outcome = result.get(timeout=600)
    assert outcome["status"] == "published" and outcome["tenant"] == tenant["id"]
    from retain.models.store import ModelStore

    assert ModelStore(settings).current(tenant["id"]) == outcome["version"]

    scored = app.send_task("train.score", args=[tenant["id"], "2025-03-01T00:00:00"], queue="train").get(timeout=600)
    assert scored["model_version"] == outcome["version"] and scored["users"] == scored["written"] > 200


def test_a_worker_process_keeps_one_spark_session(spark, monkeypatch) -> None:
    import retain.spark.session
    from retain.worker import resources

    started = []

    def counted(*args, **kwargs):
        started.append(args)
        return spark  # the test session's JVM stands in for the worker's (getOrCreate would give it too)
    monkeypatch.setattr(retain.spark.session, "spark_session", counted)
    monkeypatch.setattr(resources, "_spark", None)
    session = resources.spark()
    assert resources.spark() is session and len(started) == 1, "a second task would start a session of its own"

    # A task that fails cancels the jobs it left running, and the session stays for the next one.
    outcome: dict = {}

    def slow_job() -> None:
        try:
            session.sparkContext.parallelize([1, 2], 2).foreach(lambda _: time.sleep(300))
        except Exception as exc:  # noqa: BLE001 - what the cancelled job raised is the point
            outcome["error"] = str(exc)
    try:
        with resources.spark_jobs("doomed") as jobs:
            group = jobs.sparkContext.getLocalProperty("spark.jobGroup.id")
            runner = InheritableThread(target=slow_job)  # runs its job in this task's group
            runner.start()
            poll(lambda: jobs.sparkContext.statusTracker().getJobIdsForGroup(group), 60,
                 "the task's job to start")
            raise ZeroDivisionError
    except ZeroDivisionError:
        pass
    runner.join(120)
    assert not runner.is_alive(), "the failed task's job was not cancelled"
    assert "cancel" in outcome.get("error", "").lower(), outcome
    assert resources._running(session) and resources.spark() is session and len(started) == 1, \
        "a failed task lost the session"
    # A pool process exiting on a signal does not ask the JVM (which got the signal too) to stop.
    resources.close(signalled=True)
    assert resources._spark is None and resources._running(session)
