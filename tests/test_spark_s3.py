"""Spark reading an S3 lake through the s3a connector: a lake flushed to a moto server, read back by
retain.spark.lake.read_events in a real Spark session (hadoop-aws resolved with mvn on first use).

The read runs in a child process: Spark's classpath is fixed when its JVM starts, and the session
shared by this test process started without the connector.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from retain.config import Settings
from retain.lake import open_lake
from retain.lake.flush import flush
from retain.spark.jars import S3aUnavailable, hadoop_version, jars_for, needs_s3a, s3a_jars, spark_jars_dir
from retain.spark.session import s3a_options, submitted_session
from tests.harness import ROOT, child_env
from tests.lake_helpers import stage_messages

pytestmark = pytest.mark.s3a

_READ = """
import json, sys
from retain.config import Settings
from retain.spark.lake import read_events
from retain.spark.session import spark_session

settings = Settings.from_env()
spark = spark_session(settings, "retain-test-s3a")
try:
    for end_date in sys.argv[2:]:
        frame = read_events(spark, settings, sys.argv[1], end_date=end_date or None)
        picked = frame.selectExpr("message_id", "user_id", "date", "name", "unix_millis(event_time) AS ms")
        rows = [row.asDict() for row in picked.collect()]
        print("ROWS " + json.dumps({"rows": rows, "files": frame.inputFiles()}))
finally:
    spark.stop()
"""


def _messages(tenant: str) -> list[dict]:
    return [{"type": "track", "event": "Article Read", "userId": f"u{i % 4}", "messageId": f"{tenant}-m{i}",
             "timestamp": f"2025-03-0{1 + i % 3}T1{i % 10}:00:00Z"} for i in range(12)]


def _read_in_spark(settings: Settings, tenant: str, *end_dates: str) -> list[dict]:
    """One read_events per end date ("" for none), in one Spark session of a child process."""
    out = subprocess.run([sys.executable, "-c", _READ, tenant, *end_dates], capture_output=True, text=True,
                         cwd=ROOT, env=child_env(settings), timeout=600)
    assert out.returncode == 0, f"Spark read exited {out.returncode}:\n{out.stderr[-4000:]}"
    return [json.loads(line[len("ROWS "):]) for line in out.stdout.splitlines() if line.startswith("ROWS ")]


@pytest.fixture
def s3_settings(test_settings: Settings, s3_bucket: str, moto_endpoint: str, tmp_path) -> Settings:
    return test_settings.replace(lake_url=f"s3://{s3_bucket}/lake/v1", aws_endpoint_url=moto_endpoint,
                                 model_store_url=f"file://{tmp_path}/models", spark_master="local[2]",
                                 spark_shuffle_partitions=2)


def test_hadoop_aws_matches_the_spark_hadoop(tmp_path) -> None:
    version = hadoop_version()
    assert any(spark_jars_dir().glob(f"hadoop-client-api-{version}.jar"))
    with pytest.raises(S3aUnavailable, match="hadoop-client-api"):
        hadoop_version(tmp_path)


def test_s3a_options_follow_the_endpoint(s3_settings: Settings, test_settings: Settings) -> None:
    assert needs_s3a(s3_settings) and not needs_s3a(test_settings)
    # boto3 reads and writes the model store; Spark never does.
    assert not needs_s3a(test_settings.replace(model_store_url="s3://models/prefix"))
    moto = s3a_options(s3_settings)
    assert moto["fs.s3a.endpoint"] == s3_settings.aws_endpoint_url
    assert (moto["fs.s3a.path.style.access"], moto["fs.s3a.connection.ssl.enabled"]) == ("true", "false")
    assert s3a_options(s3_settings.replace(aws_endpoint_url="https://minio.example:9000"))[
        "fs.s3a.connection.ssl.enabled"] == "true"
    # Real AWS: the SDK finds the endpoint from the region, and buckets by virtual host.
    assert s3a_options(s3_settings.replace(aws_endpoint_url="", aws_region="eu-west-1")) == {
        "fs.s3a.endpoint.region": "eu-west-1"}


@pytest.mark.stack
def test_spark_reads_an_s3_lake_through_s3a(data_redis, s3_settings: Settings) -> None:
    jars = s3a_jars(s3_settings.cache_dir)
    names = {jar.name.rsplit("-", 1)[0] for jar in jars}
    assert {"hadoop-aws", "s3", "s3-transfer-manager", "sts", "apache-client", "netty-nio-client"} <= names
    assert "bundle" not in names and not any(name.startswith("netty-") and name != "netty-nio-client"
                                              for name in names), "Spark ships netty; the SDK bundle is 686 MB"
    staged = stage_messages(data_redis, s3_settings, "acme", _messages("acme"))
    stage_messages(data_redis, s3_settings, "globex", _messages("globex"))
    report = flush(data_redis, s3_settings, open_lake(s3_settings))
    assert report.rows == 2 * staged == 24 and all(path.startswith("events/") for path in report.files)

    got, early = _read_in_spark(s3_settings, "acme", "", "2025-03-01")
    assert sorted(r["message_id"] for r in got["rows"]) == sorted(m["messageId"] for m in _messages("acme"))
    assert all(f.startswith(f"s3a://{s3_settings.lake_url[len('s3://'):]}/events/tenant=acme/")
               for f in got["files"]), got["files"]
    first = next(r for r in got["rows"] if r["message_id"] == "acme-m0")
    assert (first["user_id"], first["date"], first["name"]) == ("u0", "2025-03-01", "Article Read")
    assert first["ms"] == int(datetime(2025, 3, 1, 10, tzinfo=timezone.utc).timestamp() * 1000)

    # Only the partitions the window needs are read.
    assert {r["date"] for r in early["rows"]} == {"2025-03-01"} and len(early["rows"]) == 4


def test_a_session_without_the_connector_says_how_to_add_it(spark, s3_settings: Settings) -> None:
    # The shared session started without hadoop-aws, as a spark-submit without --jars would.
    with pytest.raises(S3aUnavailable, match=r"--jars .*retain\.spark\.jars.*ClassNotFoundException"):
        submitted_session(s3_settings)


def test_jars_module_prints_the_classpath_for_spark_submit(s3_settings: Settings, test_settings: Settings) -> None:
    def jars_printed(settings: Settings, *args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "retain.spark.jars", *args], capture_output=True, text=True,
                             env=child_env(settings), cwd=ROOT, timeout=600)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    jars = jars_printed(s3_settings, "--if-needed").split(",")
    assert all(Path(jar).is_file() for jar in jars) and any("hadoop-aws-" in jar for jar in jars)
    # A local lake needs no connector: spark-submit gets no --jars.
    assert jars_for(test_settings) == [] and jars_printed(test_settings, "--if-needed") == ""
    assert jars_printed(test_settings) == ",".join(jars)
