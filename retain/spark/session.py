"""The SparkSession every job uses, configured from the settings.

Two ways in: :func:`spark_session` starts Spark itself (`retain train`, the train task; local[*] by
default, any master at scale), :func:`submitted_session` takes the one spark-submit started (the
entry scripts in retain/spark/jobs, on whatever master spark-submit names). Shuffles are sized for
the data a tenant has, not Spark's default of 200 partitions, and all times are UTC.

A lake on s3:// is read through Hadoop's s3a connector; see retain.spark.jars for how its jars
get here and retain.spark.lake for the s3:// to s3a:// mapping.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from retain.config import Settings
from retain.spark.jars import S3aUnavailable, jars_for, needs_s3a
from retain.stack.java import find_java

# Lets S3A find credentials as boto3 does (environment, profile, container or instance role) rather
# than S3A's own chain, which skips ~/.aws profiles. The class ships in the SDK modules we resolve.
_CREDENTIALS = "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"


def _sql_options(settings: Settings) -> dict[str, str]:
    """SQL options that can change on a running session too."""
    return {
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Jobs read explicit lists of many small lake files: list them on the driver instead of
        # in a distributed job, and pack many into each task.
        "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
        "spark.sql.files.openCostInBytes": str(64 * 1024),
    }


def s3a_options(settings: Settings) -> dict[str, str]:
    """Hadoop options (no spark.hadoop. prefix) for s3a against the settings' endpoint and region."""
    options = {"fs.s3a.endpoint.region": settings.aws_region}
    endpoint = settings.aws_endpoint_url
    if endpoint:
        options["fs.s3a.endpoint"] = endpoint
        # moto, MinIO and most S3-compatible stores serve buckets by path, not by host name.
        options["fs.s3a.path.style.access"] = "true"
        options["fs.s3a.connection.ssl.enabled"] = "true" if urlsplit(endpoint).scheme == "https" else "false"
    return options


def spark_session(settings: Settings, app_name: str = "retain"):
    """A session on ``settings.spark_master`` (an existing one in this process is reused)."""
    from pyspark.sql import SparkSession

    if "JAVA_HOME" not in os.environ:
        # Spark 4 runs on Java 17; do not trust whatever `java` is first on PATH.
        os.environ["JAVA_HOME"] = str(Path(find_java(settings.java_home)).resolve().parents[1])
    if settings.spark_master.startswith("local") and "PYSPARK_PYTHON" not in os.environ:
        # A local master's Python workers must run this interpreter, which has retain's packages,
        # not whichever `python3` comes first on PATH (read when the context starts). A cluster's
        # executors run the cluster's Python: PYSPARK_PYTHON there.
        os.environ["PYSPARK_PYTHON"] = sys.executable
    builder = (
        SparkSession.builder.master(settings.spark_master).appName(app_name)
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.local.dir", str((settings.home / "spark").resolve()))
    )
    for key, value in _sql_options(settings).items():
        builder = builder.config(key, value)
    # Jars join the classpath only when the JVM starts. Resolved here, lazily: only S3 lakes pay.
    jars = jars_for(settings)
    if jars:
        builder = builder.config("spark.jars", ",".join(str(jar) for jar in jars))
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    if needs_s3a(settings):
        _configure_s3a(session, settings, {"fs.s3a.aws.credentials.provider": _CREDENTIALS})
    return session


def submitted_session(settings: Settings, app_name: str = "retain"):
    """The session spark-submit started, on whatever master it names, set up as spark_session's.

    Launch-time options (master, memory, jars, scratch directories) are spark-submit's to give.
    A shuffle partition count given there (--conf spark.sql.shuffle.partitions) wins over the
    setting, which is sized for one machine. S3A credentials stay the cluster's (on EMR, the
    instance role); the endpoint and region still come from the settings.
    """
    from pyspark.sql import SparkSession

    session = SparkSession.builder.appName(app_name).getOrCreate()
    given = session.sparkContext.getConf()
    for key, value in _sql_options(settings).items():
        if not (key == "spark.sql.shuffle.partitions" and given.contains(key)):
            session.conf.set(key, value)
    if needs_s3a(settings):
        _configure_s3a(session, settings, {})
    return session


def _configure_s3a(session, settings: Settings, extra: dict[str, str]) -> None:
    """Point s3a at the settings' endpoint, then check Spark can load it, so a job fails at start
    with a remedy rather than at its first read with a ClassNotFoundException."""
    # The driver's Hadoop configuration travels with every job to the executors.
    conf = session.sparkContext._jsc.hadoopConfiguration()
    for key, value in {**s3a_options(settings), **extra}.items():
        conf.set(key, value)
    jvm = session.sparkContext._jvm
    try:
        jvm.org.apache.hadoop.fs.FileSystem.getFileSystemClass("s3a", conf)
    except Exception as exc:  # noqa: BLE001 - a Py4JJavaError wrapping ClassNotFound or UnsupportedFileSystem
        java = getattr(exc, "java_exception", None)
        detail = str(java.toString()) if java is not None else str(exc)
        raise S3aUnavailable(
            f"Spark cannot load the s3a connector the lake at {settings.lake_root} needs: add its jars when Spark "
            "starts (spark-submit --jars \"$(python -m retain.spark.jars)\", as bin/spark-submit-retain does); "
            f"a Spark session started earlier in the same process without them is reused as it is ({detail[:300]})"
        ) from None
