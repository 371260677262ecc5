"""The spark-submit entry scripts, run as a cluster would run them: bin/spark-submit-retain builds the
retain zip and calls pyspark's real spark-submit, which starts the driver on the given master."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from retain.models.store import ModelStore
from retain.spark.jars import spark_jars_dir
from retain.spark.jobs import train as train_job
from retain.spark.pyfiles import build_zip
from retain.stack.java import find_java
from tests.harness import ROOT, child_env
from tests.lake_helpers import generated_lake

pytestmark = pytest.mark.submit


def test_the_zip_holds_the_package_and_its_data(tmp_path) -> None:
    with zipfile.ZipFile(build_zip(tmp_path)) as archive:
        names = set(archive.namelist())
    assert {"retain/__init__.py", "retain/spark/jobs/train.py", "retain/spark/jobs/score.py"} <= names
    assert any(n.startswith("retain/store/migrations/") and n.endswith(".cql") for n in names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_bad_arguments_and_an_unknown_tenant_fail_before_spark(schema, spark, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        train_job.main(["--tenant", "acme", "--cutoff", "last week"])
    assert exit_info.value.code == 2 and "not a date" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_job.main(["--tenant", "acme", "--holdout-days", "0"])
    assert train_job.main(["--tenant", "no-such-tenant"]) != 0
    assert "no-such-tenant" in capsys.readouterr().err
    # In this process spark-submit's session would be the shared one: it must not have been touched.
    assert spark.range(3).count() == 3


@pytest.mark.stack
def test_train_entry_publishes_a_version_through_spark_submit(schema, tenant, data_redis, test_settings,
                                                              tmp_path) -> None:
    own = test_settings.replace(lake_url=f"file://{tmp_path}/lake", model_store_url=f"file://{tmp_path}/models",
                                spark_shuffle_partitions=4)
    generated_lake(data_redis, own, tenant["id"], tmp_path / "gen", users=300, days=60, seed=7,
                   start=datetime(2025, 1, 1, tzinfo=timezone.utc))
    env = {**child_env(own), "SPARK_SUBMIT": str(spark_jars_dir().parent / "bin" / "spark-submit"),
           "PYTHON": sys.executable, "JAVA_HOME": str(Path(find_java(own.java_home)).resolve().parents[1])}
    env.pop("PYSPARK_PYTHON", None)
    out = subprocess.run([str(ROOT / "bin" / "spark-submit-retain"), "--master", "local[2]",
                          "--conf", "spark.ui.enabled=false", "--driver-memory", "1g",
                          str(ROOT / "retain" / "spark" / "jobs" / "train.py"), "--tenant", tenant["id"],
                          "--cutoff", "2025-02-14", "--holdout-days", "14"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert out.returncode == 0, f"spark-submit exited {out.returncode}:\n{out.stderr[-4000:]}"
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["tenant"] == tenant["id"] and result["status"] == "published", result
    assert set(result["params"]["bgnbd"]) >= {"r", "alpha", "a", "b"}
    assert ModelStore(own).current(tenant["id"]) == result["version"]
    # The master is spark-submit's, not RETAIN_SPARK_MASTER's.
    assert result["spark_master"] == "local[2]" != own.spark_master
