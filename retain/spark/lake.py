"""Reading a tenant's events from the lake into Spark: only files a manifest lists, only the
partitions (dates) a job needs."""

from __future__ import annotations

from retain.config import Settings
from retain.errors import RetainError
from retain.lake import open_lake
from retain.lake.flush import committed_files
from retain.lake.schema import COLUMNS

_SPARK_TYPES = {"string": "string", "timestamp_ms": "timestamp", "int8": "tinyint", "bool": "boolean",
                "float64": "double"}


class NoEvents(RetainError):
    """The lake holds no events of the tenant in the requested window."""


def spark_schema() -> str:
    return ", ".join(f"`{name}` {_SPARK_TYPES[kind]}" for name, kind in COLUMNS)


def _spark_url(root: str, path: str) -> str:
    # Spark reads S3 through the s3a connector (hadoop-aws on its classpath).
    base = "s3a://" + root[len("s3://"):] if root.startswith("s3://") else root
    return f"{base.rstrip('/')}/{path}"


def read_events(spark, settings: Settings, tenant: str, start_date: str | None = None, end_date: str | None = None):
    """A DataFrame of the tenant's events with event dates in [start_date, end_date] (inclusive)."""
    lake = open_lake(settings)
    files = committed_files(lake, tenant, start_date, end_date)
    if not files:
        window = f" between {start_date or 'the start'} and {end_date or 'now'}"
        raise NoEvents(f"no events of tenant {tenant!r} in the lake at {settings.lake_root}{window}")
    # The file list, not directory discovery: partition columns repeat data columns here, and
    # only manifest-listed files are committed.
    return spark.read.schema(spark_schema()).parquet(*(_spark_url(settings.lake_root, f) for f in files))
