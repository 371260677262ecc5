"""The API served by a real gunicorn process."""

from __future__ import annotations

import requests


def test_healthz_and_readyz(api: str) -> None:
    assert requests.get(f"{api}/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{api}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"redis": "ok", "cassandra": "ok"}
    assert ready.json()["datacenter"] == "dc1"


def test_errors_are_json(api: str) -> None:
    missing = requests.get(f"{api}/no/such/route", timeout=5)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("application/json")
    assert missing.json()["error"]["code"] == "not_found"
    wrong_method = requests.delete(f"{api}/healthz", timeout=5)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["status"] == 405
    assert "GET" in wrong_method.headers["Allow"]
