"""The SparkSession every job uses, configured from the settings.

local[*] by default (all of this machine's cores); any master at scale. Shuffles are sized for
the data a tenant has, not Spark's default of 200 partitions, and all times are UTC.
"""

from __future__ import annotations

import os
from pathlib import Path

from retain.config import Settings
from retain.stack.java import find_java


def spark_session(settings: Settings, app_name: str = "retain"):
    from pyspark.sql import SparkSession

    if "JAVA_HOME" not in os.environ:
        # Spark 4 runs on Java 17; do not trust whatever `java` is first on PATH.
        os.environ["JAVA_HOME"] = str(Path(find_java(settings.java_home)).resolve().parents[1])
    builder = (
        SparkSession.builder.master(settings.spark_master).appName(app_name)
        .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.local.dir", str((settings.home / "spark").resolve()))
        # Jobs read explicit lists of many small lake files: list them on the driver instead of
        # in a distributed job, and pack many into each task.
        .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "100000")
        .config("spark.sql.files.openCostInBytes", str(64 * 1024))
    )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session
