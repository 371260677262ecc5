"""Pull sources against real services: Kinesis and S3 on a moto server, Redshift's protocol on a real
PostgreSQL, checkpoints in Cassandra. Submissions go through a recording ``submit`` that validates
with retain.ingest.submit.prepare, so accepted and rejected counts and message ids are the real ones."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import signal
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import retain.commands.source as command
from retain.ingest.submit import Submission, prepare
from retain.sources.base import MAX_BATCH_BYTES, SourceError, SourceOptionError, message_size
from retain.sources.checkpoints import SHARD_END
from retain.sources.kinesis import readable_shards
from retain.sources.registry import SourceRegistry, describe, open_source
from retain.tenancy.registry import TenantError, TenantRegistry
from tests.aws_fixtures import aws_client
from tests.harness import poll

pytestmark = pytest.mark.stack
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


class Recorder:
    """A stand-in for submit: validates like the real one and remembers every batch."""

    def __init__(self, on_call: Callable[[list, Submission], None] | None = None) -> None:
        self.calls: list[tuple[list, Submission]] = []
        self.on_call = on_call

    def __call__(self, messages: Any, tenant_id: str, source: str, settings: Any, **options: Any) -> Submission:
        messages = list(messages)
        sub = prepare(messages, tenant_id, source, settings, **options)
        self.calls.append((messages, sub))
        if self.on_call:
            self.on_call(messages, sub)
        return sub

    @property
    def events(self) -> list[dict]:
        return [e for _, sub in self.calls for e in sub.events]

    @property
    def ids(self) -> list[str]:
        return [e["message_id"] for e in self.events]

    @property
    def rejected(self) -> list[dict]:
        return [r for _, sub in self.calls for r in sub.rejected]


def track(i: int, with_id: bool = True, **extra: Any) -> dict:
    msg = {"type": "track", "event": "Article Read", "userId": f"u{i % 7}",
           "timestamp": (T0 + timedelta(seconds=i)).isoformat(), "properties": {"n": i}, **extra}
    return {**msg, "messageId": f"m-{i}"} if with_id else msg


@pytest.fixture
def keyspace(module_keyspace):
    """The module's keyspace: every test adds a tenant of its own and sources named apart."""
    return module_keyspace


@pytest.fixture
def tenant(keyspace) -> str:
    return TenantRegistry(keyspace).create(f"t-{uuid.uuid4().hex[:8]}")[0].tenant_id


@pytest.fixture
def aws_settings(settings, moto_endpoint):
    return settings.replace(aws_endpoint_url=moto_endpoint)


def source_of(keyspace, settings, tenant: str, kind: str, options: dict):
    """Adds a source; returns its name and a function opening it (a fresh process, in effect)."""
    registry = SourceRegistry(keyspace)
    name = f"s-{uuid.uuid4().hex[:8]}"
    registry.add(name, tenant, kind, options)
    return name, (lambda rec: open_source(registry.get(name), settings, keyspace, submit=rec))


# --- Kinesis ----------------------------------------------------------------------------------
def new_stream(client, shards: int) -> str:
    name = f"retain-{uuid.uuid4().hex[:10]}"
    client.create_stream(StreamName=name, ShardCount=shards)
    poll(lambda: client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]
         == "ACTIVE", 30, f"stream {name} is active")
    return name


def put(client, stream: str, payloads: list[bytes]) -> None:
    for start in range(0, len(payloads), 100):
        chunk = payloads[start:start + 100]
        client.put_records(StreamName=stream, Records=[{"Data": d, "PartitionKey": f"k{start + i}"}
                                                       for i, d in enumerate(chunk)])


def last_sequence_per_shard(client, stream: str) -> dict[str, str]:
    last = {}
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        it = client.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                       ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records = client.get_records(ShardIterator=it, Limit=10000)["Records"]
        if records:
            last[shard["ShardId"]] = records[-1]["SequenceNumber"]
    return last


def test_kinesis_reads_every_shard_checkpoints_each_and_resumes(keyspace, aws_settings, tenant, moto_endpoint):
    client = aws_client("kinesis", moto_endpoint)
    stream = new_stream(client, 3)
    put(client, stream, [json.dumps(track(i)).encode() for i in range(60)])
    ndjson = "\n".join(json.dumps(track(i)) for i in range(60, 63)).encode()
    put(client, stream, [ndjson, b"this is not json", gzip.compress(json.dumps(track(63)).encode())])
    _, opened = source_of(keyspace, aws_settings, tenant, "kinesis", {"stream": stream})
    first = Recorder()
    source = opened(first)
    source.list_page_size = 1  # ListShards pagination, one shard per page
    report = source.poll_once()
    assert sorted(first.ids) == sorted(f"m-{i}" for i in range(64))
    assert [r["raw"] for r in first.rejected] == ["this is not json"]
    assert (report.records, report.accepted, report.rejected) == (63, 64, 1)
    assert source.checkpoints.all() == last_sequence_per_shard(client, stream)
    assert len(source.checkpoints.all()) == 3

    restarted = Recorder()
    assert opened(restarted).poll_once().messages == 0 and restarted.calls == []
    put(client, stream, [json.dumps(track(i)).encode() for i in range(100, 105)])
    opened(restarted).poll_once()
    assert sorted(restarted.ids) == [f"m-{i}" for i in range(100, 105)]


def test_kinesis_start_latest_reads_what_arrived_since_the_source_was_added(keyspace, aws_settings, tenant,
                                                                            moto_endpoint):
    client = aws_client("kinesis", moto_endpoint)
    stream = new_stream(client, 2)
    put(client, stream, [json.dumps(track(i)).encode() for i in range(5)])
    put_at = time.time()
    # moto truncates AT_TIMESTAMP to whole seconds (AWS keeps milliseconds).
    poll(lambda: int(time.time()) > int(put_at), 5, "the clock is a second past the old records")
    _, opened = source_of(keyspace, aws_settings, tenant, "kinesis", {"stream": stream, "start": "latest"})
    seen = Recorder()
    assert opened(seen).poll_once().messages == 0
    # Arrives while no consumer runs and before any checkpoint: a LATEST iterator would skip it.
    put(client, stream, [json.dumps(track(i)).encode() for i in range(5, 8)])
    opened(seen).poll_once()
    assert sorted(seen.ids) == ["m-5", "m-6", "m-7"]


def test_kinesis_crash_between_submit_and_checkpoint_resubmits_the_same_ids(keyspace, aws_settings, tenant,
                                                                              moto_endpoint):
    client = aws_client("kinesis", moto_endpoint)
    stream = new_stream(client, 1)
    put(client, stream, [json.dumps(track(i, with_id=False)).encode() for i in range(10)])  # ids from content
    _, opened = source_of(keyspace, aws_settings, tenant, "kinesis", {"stream": stream})
    before, after = Recorder(), Recorder()
    crashing = opened(before)

    class Crash(Exception):
        pass

    def crash(part: str, position: str) -> None:
        raise Crash("killed after submitting, before checkpointing")

    crashing.checkpoints.set = crash
    with pytest.raises(Crash):
        crashing.poll_once()
    assert len(before.ids) == 10 and crashing.checkpoints.all() == {}
    opened(after).poll_once()
    assert after.ids == before.ids and all(i.startswith("gen-") for i in after.ids)
    assert opened(Recorder()).poll_once().messages == 0


def test_kinesis_after_split_and_merge_new_records_are_consumed(keyspace, aws_settings, tenant, moto_endpoint):
    client = aws_client("kinesis", moto_endpoint)
    stream = new_stream(client, 2)
    put(client, stream, [json.dumps(track(i)).encode() for i in range(20)])
    _, opened = source_of(keyspace, aws_settings, tenant, "kinesis", {"stream": stream})
    seen = Recorder()
    opened(seen).poll_once()
    shard = client.list_shards(StreamName=stream)["Shards"][0]
    low, high = (int(shard["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
    client.split_shard(StreamName=stream, ShardToSplit=shard["ShardId"], NewStartingHashKey=str((low + high) // 2))
    put(client, stream, [json.dumps(track(i)).encode() for i in range(20, 40)])
    opened(seen).poll_once()
    children = [s for s in client.list_shards(StreamName=stream)["Shards"] if s.get("ParentShardId")]
    client.merge_shards(StreamName=stream, ShardToMerge=children[0]["ShardId"],
                        AdjacentShardToMerge=children[1]["ShardId"])
    put(client, stream, [json.dumps(track(i)).encode() for i in range(40, 60)])
    opened(seen).poll_once()
    # Anything read twice (moto copies records into new shards) carries its id: dedupe absorbs it.
    assert set(seen.ids) == {f"m-{i}" for i in range(60)}
    assert opened(Recorder()).poll_once().messages == 0


class EndOfShard:
    """Gives a closed shard AWS's end: no NextShardIterator once it is read out (moto always returns
    one). Logs which shard each non-empty read came from."""

    def __init__(self, client) -> None:
        self.client, self.shard_of, self.reads = client, {}, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def get_shard_iterator(self, **kwargs: Any) -> dict:
        out = self.client.get_shard_iterator(**kwargs)
        self.shard_of[out["ShardIterator"]] = kwargs["ShardId"]
        return out

    def get_records(self, **kwargs: Any) -> dict:
        shard = self.shard_of[kwargs["ShardIterator"]]
        out = self.client.get_records(**kwargs)
        closed = {s["ShardId"] for s in self.client.list_shards(StreamName=self.stream)["Shards"]
                  if "EndingSequenceNumber" in s["SequenceNumberRange"]}
        if out["Records"]:
            self.reads.append(shard)
        elif shard in closed:
            out.pop("NextShardIterator", None)
        if out.get("NextShardIterator"):
            self.shard_of[out["NextShardIterator"]] = shard
        return out


def test_kinesis_reads_closed_parents_to_their_end_before_the_child(keyspace, aws_settings, tenant, moto_endpoint):
    client = aws_client("kinesis", moto_endpoint)
    stream = new_stream(client, 2)
    put(client, stream, [json.dumps(track(i)).encode() for i in range(30)])
    a, b = (s["ShardId"] for s in client.list_shards(StreamName=stream)["Shards"])
    client.merge_shards(StreamName=stream, ShardToMerge=a, AdjacentShardToMerge=b)
    _, opened = source_of(keyspace, aws_settings, tenant, "kinesis", {"stream": stream})
    seen = Recorder()
    source = opened(seen)
    source.client = wrapper = EndOfShard(aws_client("kinesis", moto_endpoint))
    wrapper.stream = stream
    source.poll_once()
    child = next(s["ShardId"] for s in client.list_shards(StreamName=stream)["Shards"] if s.get("ParentShardId"))
    assert wrapper.reads[-1] == child and set(wrapper.reads[:-1]) == {a, b}
    positions = source.checkpoints.all()
    assert positions[a] == positions[b] == SHARD_END and positions[child] not in (None, SHARD_END)
    assert set(seen.ids) == {f"m-{i}" for i in range(30)}  # moto's copies in the child keep their ids


def test_shard_order_follows_parents() -> None:
    shards = [{"ShardId": "p"}, {"ShardId": "q"}, {"ShardId": "c1", "ParentShardId": "p"},
              {"ShardId": "m", "ParentShardId": "c1", "AdjacentParentShardId": "q"},
              {"ShardId": "orphan", "ParentShardId": "trimmed-long-ago"}]
    ids = lambda found: [s["ShardId"] for s in found]  # noqa: E731
    assert ids(readable_shards(shards, set())) == ["p", "q", "orphan"]
    assert ids(readable_shards(shards, {"p"})) == ["q", "c1", "orphan"]
    assert ids(readable_shards(shards, {"p", "c1"})) == ["q", "orphan"]
    assert ids(readable_shards(shards, {"p", "c1", "q"})) == ["m", "orphan"]


# --- S3 ---------------------------------------------------------------------------------------
def csv_bytes(rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def csv_row(i: int) -> dict:
    return {"type": "track", "event": "Order Completed", "userId": f"u{i}", "messageId": f"c-{i}",
            "timestamp": (T0 + timedelta(minutes=i)).isoformat(), "properties.price": "12.50",
            "properties.sku": "007", "context.campaign.name": "spring", "plan": "42"}


def parquet_bytes(n: int) -> bytes:
    table = pa.table({"type": ["page"] * n, "name": ["Home"] * n, "anonymous_id": [f"a{i}" for i in range(n)],
                      "messageId": [f"p-{i}" for i in range(n)],
                      "timestamp": pa.array([T0 + timedelta(hours=i) for i in range(n)], pa.timestamp("us", "UTC")),
                      "properties.plays": pa.array(list(range(n)), pa.int64())})
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def test_s3_reads_each_format_once_and_again_when_overwritten(keyspace, aws_settings, tenant, moto_endpoint,
                                                                s3_bucket):
    s3 = aws_client("s3", moto_endpoint)
    objects = {
        "drops/a.ndjson": ("\n".join(json.dumps(track(i)) for i in range(3)) + "\n{broken\n").encode(),
        "drops/b.csv": csv_bytes([csv_row(i) for i in range(3)]),
        "drops/c.parquet": parquet_bytes(4),
        "drops/d.jsonl.gz": gzip.compress("\n".join(json.dumps(track(i)) for i in range(10, 12)).encode()),
        "drops/e.csv.gz": gzip.compress(csv_bytes([csv_row(i) for i in range(10, 12)])),
        "drops/readme.txt": b"not data", "drops/sub/": b"", "elsewhere/x.ndjson": json.dumps(track(99)).encode(),
    }
    for key, body in objects.items():
        s3.put_object(Bucket=s3_bucket, Key=key, Body=body)
    _, opened = source_of(keyspace, aws_settings, tenant, "s3", {"bucket": s3_bucket, "prefix": "drops/"})
    seen = Recorder()
    source = opened(seen)
    report = source.poll_once()
    assert sorted(seen.ids) == sorted(["m-0", "m-1", "m-2", "m-10", "m-11", "c-0", "c-1", "c-2", "c-10", "c-11"]
                                      + [f"p-{i}" for i in range(4)])
    assert [r["raw"] for r in seen.rejected] == ["{broken"]
    assert report.objects == 5 and [s["key"] for s in report.skipped] == ["drops/readme.txt"]
    by_id = {e["message_id"]: e for e in seen.events}
    assert by_id["c-1"]["properties"] == {"price": 12.5, "sku": "007", "plan": 42}
    assert by_id["c-1"]["context"] == {"campaign": {"name": "spring"}}
    assert by_id["p-3"]["user_id"] == "a3" and by_id["p-3"]["properties"] == {"plays": 3}
    assert by_id["p-3"]["timestamp"] == int((T0 + timedelta(hours=3)).timestamp() * 1000)
    etags = {k: s3.head_object(Bucket=s3_bucket, Key=k)["ETag"].strip('"') for k in objects if k.startswith("drops/")
             and k.endswith(("ndjson", "csv", "parquet", "gz"))}
    assert source.checkpoints.objects() == {k: {e} for k, e in etags.items()}

    again = Recorder()
    assert opened(again).poll_once().objects == 0 and again.calls == []
    s3.put_object(Bucket=s3_bucket, Key="drops/b.csv", Body=csv_bytes([csv_row(i) for i in range(4)]))
    opened(again).poll_once()
    assert sorted(again.ids) == ["c-0", "c-1", "c-2", "c-3"]  # the old rows keep their ids: dedupe applies


def test_s3_large_object_goes_in_several_batches_before_it_is_marked(keyspace, aws_settings, tenant,
                                                                      moto_endpoint, s3_bucket):
    s3 = aws_client("s3", moto_endpoint)
    lines = [json.dumps(track(i, with_id=False, properties={"text": "x" * 900})) for i in range(1200)]
    s3.put_object(Bucket=s3_bucket, Key="big.ndjson", Body="\n".join(lines).encode())
    etag = s3.head_object(Bucket=s3_bucket, Key="big.ndjson")["ETag"].strip('"')
    _, opened = source_of(keyspace, aws_settings, tenant, "s3", {"bucket": s3_bucket})
    holder: dict = {}

    def not_marked_yet(messages: list, sub: Submission) -> None:
        assert not holder["source"].checkpoints.has_object("big.ndjson", etag)
        assert len(messages) <= 500 and sum(message_size(m) for m in messages) <= MAX_BATCH_BYTES

    seen = Recorder(not_marked_yet)
    holder["source"] = opened(seen)
    report = holder["source"].poll_once()
    assert len(seen.calls) >= 3 and report.batches == len(seen.calls)
    assert len(set(seen.ids)) == 1200 and report.objects == 1
    assert holder["source"].checkpoints.has_object("big.ndjson", etag)


# --- Redshift (PostgreSQL's protocol) ----------------------------------------------------------
@pytest.fixture
def pg_table(postgres_dsn):
    table = f"events_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id serial, user_id text, event text, price numeric(10, 2), "
                     "loaded_at timestamptz NOT NULL)")
    yield table
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {table}")


def insert(dsn: str, table: str, rows: list[tuple[str, datetime]]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} (user_id, event, price, loaded_at) VALUES (%s, %s, 9.99, %s)",
                        [(f"u{i % 5}", event, at) for i, (event, at) in enumerate(rows)])


def test_redshift_pages_by_watermark_resumes_and_picks_up_later_rows(keyspace, settings, tenant, postgres_dsn,
                                                                      pg_table):
    # Groups of three rows share a watermark (ties at page boundaries), and one group of six is
    # larger than a page.
    rows = [(f"E{i}", T0 + timedelta(seconds=i // 3)) for i in range(24)]
    rows += [(f"Big{i}", T0 + timedelta(seconds=100)) for i in range(6)]
    insert(postgres_dsn, pg_table, rows)
    query = (f"SELECT 'track' AS type, event, user_id, loaded_at AS timestamp, loaded_at, price AS \"properties.price\" "
             f"FROM {pg_table} WHERE loaded_at > %(watermark)s ORDER BY loaded_at")
    _, opened = source_of(keyspace, settings, tenant, "redshift",
                          {"dsn": postgres_dsn, "query": query, "watermark_column": "loaded_at", "page_size": "4"})
    seen = Recorder()
    first = opened(seen).poll_once(max_records=5)
    assert first.more and first.records == 6  # a page of 4 grew to finish its tie group
    assert opened(seen).checkpoints.get("watermark") == "2024-05-01T12:00:01Z"
    reports = []
    poll(lambda: reports.append(opened(seen).poll_once(max_records=5)) or not reports[-1].more, 60,
         "restarted rounds reach the end of the table")
    names = sorted(m["event"] for batch, _ in seen.calls for m in batch)
    assert names == sorted(name for name, _ in rows) and len(seen.ids) == len(set(seen.ids)) == 30
    message = next(m for batch, _ in seen.calls for m in batch if m["event"] == "E5")
    assert message["timestamp"] == "2024-05-01T12:00:01Z" and message["properties"]["price"] == 9.99
    assert opened(seen).checkpoints.get("watermark") == "2024-05-01T12:01:40Z"

    later = Recorder()
    assert opened(later).poll_once().records == 0
    insert(postgres_dsn, pg_table, [(f"Late{i}", T0 + timedelta(hours=1, microseconds=i)) for i in range(3)])
    opened(later).poll_once()
    assert sorted(m["event"] for batch, _ in later.calls for m in batch) == ["Late0", "Late1", "Late2"]
    assert opened(later).checkpoints.get("watermark") == "2024-05-01T13:00:00.000002Z"


def test_redshift_errors_and_listing_never_show_the_password(keyspace, settings, tenant, postgres_dsn):
    port = postgres_dsn.rsplit(":", 1)[1].split("/")[0]
    dsn = f"postgresql://postgres:hunter2@127.0.0.1:{port}/no_such_db"
    registry = SourceRegistry(keyspace)
    options = {"dsn": dsn, "query": "SELECT 1 AS w WHERE 1 > %(watermark)s", "watermark_column": "w"}
    definition = registry.add("rs-secret", tenant, "redshift", options)
    assert "hunter2" not in json.dumps(describe(definition)) and "***" in describe(definition)["options"]["dsn"]
    with pytest.raises(SourceError) as caught:
        open_source(definition, settings, keyspace, submit=Recorder()).poll_once()
    assert "no_such_db" in str(caught.value) and "hunter2" not in str(caught.value)
    with pytest.raises(SourceOptionError) as bad:
        registry.add("rs-bad", tenant, "redshift", {**options, "dsn": "host=x password=hunter2 dbname"})
    assert bad.value.option == "dsn" and "hunter2" not in str(bad.value)


# --- definitions and the command ---------------------------------------------------------------
def test_registry_validates_options_per_kind_and_remove_forgets_checkpoints(keyspace, tenant):
    registry = SourceRegistry(keyspace)
    with pytest.raises(SourceOptionError, match="'stream'") as missing:
        registry.add("k1", tenant, "kinesis", {})
    assert missing.value.option == "stream"
    with pytest.raises(SourceOptionError, match="'strem'"):
        registry.add("k1", tenant, "kinesis", {"strem": "x"})
    with pytest.raises(SourceOptionError, match="'format'"):
        registry.add("k1", tenant, "s3", {"bucket": "b", "format": "xml"})
    with pytest.raises(SourceOptionError, match="'query'"):
        registry.add("k1", tenant, "redshift", {"dsn": "host=h", "query": "SELECT 1", "watermark_column": "w"})
    with pytest.raises(SourceError, match="unknown source kind"):
        registry.add("k1", tenant, "kafka", {})
    with pytest.raises(TenantError):
        registry.add("k1", "no-such-tenant", "kinesis", {"stream": "x"})
    added = registry.add("k1", tenant, "kinesis", {"stream": "clicks"})
    assert added.options == {"stream": "clicks", "start": "trim_horizon"}
    assert registry.get("k1") == added and [d for d in registry.list() if d.name == "k1"] == [added]
    with pytest.raises(SourceError, match="already exists"):
        registry.add("k1", tenant, "kinesis", {"stream": "clicks"})
    open_source(added, None, keyspace).checkpoints.set("shardId-0", "42")
    registry.remove("k1")
    assert "k1" not in [d.name for d in registry.list()] and open_source(added, None, keyspace).checkpoints.all() == {}
    with pytest.raises(SourceError, match="no source"):
        registry.get("k1")


def test_source_command_adds_lists_runs_once_and_stops_on_sigterm(keyspace, tenant, moto_endpoint, s3_bucket,
                                                                   monkeypatch):
    seen = Recorder()
    monkeypatch.setattr(command, "open_source", lambda d, s, store: open_source(d, s, store, submit=seen))
    runner = CliRunner()
    env = {"RETAIN_CASSANDRA_KEYSPACE": keyspace.keyspace, "RETAIN_AWS_ENDPOINT_URL": moto_endpoint}

    def cli(*args: str) -> Any:
        result = runner.invoke(command.source_group, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout) if "--json" in args else result.stdout

    cli("add", "drops", "--tenant", tenant, "--kind", "s3", "--option", f"bucket={s3_bucket}", "-o", "prefix=in/")
    listed = [s for s in cli("list", "--json")["sources"] if s["name"] == "drops"]
    assert [(s["name"], s["kind"], s["options"]["prefix"]) for s in listed] == [("drops", "s3", "in/")]
    aws_client("s3", moto_endpoint).put_object(Bucket=s3_bucket, Key="in/a.ndjson", Body=json.dumps(track(1)).encode())
    once = cli("run", "drops", "--once", "--json")
    assert (once["objects"], once["accepted"], seen.ids) == (1, 1, ["m-1"])

    def stop_when_submitted() -> None:
        try:
            poll(lambda: len(seen.ids) == 2, 60, "the loop submits b.ndjson")
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # always: the loop below returns only on a signal

    before = signal.getsignal(signal.SIGTERM)
    aws_client("s3", moto_endpoint).put_object(Bucket=s3_bucket, Key="in/b.ndjson", Body=json.dumps(track(2)).encode())
    killer = threading.Thread(target=stop_when_submitted, daemon=True)
    killer.start()
    looped = cli("run", "drops", "--interval", "60", "--json")
    killer.join(10)
    assert looped["objects"] == 1 and looped["rounds"] >= 1 and seen.ids == ["m-1", "m-2"]
    assert signal.getsignal(signal.SIGTERM) == before
    cli("remove", "drops")
    assert "drops" not in [s["name"] for s in cli("list", "--json")["sources"]]
