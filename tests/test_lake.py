"""The Parquet lake: backends, Parquet types, and the exactly-once flush from Redis, crashes included.

Flush tests run against the real Redis of the test stack, on a local lake and on S3 (a moto server).
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from types import SimpleNamespace

import pyarrow as pa
import pytest

from retain.config import Settings
from retain.errors import ConfigError
from retain.events import Event
from retain.handover import on_waiting
from retain.ingest.ledger import Ledger
from retain.lake import Lake, LakeError, MissingObject, open_lake
from retain.lake import flush as lake_flush
from retain.lake.flush import committed_files, flush, read_events, staged_count, staging_key
from retain.lake.local import LocalLake
from retain.lake.parquet import arrow_schema, read_parquet, rows_to_parquet
from retain.lake.s3 import S3Lake
from retain.lake.schema import COLUMNS, lake_row
from retain.tenancy.config import Traits
from tests.harness import poll

HOUR_MS = 3_600_000
BASE_MS = int(datetime(2026, 1, 1, 21, 15, tzinfo=timezone.utc).timestamp() * 1000)
WAIT = 30.0  # deadline for anything a test waits on


def make_row(tenant: str, n: int, ms: int, **traits) -> dict:
    event = Event(tenant_id=tenant, user_id=f"u{n % 7}", type="track", name="Played", message_id=f"m-{tenant}-{n}",
                  timestamp=ms, received_at=ms + 250, context={"timezone": "Europe/Paris", "campaign": {"name": "c1"}},
                  properties={"n": n})
    return lake_row(event, Traits(**traits), ms)


def spread_rows(count: int, tenants=("acme", "globex")) -> list[dict]:
    """Rows over two tenants and six hours that cross midnight (two dates)."""
    return [make_row(tenants[i % len(tenants)], i, BASE_MS + (i // 2 % 6) * HOUR_MS + i, visit=i % 2 == 0,
                     revenue=float(i) if i % 3 == 0 else None, channel="email" if i % 4 == 0 else None)
            for i in range(count)]


def stage(client, settings: Settings, rows: list[dict]) -> list[str]:
    return [client.xadd(staging_key(settings), {"r": json.dumps(row)}) for row in rows]


def key(settings: Settings, name: str) -> str:
    return f"{settings.redis_prefix}lake:{name}"


def message_ids(lake: Lake, tenants=("acme", "globex")) -> list[str]:
    ids: list[str] = []
    for tenant in tenants:
        ids += read_events(lake, tenant).column("message_id").to_pylist()
    return ids


def assert_exactly_once(lake: Lake, rows: list[dict]) -> None:
    ids = message_ids(lake, sorted({row["tenant_id"] for row in rows}))
    assert sorted(ids) == sorted(row["message_id"] for row in rows)
    # Nothing outside a manifest: a reader listing directories would find no orphan either.
    assert lake.list("events/") == committed_files(lake)


class GatedLake(Lake):
    """A lake whose writes wait at a gate: holds a flusher mid-flush without sleeping."""

    def __init__(self, inner: Lake) -> None:
        self.inner, self.url = inner, inner.url
        self.entered, self.gate = threading.Event(), threading.Event()

    def put(self, path: str, data: bytes) -> None:
        self.entered.set()
        assert self.gate.wait(WAIT), "the gate was never opened"
        self.inner.put(path, data)

    def get(self, path):
        return self.inner.get(path)

    def exists(self, path):
        return self.inner.exists(path)

    def list(self, prefix=""):
        return self.inner.list(prefix)

    def delete(self, path):
        self.inner.delete(path)


class CountingLake(GatedLake):
    def __init__(self, inner: Lake) -> None:
        super().__init__(inner)
        self.gate.set()
        self.puts: list[str] = []

    def put(self, path: str, data: bytes) -> None:
        self.puts.append(path)
        super().put(path, data)


@pytest.fixture(params=["local", "s3"])
def lake_settings(request, test_settings: Settings, tmp_path) -> Settings:
    if request.param == "local":
        return test_settings.replace(lake_url=f"file://{tmp_path}/lake")
    bucket, endpoint = request.getfixturevalue("s3_bucket"), request.getfixturevalue("moto_endpoint")
    return test_settings.replace(lake_url=f"s3://{bucket}/lake/v1", aws_endpoint_url=endpoint)


@pytest.fixture
def local_settings(test_settings: Settings, tmp_path) -> Settings:
    return test_settings.replace(lake_url=f"file://{tmp_path}/lake")


# --- Parquet -------------------------------------------------------------------------------------

def test_parquet_keeps_every_column_with_its_type():
    rows = spread_rows(5)
    table = read_parquet(rows_to_parquet(rows))
    assert table.schema == arrow_schema()
    assert [name for name, _ in COLUMNS] == table.schema.names
    assert table.schema.field("event_time").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("hour").type == pa.int8()
    got = table.to_pylist()[3]
    assert got["event_time"] == datetime.fromtimestamp(rows[3]["event_time"] / 1000, tz=timezone.utc)
    assert (got["revenue"], got["visit"], got["hour"], got["campaign"]) == (3.0, False, rows[3]["hour"], "c1")
    assert json.loads(got["properties"]) == {"n": 3}


def test_parquet_refuses_rows_that_do_not_fit():
    with pytest.raises(LakeError, match="unknown column"):
        rows_to_parquet([{**spread_rows(1)[0], "surprise": 1}])
    with pytest.raises(LakeError, match="lake schema"):
        rows_to_parquet([{**spread_rows(1)[0], "hour": "late"}])


# --- backends ------------------------------------------------------------------------------------

def test_open_lake_picks_the_backend_by_scheme(test_settings: Settings, tmp_path):
    assert isinstance(open_lake(test_settings.replace(lake_url=f"file://{tmp_path}/l")), LocalLake)
    s3 = open_lake(test_settings.replace(lake_url="s3://bucket/some/prefix", aws_endpoint_url="http://127.0.0.1:9"))
    assert isinstance(s3, S3Lake) and (s3.bucket, s3.prefix) == ("bucket", "some/prefix/")
    assert open_lake(test_settings.replace(lake_url="")).url == test_settings.lake_root
    odd = SimpleNamespace(lake_root="gs://bucket/x", aws_endpoint_url="", aws_region="us-east-1")
    with pytest.raises(ConfigError, match="RETAIN_LAKE_URL"):
        open_lake(odd)
    with pytest.raises(ConfigError, match="RETAIN_LAKE_URL"):
        open_lake(SimpleNamespace(lake_root="file://relative/path", aws_endpoint_url="", aws_region="x"))


@pytest.fixture(params=["local", "s3"])
def any_lake(request, tmp_path) -> Lake:
    if request.param == "local":
        return LocalLake(f"file://{tmp_path}/lake")
    bucket, endpoint = request.getfixturevalue("s3_bucket"), request.getfixturevalue("moto_endpoint")
    return S3Lake(f"s3://{bucket}/root", endpoint_url=endpoint)


def test_lake_objects_round_trip(any_lake: Lake):
    assert any_lake.list("") == [] and not any_lake.exists("a/b.txt")
    for path in ("a/b.txt", "a/bc/d.txt", "a/b/c.txt", "z.txt"):
        any_lake.put(path, path.encode())
    any_lake.put("a/b.txt", b"second")
    assert any_lake.get("a/b.txt") == b"second" and any_lake.exists("a/b.txt")
    assert any_lake.list("") == ["a/b.txt", "a/b/c.txt", "a/bc/d.txt", "z.txt"]
    assert any_lake.list("a/b") == ["a/b.txt", "a/b/c.txt", "a/bc/d.txt"]
    assert any_lake.list("a/b/") == ["a/b/c.txt"] and any_lake.list("nope/") == []
    any_lake.delete("a/b.txt")
    any_lake.delete("a/b.txt")
    assert not any_lake.exists("a/b.txt")
    with pytest.raises(MissingObject):
        any_lake.get("a/b.txt")
    for bad in ("/etc/passwd", "../x", "a//b", ""):
        with pytest.raises(LakeError):
            any_lake.put(bad, b"")


def test_an_s3_request_lets_another_api_thread_serve_while_it_waits(s3_bucket, moto_endpoint):
    lake = S3Lake(f"s3://{s3_bucket}/root", endpoint_url=moto_endpoint)
    handed_over: list[bool] = []
    on_waiting(lambda: handed_over.append(True))
    try:
        lake.put("a.txt", b"x")
    finally:
        on_waiting(None)
    assert handed_over == [True], "the thread hands the lead over before the request goes out"
    assert lake.get("a.txt") == b"x"


def test_local_put_is_all_or_nothing(tmp_path, monkeypatch):
    lake = LocalLake(f"file://{tmp_path}/lake")
    lake.put("d/f.bin", b"old")

    def crash(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr("retain.lake.local.os.replace", crash)
    with pytest.raises(LakeError, match="disk gone"):
        lake.put("d/f.bin", b"new")
    assert lake.get("d/f.bin") == b"old"
    assert [p.name for p in (tmp_path / "lake" / "d").iterdir()] == ["f.bin"]  # no temporary left behind


def test_s3_listing_goes_past_one_page(s3_bucket: str, moto_endpoint: str):
    lake = S3Lake(f"s3://{s3_bucket}/p", endpoint_url=moto_endpoint)
    paths = [f"many/{i:03d}" for i in range(25)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: lake.put(p, b"x"), paths))
    lake.put("other", b"x")
    lake.page_size = 4  # as if each page were S3's 1000 keys
    assert lake.list("many/") == paths and lake.list("") == [*paths, "other"]


# --- flush ---------------------------------------------------------------------------------------

def test_staging_stream_is_the_ledgers(data_redis, test_settings: Settings):
    ledger = Ledger(data_redis, test_settings.redis_prefix, 60, 60)
    assert ledger.staging_key == staging_key(test_settings)


def test_flush_moves_every_row_once_partitioned(data_redis, lake_settings: Settings):
    lake, rows = open_lake(lake_settings), spread_rows(40)
    ids = stage(data_redis, lake_settings, rows)
    assert staged_count(data_redis, lake_settings) == 40

    report = flush(data_redis, lake_settings, lake)
    assert (report.rows, report.skipped, report.resumed) == (40, None, False)
    assert (report.first, report.last) == (ids[0], ids[-1])
    assert report.manifest == f"manifests/{ids[0].replace('-', '_')}-{ids[-1].replace('-', '_')}.json"
    assert len(report.files) == len({(r["tenant_id"], r["date"], r["hour"]) for r in rows}) == 12
    for path in report.files:
        table = read_parquet(lake.get(path))
        (tenant,), (date,), (hour,) = (set(table.column(c).to_pylist()) for c in ("tenant_id", "date", "hour"))
        assert path.startswith(f"events/tenant={tenant}/date={date}/hour={hour:02d}/part-")
    assert_exactly_once(lake, rows)

    acme = read_events(lake, "acme")
    assert acme.schema == arrow_schema() and acme.num_rows == 20
    expected = {r["message_id"]: r for r in rows if r["tenant_id"] == "acme"}
    for got in acme.to_pylist():
        want = expected[got["message_id"]]
        assert got["event_time"] == datetime.fromtimestamp(want["event_time"] / 1000, tz=timezone.utc)
        assert (got["visit"], got["revenue"], got["channel"], got["date"]) == \
            (want["visit"], want["revenue"], want["channel"], want["date"])
    assert set(read_events(lake, "acme", start_date="2026-01-02").column("date").to_pylist()) == {"2026-01-02"}
    assert set(read_events(lake, "acme", end_date="2026-01-01").column("date").to_pylist()) == {"2026-01-01"}
    manifest = json.loads(lake.get(report.manifest))
    assert (manifest["rows"], manifest["tenants"], manifest["dates"]) == \
        (40, ["acme", "globex"], ["2026-01-01", "2026-01-02"])
    assert manifest["stream"] == {"first": ids[0], "last": ids[-1]}

    assert staged_count(data_redis, lake_settings) == 0
    assert data_redis.get(key(lake_settings, "committed")) == ids[-1]
    assert not data_redis.exists(key(lake_settings, "intent"), key(lake_settings, "lock"))
    assert json.loads(json.dumps(report.to_dict()))["rows"] == 40


def test_flush_with_nothing_staged_changes_nothing(data_redis, lake_settings: Settings):
    lake = open_lake(lake_settings)
    report = flush(data_redis, lake_settings, lake)
    assert (report.rows, report.files, report.manifest, report.skipped) == (0, [], None, lake_flush.SKIP_EMPTY)
    assert lake.list("") == [] and not list(data_redis.scan_iter(f"{lake_settings.redis_prefix}*"))
    stage(data_redis, lake_settings, spread_rows(3))
    assert flush(data_redis, lake_settings, lake).rows == 3
    before = lake.list("")
    assert flush(data_redis, lake_settings, lake).skipped == lake_flush.SKIP_EMPTY
    assert lake.list("") == before


def test_max_events_splits_into_several_flushes(data_redis, local_settings: Settings):
    lake, rows = open_lake(local_settings), spread_rows(25)
    stage(data_redis, local_settings, rows)
    reports = [flush(data_redis, local_settings, lake, max_events=10) for _ in range(4)]
    assert [r.rows for r in reports] == [10, 10, 5, 0]
    assert reports[0].last < reports[1].first and reports[1].last < reports[2].first
    assert len(lake.list("manifests/")) == 3
    assert_exactly_once(lake, rows)
    # The default batch comes from the settings.
    stage(data_redis, local_settings, spread_rows(9, tenants=("initech",)))
    assert flush(data_redis, local_settings.replace(lake_flush_events=4), lake).rows == 4


def test_crash_before_the_manifest_is_redone_on_rerun(data_redis, lake_settings: Settings, monkeypatch):
    lake, rows = open_lake(lake_settings), spread_rows(30)
    stage(data_redis, lake_settings, rows)
    real_write = lake_flush._write_manifest

    def crash(*args):
        raise RuntimeError("simulated crash before the manifest")

    monkeypatch.setattr(lake_flush, "_write_manifest", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        flush(data_redis, lake_settings, lake)
    orphans = lake.list("events/")
    assert orphans and committed_files(lake) == [] and read_events(lake, "acme").num_rows == 0
    assert data_redis.exists(key(lake_settings, "intent")) and staged_count(data_redis, lake_settings) == 30

    # Rows staged after the crash wait for the next flush: the rerun redoes exactly the recorded range.
    later = spread_rows(35)[30:]
    stage(data_redis, lake_settings, later)
    monkeypatch.setattr(lake_flush, "_write_manifest", real_write)
    report = flush(data_redis, lake_settings, lake, max_events=1000)
    assert (report.resumed, report.rows, sorted(report.files)) == (True, 30, orphans)
    assert_exactly_once(lake, rows)
    assert flush(data_redis, lake_settings, lake).rows == 5
    assert_exactly_once(lake, rows + later)
    assert staged_count(data_redis, lake_settings) == 0


def test_crash_after_the_manifest_only_commits_on_rerun(data_redis, local_settings: Settings, monkeypatch):
    lake, rows = open_lake(local_settings), spread_rows(20)
    ids = stage(data_redis, local_settings, rows)
    real_commit = lake_flush._commit

    def crash(*args):
        raise RuntimeError("simulated crash before the pointer moves")

    monkeypatch.setattr(lake_flush, "_commit", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        flush(data_redis, local_settings, lake)
    assert staged_count(data_redis, local_settings) == 20 and data_redis.get(key(local_settings, "committed")) is None

    monkeypatch.setattr(lake_flush, "_commit", real_commit)
    counting = CountingLake(lake)
    report = flush(data_redis, local_settings, counting)
    assert counting.puts == [] and report.resumed and report.rows == 20
    assert staged_count(data_redis, local_settings) == 0
    assert data_redis.get(key(local_settings, "committed")) == ids[-1]
    assert_exactly_once(lake, rows)


def crash_killed(*args):
    raise RuntimeError("killed")


def test_a_flusher_killed_outright_blocks_others_only_until_its_lock_expires(data_redis, local_settings, monkeypatch):
    lake, rows = open_lake(local_settings), spread_rows(12)
    stage(data_redis, local_settings, rows)
    monkeypatch.setattr(lake_flush, "LOCK_TTL_MS", 500)
    # kill -9: no exception handler runs, so the lock is never released.
    monkeypatch.setattr(lake_flush._Lock, "release", lambda self: None)
    monkeypatch.setattr(lake_flush, "_write_manifest", crash_killed)
    with pytest.raises(RuntimeError, match="killed"):
        flush(data_redis, local_settings, lake)
    monkeypatch.undo()

    assert flush(data_redis, local_settings, lake).skipped == lake_flush.SKIP_LOCKED

    def flushed():
        report = flush(data_redis, local_settings, lake)
        return report if report.skipped != lake_flush.SKIP_LOCKED else None

    report = poll(flushed, WAIT, "the dead flusher's lock expires and a new flush finishes its range", 0.05)
    assert report.resumed and report.rows == 12
    assert_exactly_once(lake, rows)


def test_a_concurrent_flush_skips_while_one_runs(data_redis, lake_settings: Settings):
    lake, rows = open_lake(lake_settings), spread_rows(16)
    stage(data_redis, lake_settings, rows)
    gated, results = GatedLake(lake), {}
    runner = threading.Thread(target=lambda: results.update(first=flush(data_redis, lake_settings, gated)))
    runner.start()
    try:
        assert gated.entered.wait(WAIT), "the first flush never started writing"
        assert flush(data_redis, lake_settings, lake).skipped == lake_flush.SKIP_LOCKED
        later = spread_rows(20)[16:]
        stage(data_redis, lake_settings, later)
    finally:
        gated.gate.set()
        runner.join(WAIT)
    assert not runner.is_alive() and results["first"].rows == 16
    assert staged_count(data_redis, lake_settings) == 4
    assert flush(data_redis, lake_settings, lake).rows == 4
    assert_exactly_once(lake, rows + later)


def test_a_stalled_flusher_that_lost_its_lock_cannot_commit(data_redis, local_settings: Settings):
    lake, rows = open_lake(local_settings), spread_rows(10)
    ids = stage(data_redis, local_settings, rows)
    gated, errors = GatedLake(lake), []

    def stalled() -> None:
        try:
            flush(data_redis, local_settings, gated)
        except LakeError as exc:
            errors.append(exc)

    runner = threading.Thread(target=stalled)
    runner.start()
    try:
        assert gated.entered.wait(WAIT), "the first flush never started writing"
        data_redis.delete(key(local_settings, "lock"))  # its lock expired while it stalled
        report = flush(data_redis, local_settings, lake)
        assert report.resumed and (report.rows, report.last) == (10, ids[-1])
        later = stage(data_redis, local_settings, spread_rows(13)[10:])
        assert flush(data_redis, local_settings, lake, max_events=1).rows == 1
    finally:
        gated.gate.set()
        runner.join(WAIT)
    assert not runner.is_alive() and len(errors) == 1 and "lost its lock" in str(errors[0])
    assert data_redis.get(key(local_settings, "committed")) == later[0]  # not moved back to ids[-1]
    assert flush(data_redis, local_settings, lake).rows == 2
    assert_exactly_once(lake, rows + spread_rows(13)[10:])


def test_a_staged_row_without_a_partition_stops_the_flush(data_redis, local_settings: Settings):
    lake = open_lake(local_settings)
    stage(data_redis, local_settings, [{**spread_rows(1)[0], "date": "yesterday"}])
    with pytest.raises(LakeError, match="no valid partition"):
        flush(data_redis, local_settings, lake)
    assert staged_count(data_redis, local_settings) == 1 and committed_files(lake) == []


def test_a_staged_entry_that_is_not_json_stops_the_flush(data_redis, local_settings: Settings):
    lake = open_lake(local_settings)
    data_redis.xadd(staging_key(local_settings), {"r": "not json"})
    with pytest.raises(LakeError, match="no JSON lake row"):
        flush(data_redis, local_settings, lake)
    assert staged_count(data_redis, local_settings) == 1 and lake.list("") == []
    assert not data_redis.exists(key(local_settings, "intent"), key(local_settings, "lock"))
