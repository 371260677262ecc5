"""Moving staged lake rows from Redis into Parquet files, exactly once, whatever crashes when.

The ingest worker appends each committed event's row to the stream ``{prefix}lake:staging``. A
flush, under a lock so that one runs at a time:

1. takes the range to move: the one in ``{prefix}lake:intent`` if a previous flush died with it,
   else up to ``max_events`` entries after ``{prefix}lake:committed``, recorded as the intent
   before anything is written;
2. writes one Parquet file per (tenant, date, hour), named after the range, so redoing a range
   overwrites the same files with the same rows;
3. writes the range's manifest, last: readers trust only files a manifest lists, so files of a
   flush that died before this step are invisible until the rerun lists them;
4. in one Lua script, and only while still holding the lock: moves the committed pointer, trims
   the stream up to the range's end and deletes the intent.

A rerun after any crash repeats the unfinished steps of the same range; a flush that lost its
lock (it stalled past the lock's expiry) cannot commit, and what it wrote is identical to what
its successor wrote.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import redis

from retain.config import Settings
from retain.lake.base import Lake, LakeError
from retain.lake.parquet import arrow_schema, read_parquet, rows_to_parquet

# Long enough for one file's write; the holder renews it before each write, so a dead flusher
# blocks the next one for at most this long.
LOCK_TTL_MS = 120_000
MANIFESTS = "manifests/"
SKIP_LOCKED = "another flush holds the lock"
SKIP_EMPTY = "nothing staged"

_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS: lock, intent. ARGV: token, intent JSON.
_RECORD = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""
# KEYS: lock, intent, committed, stream. ARGV: token, intent JSON, last id, first id kept.
_COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return -1 end
redis.call('SET', KEYS[3], ARGV[3])
redis.call('XTRIM', KEYS[4], 'MINID', ARGV[4])
redis.call('DEL', KEYS[2])
return 1
"""


@dataclass
class FlushReport:
    rows: int = 0
    files: list[str] = field(default_factory=list)
    manifest: str | None = None
    skipped: str | None = None
    first: str | None = None
    last: str | None = None
    resumed: bool = False  # finished a range a previous flush had started

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for a Celery task's result."""
        return asdict(self)


@dataclass(frozen=True)
class _Intent:
    first: str
    last: str
    rows: int

    def to_json(self) -> str:
        return json.dumps({"first": self.first, "last": self.last, "rows": self.rows}, separators=(",", ":"))


def _key(settings: Settings, name: str) -> str:
    return f"{settings.redis_prefix}lake:{name}"


def staging_key(settings: Settings) -> str:
    return _key(settings, "staging")


def staged_count(client: redis.Redis, settings: Settings) -> int:
    """How many rows wait in the staging stream (including a range being flushed)."""
    return int(client.xlen(staging_key(settings)))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _safe(stream_id: str) -> str:
    return stream_id.replace("-", "_")


def manifest_path(first: str, last: str) -> str:
    return f"{MANIFESTS}{_safe(first)}-{_safe(last)}.json"


class _Lock:
    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client, self.key, self.token = client, key, secrets.token_hex(16)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def acquire(self) -> bool:
        return bool(self.client.set(self.key, self.token, nx=True, px=LOCK_TTL_MS))

    def renew(self) -> None:
        if not self._renew(keys=[self.key], args=[self.token, LOCK_TTL_MS]):
            raise LakeError("the lake flush lost its lock (stalled past its expiry); another flush took over")

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.token])


def _load_intent(client: redis.Redis, settings: Settings) -> _Intent | None:
    raw = client.get(_key(settings, "intent"))
    if raw is None:
        return None
    try:
        doc = json.loads(_text(raw))
        return _Intent(str(doc["first"]), str(doc["last"]), int(doc["rows"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise LakeError(f"unreadable flush intent in {_key(settings, 'intent')}: {raw!r}") from exc


def _entries(raw: list) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for stream_id, fields in raw:
        sid = _text(stream_id)
        row = fields.get("r", fields.get(b"r"))
        try:
            out.append((sid, json.loads(_text(row))))
        except (ValueError, TypeError) as exc:
            raise LakeError(f"staged entry {sid} holds no JSON lake row in field 'r'") from exc
    return out


def _read_next(client: redis.Redis, settings: Settings, limit: int) -> list[tuple[str, dict[str, Any]]]:
    committed = client.get(_key(settings, "committed"))
    # Exclusive start: entries up to the pointer are in the lake even if a trim was lost.
    start = f"({_text(committed)}" if committed else "-"
    return _entries(client.xrange(staging_key(settings), min=start, max="+", count=limit))


def _partition(stream_id: str, row: dict[str, Any]) -> tuple[str, str, int]:
    tenant, date, hour = row.get("tenant_id"), row.get("date"), row.get("hour")
    if not (isinstance(tenant, str) and _TENANT.match(tenant) and isinstance(date, str) and _DATE.match(date)
            and isinstance(hour, int) and not isinstance(hour, bool) and 0 <= hour <= 23):
        raise LakeError(f"staged entry {stream_id} has no valid partition: tenant_id={tenant!r} "
                        f"date={date!r} hour={hour!r}")
    return tenant, date, hour


def _group(entries: list[tuple[str, dict[str, Any]]]) -> dict[tuple[str, str, int], list[dict[str, Any]]]:
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for stream_id, row in entries:
        groups.setdefault(_partition(stream_id, row), []).append(row)
    return groups


def file_path(tenant: str, date: str, hour: int, first: str, last: str) -> str:
    return f"events/tenant={tenant}/date={date}/hour={hour:02d}/part-{_safe(first)}-{_safe(last)}.parquet"


def _write_files(lake: Lake, intent: _Intent, groups: dict, lock: _Lock) -> list[dict[str, Any]]:
    listed = []
    for (tenant, date, hour), rows in sorted(groups.items()):
        path = file_path(tenant, date, hour, intent.first, intent.last)
        data = rows_to_parquet(rows)
        lock.renew()
        lake.put(path, data)
        listed.append({"path": path, "rows": len(rows), "tenant": tenant, "date": date, "hour": hour})
    return listed


def _write_manifest(lake: Lake, path: str, manifest: dict[str, Any]) -> None:
    lake.put(path, json.dumps(manifest, indent=1, sort_keys=True).encode())


def _commit(client: redis.Redis, settings: Settings, lock: _Lock, intent: _Intent) -> None:
    ms, seq = (int(part) for part in intent.last.split("-"))
    keep_from = f"{ms}-{seq + 1}"  # MINID keeps ids >= this: everything after the range
    keys = [lock.key, _key(settings, "intent"), _key(settings, "committed"), staging_key(settings)]
    done = client.register_script(_COMMIT)(keys=keys, args=[lock.token, intent.to_json(), intent.last, keep_from])
    if done == 0:
        raise LakeError("the lake flush lost its lock before committing; another flush took over")
    if done == -1:
        raise LakeError(f"the flush intent changed under range {intent.first}..{intent.last}")


def flush(client: redis.Redis, settings: Settings, lake: Lake, max_events: int | None = None) -> FlushReport:
    """Move up to ``max_events`` staged rows (default ``settings.lake_flush_events``) into the lake."""
    limit = settings.lake_flush_events if max_events is None else max_events
    if limit <= 0:
        raise LakeError(f"max_events must be positive, got {limit}")
    lock = _Lock(client, _key(settings, "lock"))
    if not lock.acquire():
        return FlushReport(skipped=SKIP_LOCKED)
    try:
        intent = _load_intent(client, settings)
        resumed = intent is not None
        if intent is not None:
            entries = _entries(client.xrange(staging_key(settings), min=intent.first, max=intent.last))
            if len(entries) != intent.rows:
                raise LakeError(f"staged range {intent.first}..{intent.last} holds {len(entries)} rows, its "
                                f"intent says {intent.rows}: the staging stream lost entries; inspect before retrying")
        else:
            entries = _read_next(client, settings, limit)
            if not entries:
                return FlushReport(skipped=SKIP_EMPTY)
            intent = _Intent(entries[0][0], entries[-1][0], len(entries))
            if not client.register_script(_RECORD)(keys=[lock.key, _key(settings, "intent")],
                                                   args=[lock.token, intent.to_json()]):
                raise LakeError("the lake flush lost its lock before starting; another flush took over")

        manifest = manifest_path(intent.first, intent.last)
        if resumed and lake.exists(manifest):
            # The previous flush got as far as the manifest: only the commit is missing.
            files = [item["path"] for item in _load_manifest(lake, manifest)["files"]]
        else:
            listed = _write_files(lake, intent, _group(entries), lock)
            files = [item["path"] for item in listed]
            lock.renew()
            _write_manifest(lake, manifest, {
                "format": 1, "stream": {"first": intent.first, "last": intent.last}, "rows": intent.rows,
                "tenants": sorted({item["tenant"] for item in listed}),
                "dates": sorted({item["date"] for item in listed}), "files": listed,
            })
        _commit(client, settings, lock, intent)
        return FlushReport(rows=intent.rows, files=files, manifest=manifest, first=intent.first,
                           last=intent.last, resumed=resumed)
    finally:
        lock.release()


def _load_manifest(lake: Lake, path: str) -> dict[str, Any]:
    try:
        doc = json.loads(lake.get(path))
        doc["files"]  # noqa: B018 - a manifest without a file list is as bad as unreadable JSON
        return doc
    except (ValueError, KeyError, TypeError) as exc:
        raise LakeError(f"unreadable manifest {path} in {lake.url}") from exc


def committed_files(lake: Lake, tenant: str | None = None, start_date: str | None = None,
                    end_date: str | None = None) -> list[str]:
    """Files the manifests list, for ``tenant`` and dates in [start_date, end_date] when given."""
    found = set()
    for path in lake.list(MANIFESTS):
        if not path.endswith(".json"):
            continue
        for item in _load_manifest(lake, path)["files"]:
            if tenant is not None and item["tenant"] != tenant:
                continue
            if (start_date and item["date"] < start_date) or (end_date and item["date"] > end_date):
                continue
            found.add(item["path"])
    return sorted(found)


def read_events(lake: Lake, tenant: str, start_date: str | None = None, end_date: str | None = None) -> pa.Table:
    """All committed rows of ``tenant`` in the date range, as one table (for tests and small jobs)."""
    tables = [read_parquet(lake.get(path)) for path in committed_files(lake, tenant, start_date, end_date)]
    if not tables:
        return arrow_schema().empty_table()
    # Files written before a column was added lack it; it reads as null.
    return pa.concat_tables(tables, promote_options="default")
