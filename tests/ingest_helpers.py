"""Helpers for ingestion tests: posting Segment batches and reading what was stored."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import datetime, timedelta, timezone

import requests

from retain.store.cassandra import CassandraStore


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def message(user: str, name: str = "Article Read", minutes_ago: float = 1, **extra) -> dict:
    moment = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
    return {"type": "track", "event": name, "userId": user, "messageId": str(uuid.uuid4()),
            "timestamp": iso(moment), "properties": {"category": "news"}, **extra}


def post(api: str, path: str, key: str, body, gz: bool = False, content_type: str = "application/json",
         timeout: float = 30) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": content_type}
    if gz:
        data, headers["Content-Encoding"] = gzip.compress(data), "gzip"
    return requests.post(f"{api}{path}", data=data, headers=headers, auth=(key, ""), timeout=timeout)


def stored(store: CassandraStore, tenant: str, user: str) -> list:
    return list(store.read("SELECT message_id, event_time, name FROM events_by_user WHERE tenant_id = ? AND user_id = ?",
                           (tenant, user)))
