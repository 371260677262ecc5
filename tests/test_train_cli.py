"""`retain train` and `retain models` as a user runs them (a Spark session of their own)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone

from tests.harness import ROOT, child_env
from tests.lake_helpers import generated_lake


def retain(settings, *args: str, check: int | None = 0) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "retain", *args], capture_output=True, text=True,
                         env=child_env(settings), cwd=ROOT, timeout=600)
    if check is not None:
        assert out.returncode == check, out.stderr[-3000:]
    return out


def test_train_then_list_show_and_rollback(settings, schema, tenant, data_redis, test_settings, tmp_path) -> None:
    own = test_settings.replace(lake_url=f"file://{tmp_path}/lake", model_store_url=f"file://{tmp_path}/models",
                                spark_master="local[2]", spark_shuffle_partitions=4)
    generated_lake(data_redis, own, tenant["id"], tmp_path / "gen", users=400, days=60, seed=5,
                   start=datetime(2025, 1, 1, tzinfo=timezone.utc))
    trained = json.loads(retain(own, "train", "--tenant", tenant["id"], "--cutoff", "2025-02-14",
                                "--holdout-days", "14", "--json").stdout)
    assert trained["status"] == "published" and set(trained["params"]["bgnbd"]) >= {"r", "alpha", "a", "b"}
    listed = json.loads(retain(own, "models", "list", "--tenant", tenant["id"], "--json").stdout)["versions"]
    assert [v["version"] for v in listed] == [trained["version"]] and listed[0]["current"]
    shown = json.loads(retain(own, "models", "show", "--tenant", tenant["id"], trained["version"], "--json").stdout)
    assert shown["metrics"]["p_return_auc"] == trained["metrics"]["p_return_auc"]
    assert "no earlier version" in retain(own, "models", "rollback", "--tenant", tenant["id"], check=1).stderr
    assert "no artifact" in retain(own, "models", "show", "--tenant", tenant["id"], "v-nope", check=1).stderr
    bad = retain(own, "train", "--tenant", tenant["id"], "--cutoff", "last week", check=2)
    assert "--cutoff" in bad.stderr
