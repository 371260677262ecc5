"""All of retain's settings, in one typed object read from ``RETAIN_*`` environment variables.

Every field's environment variable is its name upper-cased with the ``RETAIN_`` prefix
(``cassandra_local_dc`` is ``RETAIN_CASSANDRA_LOCAL_DC``). Lists are comma-separated
(``a,b``), mappings are ``key:value`` pairs (``dc1:3,dc2:3``). The settings are validated when
they are loaded; a bad value raises :class:`~retain.errors.ConfigError` naming the variable, so
a misconfigured process fails at start rather than on its first request.

The README's configuration table is generated from this module (``retain config docs``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Mapping
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from retain.errors import ConfigError

ENV_PREFIX = "RETAIN_"
# Variables of the test harness, not of the product: tolerated, not validated.
_IGNORED_PREFIXES = ("RETAIN_TEST_",)

CONSISTENCY_LEVELS = (
    "ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM",
    "SERIAL", "LOCAL_SERIAL", "LOCAL_ONE",
)
QUEUES = ("ingest", "profiles", "train", "maintenance")
# Settings that `retain config show` masks.
SECRET_SETTINGS = frozenset({"flower_password"})


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _split_mapping(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    pairs = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        key, sep, val = item.partition(":")
        if not sep or not key.strip() or not val.strip():
            raise ValueError(f"expected key:value pairs separated by commas, got {item!r}")
        pairs[key.strip()] = val.strip()
    return pairs


def _check_redis_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"must be a redis://, rediss:// or unix:// URL, got {value!r}")
    if parts.scheme != "unix":
        try:
            parts.port  # noqa: B018 - urlsplit checks the port only when it is read
        except ValueError as exc:
            raise ValueError(f"malformed port in {value!r}") from exc
        if not parts.hostname:
            raise ValueError(f"no host in {value!r}")
        db = parts.path.lstrip("/")
        if db and not db.isdigit():
            raise ValueError(f"database must be a number, got {db!r} in {value!r}")
    return value


class Settings(BaseModel):
    """retain's configuration. Field descriptions are the documentation users read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- local stack -------------------------------------------------------------------------
    home: Path = Field(Path(".retain"), description="Directory where the local stack keeps its configuration, data, logs and pid files.")
    cache_dir: Path = Field(Path("~/.cache/retain").expanduser(), description="Cache for downloaded artifacts (the Cassandra jars), shared between checkouts.")
    java_home: str = Field("", description="JDK/JRE home used to run Cassandra; empty finds Java 17 on the machine.")
    cassandra_version: str = Field("5.0.9", description="Version of org.apache.cassandra:cassandra-all the local stack runs.")
    cassandra_heap_mb: int = Field(1024, ge=256, description="Heap of each local Cassandra node, in MiB.")
    stack_cassandra_addresses: list[str] = Field(["127.0.0.1", "127.0.0.2"], min_length=1, description="Loopback addresses of the local Cassandra nodes; node N listens on the Nth and forms datacenter dcN.")
    stack_jmx_port: int = Field(7199, ge=1, le=65000, description="JMX port of local node 1; node N uses this plus 100*(N-1).")
    stack_cassandra_unsafe: bool = Field(False, description="Skip fsync in the local Cassandra nodes (cassandra.unsafesystem). Faster; for tests only.")
    stack_start_timeout: float = Field(240.0, gt=0, description="Seconds to wait for each local service to become ready.")
    redis_appendfsync: Literal["always", "everysec", "no"] = Field("everysec", description="AOF fsync policy of the local Redis (acknowledged writes survive a Redis restart).")

    # --- Redis -------------------------------------------------------------------------------
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis for counters, dirty-user sets and the profile cache.")
    redis_prefix: str = Field("retain:", description="Prefix of every key retain writes to the data Redis.")
    broker_url: str = Field("redis://127.0.0.1:6379/1", description="Celery broker.")
    result_backend: str = Field("redis://127.0.0.1:6379/2", description="Celery result backend.")
    result_expires: int = Field(86400, gt=0, description="Seconds task results are kept.")

    # --- Cassandra ---------------------------------------------------------------------------
    cassandra_hosts: list[str] = Field(["127.0.0.1"], min_length=1, description="Cassandra contact points.")
    cassandra_port: int = Field(9042, ge=1, le=65535, description="Cassandra native protocol port.")
    cassandra_local_dc: str = Field("dc1", min_length=1, description="Datacenter this process reads from and writes through (LOCAL_* consistency).")
    cassandra_keyspace: str = Field("retain", pattern=r"^[a-z][a-z0-9_]{0,47}$", description="Keyspace holding retain's tables.")
    cassandra_replication: dict[str, int] = Field({"dc1": 1}, min_length=1, description="Replication factor per datacenter (NetworkTopologyStrategy).")
    cassandra_write_consistency: str = Field("LOCAL_QUORUM", description="Consistency level of writes.")
    cassandra_read_consistency: str = Field("LOCAL_ONE", description="Consistency level of API reads.")
    cassandra_connect_timeout: float = Field(5.0, gt=0, description="Seconds to wait for a Cassandra connection.")
    cassandra_request_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a Cassandra request.")
    cassandra_speculative_delay: float = Field(0.05, ge=0, description="Seconds before an idempotent read is also sent to another replica of the local datacenter (speculative execution); 0 turns it off.")
    cassandra_jmx_port: int = Field(7199, ge=1, le=65535, description="JMX port of every Cassandra node; `retain db repair` runs nodetool against each node's address on this port (remote JMX enabled on the nodes). Nodes of the local stack are reached on 127.0.0.1 at RETAIN_STACK_JMX_PORT + 100*(N-1).")
    cassandra_jmx_username: str = Field("", description="JMX user nodetool authenticates as; empty for JMX without authentication.")
    cassandra_jmx_password_file: str = Field("", description="File holding the JMX user's password (nodetool -pwf), so the password never appears in a process list.")
    repair_node_timeout_seconds: int = Field(3600, gt=0, description="Longest a node's repair may take before `retain db repair` records it as failed and moves on.")

    # --- Celery ------------------------------------------------------------------------------
    worker_concurrency: int = Field(2, ge=1, description="Processes per Celery worker.")
    ingest_prefetch_multiplier: int = Field(4, ge=1, description="Prefetch of a worker that consumes only short `ingest` tasks; workers of long-running queues prefetch 1.")
    task_time_limits: dict[str, int] = Field({"ingest": 300, "profiles": 600, "train": 7200, "maintenance": 7200}, description="Hard time limit of a task, in seconds, per queue; the soft limit is 90% of it.")
    broker_visibility_timeout: int = Field(14400, gt=0, description="Seconds before an unacknowledged task is delivered again; must exceed every task time limit.")
    beat_lock_seconds: float = Field(15.0, ge=1, description="Lifetime of the lock (in the broker Redis) that lets only one `retain beat` send; the holder renews it every third of it, and a standby beat takes over at most this long after the holder dies.")
    worker_spot_watch: bool = Field(False, description="Watch the EC2 instance metadata for spot interruption notices and rebalance recommendations and drain the worker (on EC2 spot instances); also reports the instance's busy state for the autoscaler.")
    worker_imds_url: str = Field("http://169.254.169.254", description="Base URL of the instance metadata service (IMDSv2) the spot watcher polls.")
    worker_spot_poll_seconds: float = Field(5.0, gt=0, description="How often the spot watcher polls the instance metadata service.")
    worker_spot_margin_seconds: float = Field(20.0, gt=0, description="A worker under a spot interruption notice stops its tasks this long before the deadline (they are requeued) so that it has exited when the instance goes.")
    worker_spot_drain_on_rebalance: bool = Field(True, description="On a rebalance recommendation, stop taking tasks, finish those running and exit (no deadline); false only logs it.")

    # --- ingestion ---------------------------------------------------------------------------
    ingest_max_event_bytes: int = Field(32 * 1024, gt=0, description="Largest accepted event, in bytes of JSON (Segment's limit).")
    ingest_max_batch_bytes: int = Field(500 * 1024, gt=0, description="Largest accepted request body after decompression, in bytes (Segment's limit; caps gzip bombs).")
    ingest_max_batch_events: int = Field(2500, gt=0, description="Most events in one request (Segment's limit).")
    ingest_max_future_seconds: int = Field(86400, ge=0, description="How far past the time of receipt an event's timestamp may lie.")
    ingest_max_past_days: int = Field(30, ge=1, description="How old an event may be on the live tracking endpoints (/v1/import accepts any age).")
    dedupe_ttl_seconds: int = Field(7 * 86400, gt=0, description="How long a message id is remembered to drop duplicates and retries.")
    ingest_redeliver_after_seconds: int = Field(900, gt=0, description="Re-send an accepted batch no worker has finished after this long (covers a message the broker lost in a crash; duplicates are dropped).")
    deadletter_ttl_days: int = Field(30, gt=0, description="How long dead-letter records (rejected events with their reason) are kept.")
    key_cache_seconds: float = Field(30.0, ge=0, description="How long the API caches a key's tenant; a revoked key stops working within this time (plus the one registry read that notices: meanwhile the process's other requests use the entry).")
    counters_ttl_days: int = Field(400, gt=0, description="How long per-day real-time counters are kept in Redis.")

    # --- lake --------------------------------------------------------------------------------
    lake_url: str = Field("", description="Root of the Parquet lake: file:///path or s3://bucket/prefix; empty is RETAIN_HOME/lake.")
    lake_flush_events: int = Field(20000, gt=0, description="Flush staged events to the lake once this many are waiting.")
    lake_flush_seconds: float = Field(60.0, gt=0, description="Flush staged events to the lake at least this often.")

    # --- Spark and models -------------------------------------------------------------------
    spark_master: str = Field("local[*]", min_length=1, description="Spark master for training and scoring (local[*], spark://host:7077, yarn).")
    spark_shuffle_partitions: int = Field(8, ge=1, description="spark.sql.shuffle.partitions (Spark's default of 200 is far too many for one machine).")
    spark_driver_memory: str = Field("2g", pattern=r"^[0-9]+[kmgt]$", description="Memory of the Spark driver (local mode runs everything in it).")
    model_store_url: str = Field("", description="Where model versions live: file:///path or s3://bucket/prefix; empty is RETAIN_HOME/models.")

    # --- profiles ----------------------------------------------------------------------------
    profile_debounce_seconds: float = Field(1.0, ge=0, description="A dirty user is rebuilt once their last activity is this old (a burst of events costs one rebuild).")
    profile_max_delay_seconds: float = Field(15.0, gt=0, description="A user active without pause is rebuilt at least this often.")
    profile_sweep_seconds: float = Field(1.0, gt=0, description="How often beat sweeps the dirty users into rebuild tasks.")
    profile_batch_size: int = Field(200, ge=1, le=5000, description="Users per profiles.rebuild task.")
    profile_claim_seconds: int = Field(900, gt=0, description="A user claimed for a rebuild that no task finished within this time is dirty again (covers a sweep that died before enqueueing).")
    profile_model_refresh_seconds: float = Field(30.0, ge=0, description="How often a profile worker checks for a newly promoted model version.")
    profile_max_events: int = Field(20000, gt=0, description="Most recent events of a user a rebuild reads.")
    profile_cache_ttl_seconds: int = Field(86400, gt=0, description="How long a profile stays in the Redis cache.")
    profile_near_cache_entries: int = Field(20000, ge=0, description="Profiles each API process keeps in memory (least recently read dropped first; about 2 KB each), kept coherent with Redis by its client-side-caching announcements; 0 reads Redis every time.")
    profile_negative_ttl_seconds: int = Field(30, gt=0, description="How long the cache remembers that a user has no profile.")
    profile_max_age_seconds: int = Field(60, ge=0, description="Cache-Control max-age of profile responses.")

    # --- autoscaler --------------------------------------------------------------------------
    autoscaler_pools: dict[str, str] = Field({"profiles": "profiles"}, description="Worker pools the autoscaler sizes: pool:queues, queues joined by + (profiles:profiles,batch:train+maintenance).")
    autoscaler_min_workers: dict[str, int] = Field({}, description="Fewest workers per pool (pool:n); 0 when not given.")
    autoscaler_max_workers: dict[str, int] = Field({}, description="Most workers per pool (pool:n); 8 when not given.")
    autoscaler_target_latency: float = Field(30.0, gt=0, description="Seconds a task may wait in the queue: the fleet is sized to drain the backlog within it.")
    autoscaler_fallback_rate: float = Field(1.0, gt=0, description="Tasks per second per worker assumed until workers have recorded their own.")
    autoscaler_stabilization_seconds: float = Field(300.0, ge=0, description="A pool shrinks only to the largest size recommended within this window.")
    autoscaler_scale_in_step: int = Field(1, ge=1, description="Most workers removed from a pool by one decision.")
    autoscaler_activation_backlog: int = Field(1, ge=1, description="Tasks waiting before a pool at zero starts a worker.")
    autoscaler_startup_seconds: float = Field(60.0, ge=0, description="Seconds a new worker takes to start serving; a growing backlog is projected over it, so capacity is asked for before it is late (a few seconds for local processes, 60-120 for cloud machines).")
    autoscaler_interval_seconds: float = Field(15.0, gt=0, description="How often the autoscaler looks at the queues.")
    autoscaler_backend: Literal["local", "spotfleet", "asg"] = Field("local", description="What the autoscaler resizes: local worker processes, an EC2 Spot Fleet request or an Auto Scaling group per pool.")
    autoscaler_spot_fleet_requests: dict[str, str] = Field({}, description="Spot Fleet request of each pool (pool:sfr-id), needed with RETAIN_AUTOSCALER_BACKEND=spotfleet: its target capacity is the pool's worker processes, each instance type's WeightedCapacity the workers its machines run.")
    autoscaler_asg_names: dict[str, str] = Field({}, description="Auto Scaling group of each pool (pool:group name), needed with RETAIN_AUTOSCALER_BACKEND=asg: its desired capacity is the pool's workers.")

    # --- AWS ---------------------------------------------------------------------------------
    aws_endpoint_url: str = Field("", description="Endpoint for S3, Kinesis, EC2 and Auto Scaling (e.g. a moto server); empty is AWS itself.")
    aws_region: str = Field("us-east-1", min_length=1, description="AWS region for S3, Kinesis, EC2 and Auto Scaling.")

    # --- API ---------------------------------------------------------------------------------
    api_host: str = Field("127.0.0.1", description="Address the API binds.")
    api_port: int = Field(8000, ge=1, le=65535, description="Port the API binds.")
    api_workers: int = Field(0, ge=0, description="gunicorn worker processes of the API; 0: one per CPU core. A process serves its connections with at most one core (Python's GIL), and more processes than cores only take turns on them (more CPU per request, longer waits for a core; see the README); the workers share connections evenly (see RETAIN_API_REUSE_PORT).")
    api_threads: int = Field(2, ge=1, description="Threads per API worker process. One serves at a time; the others take over while it waits on Cassandra, S3 or a slow client, so this many requests can wait at once.")
    api_worker: Literal["gthread", "epoll"] = Field("epoll", description="How an API worker process serves its connections: epoll (retain's: one thread at a time waits on the process's epoll and serves the request it is woken for, one wake-up per request, and hands over to another thread when it is about to wait; about a quarter less CPU per request than gthread, and far less waiting for a core at moderate load, see the README) or gthread (gunicorn's own: an event loop hands each request to a pool thread and takes the connection back, three wake-ups per request).")
    api_plain_get: bool = Field(True, description="With the epoll worker, serve plain GET and HEAD requests (whole head in one read, HTTP/1.1, no body, framing or forwarding headers) past gunicorn's parser and response writer (retain/webapi/plainget.py): about a third less CPU per lookup. Any other request is gunicorn's, as with this off.")
    api_reuse_port: bool = Field(False, description="Give each API worker process its own listening socket (SO_REUSEPORT): the kernel then spreads new connections over them by hash. Off, the workers share one socket and each accepts only while it holds no more connections than the least loaded of them, which keeps a few long-lived connections even across processes.")
    api_timeout: int = Field(30, gt=0, description="Seconds before gunicorn restarts a stuck API worker.")
    api_log_reads: bool = Field(False, description="Write an access-log line for every successful read (GET, HEAD). Off, a read is logged only when it fails (401, 403, 429, 5xx) or is slow; writes are always logged, and /metrics counts every request.")
    api_slow_request_ms: float = Field(250.0, gt=0, description="A request that takes longer than this is written to the access log, whatever its method and status.")
    api_metrics: bool = Field(True, description="Serve Prometheus metrics at /metrics on the API's port, without a key (no tenant data; block the path at a public load balancer).")

    # --- Flower ------------------------------------------------------------------------------
    flower_host: str = Field("127.0.0.1", description="Address Flower (`retain flower`) binds.")
    flower_port: int = Field(5555, ge=1, le=65535, description="Port Flower binds.")
    flower_user: str = Field("", pattern=r"^[^:]*$", description="User name of Flower's HTTP basic auth (no colon); Flower refuses to start without a user and password unless given --insecure-no-auth.")
    flower_password: str = Field("", description="Password of Flower's HTTP basic auth (`retain config show` hides it).")
    flower_persistent: bool = Field(False, description="Keep Flower's task and worker history across restarts, in RETAIN_HOME/flower/ (saved every minute and at shutdown).")
    flower_purge_offline_seconds: int = Field(600, ge=0, description="Flower's worker list and metrics drop a worker this long after it went offline (autoscaled fleets come and go); 0 keeps them.")

    # --- logging -----------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level of every retain process.")
    log_format: Literal["json", "text"] = Field("json", description="Logs of the API, workers, beat and autoscaler: json (one object per line, with request and task ids) or text (for people).")

    # --- metrics -----------------------------------------------------------------------------
    metrics_host: str = Field("127.0.0.1", description="Address the worker and autoscaler metrics exporters bind (0.0.0.0 lets a Prometheus elsewhere scrape them).")
    worker_metrics_port: int = Field(0, ge=0, le=65535, description="Port of a worker's Prometheus exporter (/metrics); 0 is off. Each worker process on a machine needs its own.")
    autoscaler_metrics_port: int = Field(0, ge=0, le=65535, description="Port of the autoscaler's Prometheus exporter (`retain autoscaler run`); 0 is off.")

    def api_processes(self) -> int:
        """The API's worker processes (``api_workers``, 0 resolved on this machine)."""
        return self.api_workers or os.cpu_count() or 1

    @field_validator("stack_cassandra_addresses", "cassandra_hosts", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("cassandra_replication", "task_time_limits", "autoscaler_pools", "autoscaler_min_workers",
                     "autoscaler_max_workers", "autoscaler_spot_fleet_requests", "autoscaler_asg_names", mode="before")
    @classmethod
    def _mappings(cls, value: Any) -> Any:
        return _split_mapping(value)

    @field_validator("lake_url", "model_store_url")
    @classmethod
    def _lake_url(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in ("file", "s3"):
            raise ValueError(f"must be a file:// or s3:// URL, got {value!r}")
        return value

    @field_validator("aws_endpoint_url", "worker_imds_url")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if value and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname):
            raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
        return value

    @field_validator("redis_url", "broker_url", "result_backend")
    @classmethod
    def _redis_urls(cls, value: str) -> str:
        return _check_redis_url(value)

    @field_validator("cassandra_write_consistency", "cassandra_read_consistency", mode="before")
    @classmethod
    def _consistency(cls, value: Any) -> Any:
        name = str(value).strip().upper()
        if name not in CONSISTENCY_LEVELS:
            raise ValueError(f"unknown consistency level {value!r}; one of {', '.join(CONSISTENCY_LEVELS)}")
        return name

    @field_validator("cassandra_replication")
    @classmethod
    def _replication(cls, value: dict[str, int]) -> dict[str, int]:
        if any(rf < 1 for rf in value.values()):
            raise ValueError("every replication factor must be at least 1")
        return value

    @field_validator("autoscaler_pools")
    @classmethod
    def _pools(cls, value: dict[str, str]) -> dict[str, str]:
        for pool, queues in value.items():
            unknown = sorted(set(queues.split("+")) - set(QUEUES))
            if unknown:
                raise ValueError(f"pool {pool}: unknown queue(s) {', '.join(unknown)}; queues are {', '.join(QUEUES)}")
        return value

    @model_validator(mode="after")
    def _pool_bounds(self) -> "Settings":
        for name in ("autoscaler_min_workers", "autoscaler_max_workers", "autoscaler_spot_fleet_requests",
                     "autoscaler_asg_names"):
            unknown = sorted(set(getattr(self, name)) - set(self.autoscaler_pools))
            if unknown:
                raise ValueError(f"{env_name(name)} names pool(s) {', '.join(unknown)} not in "
                                 f"{env_name('autoscaler_pools')}")
        return self

    @field_validator("task_time_limits")
    @classmethod
    def _time_limits(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = set(value) - set(QUEUES)
        if unknown:
            raise ValueError(f"unknown queue(s) {', '.join(sorted(unknown))}; queues are {', '.join(QUEUES)}")
        if any(limit <= 0 for limit in value.values()):
            raise ValueError("every time limit must be a positive number of seconds")
        return {queue: value.get(queue, 3600) for queue in QUEUES}

    @model_validator(mode="after")
    def _visibility_exceeds_limits(self) -> "Settings":
        longest = max(self.task_time_limits.values())
        if self.broker_visibility_timeout <= longest:
            # A task still running when the timeout passes is delivered a second time.
            raise ValueError(
                f"{env_name('broker_visibility_timeout')} ({self.broker_visibility_timeout}s) must exceed the "
                f"longest time limit in {env_name('task_time_limits')} ({longest}s), or long tasks run twice"
            )
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Load settings from ``RETAIN_*`` variables (``os.environ`` by default), then ``overrides``."""
        environ = os.environ if environ is None else environ
        fields = cls.model_fields
        values: dict[str, Any] = {}
        for var, raw in environ.items():
            if not var.startswith(ENV_PREFIX) or var.startswith(_IGNORED_PREFIXES):
                continue
            name = var[len(ENV_PREFIX):].lower()
            if name not in fields:
                raise ConfigError(f"{var}: unknown setting (see `retain config docs` for the list)")
            values[name] = raw
        values.update(overrides)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some fields changed, validated like a fresh load."""
        try:
            return type(self).model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None

    def to_env(self, redact: bool = False) -> dict[str, str]:
        """These settings as ``RETAIN_*`` variables, for a child process to load the same.

        ``redact`` masks the secrets (SECRET_SETTINGS) that are set, for showing the settings."""
        return {env_name(name): "********" if redact and name in SECRET_SETTINGS and getattr(self, name)
                else format_value(getattr(self, name)) for name in type(self).model_fields}

    @property
    def lake_root(self) -> str:
        """The lake's URL, defaulting to a directory under RETAIN_HOME."""
        return self.lake_url or f"file://{(self.home / 'lake').resolve()}"

    @property
    def model_store_root(self) -> str:
        """The model store's URL, defaulting to a directory under RETAIN_HOME."""
        return self.model_store_url or f"file://{(self.home / 'models').resolve()}"

    @property
    def long_running_queues(self) -> tuple[str, ...]:
        return ("profiles", "train", "maintenance")


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def format_value(value: Any) -> str:
    """A value in the form its environment variable takes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    if isinstance(value, dict):
        return ",".join(f"{key}:{val}" for key, val in value.items())
    return str(value)


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        loc = error.get("loc") or ()
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{env_name(str(loc[0]))}: {message}" if loc else message)
    return "; ".join(lines)


def docs_table() -> str:
    """The configuration table of the README, as Markdown."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = format_value(field.default)
        if name == "cache_dir":
            default = "~/.cache/retain"
        shown = f"`{default}`" if default else "*(empty)*"
        rows.append(f"| `{env_name(name)}` | {shown} | {field.description} |")
    return "\n".join(rows)
