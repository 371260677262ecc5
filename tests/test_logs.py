"""Structured logs: one JSON object per line, and a request's id carried from the API into the
worker's lines about the tasks it enqueued (real gunicorn API, real Celery worker)."""

from __future__ import annotations

import io
import json
import logging
import uuid
from pathlib import Path

import pytest
import requests

from retain import logs
from retain.config import Settings
from tests.harness import poll, retain_process
from tests.ingest_helpers import message, post


def json_lines(path: Path) -> list[dict]:
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue  # a line still being written
    return found


@pytest.fixture(autouse=True)
def root_logger():
    """The tests configure the root logger of this process: put it back as it was."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def capture(log_format: str, process: str = "api") -> io.StringIO:
    stream = io.StringIO()
    logs.configure(Settings.from_env({}, log_format=log_format), process, stream=stream)
    return stream


def test_json_lines_carry_context_extras_and_tracebacks() -> None:
    capture("json")
    stream = capture("json")  # configured twice (as Celery may in a pool process): still one handler
    log = logging.getLogger("retain.test")
    token = logs.request_id.set("req-1")
    try:
        log.info("served %s", "u1", extra={"status": 200, "where": Path("/tmp")})
        try:
            raise ValueError("bad\nvalue")
        except ValueError:
            log.exception("it failed")
    finally:
        logs.request_id.reset(token)
    log.warning("no request")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3, lines
    first, failed, last = (json.loads(line) for line in lines)
    assert first["message"] == "served u1" and first["level"] == "INFO" and first["logger"] == "retain.test"
    assert first["request_id"] == "req-1" and first["status"] == 200 and first["where"] == "/tmp"
    assert first["process"] == "api" and first["ts"].endswith("Z") and "T" in first["ts"]
    assert "ValueError: bad\nvalue" in failed["exc"] and failed["request_id"] == "req-1"
    assert "request_id" not in last and "task_id" not in last
    assert sum(getattr(h, "_retain", False) for h in logging.getLogger().handlers) == 1


def test_text_format_for_people() -> None:
    stream = capture("text", "worker")
    token = logs.task_id.set("t-9")
    try:
        logging.getLogger("retain.test").warning("slow", extra={"seconds": 3})
    finally:
        logs.task_id.reset(token)
    line = stream.getvalue().strip()
    assert " WARNING " in line and "[worker " in line and line.endswith("slow task_id=t-9 seconds=3"), line


def test_client_request_ids_are_checked() -> None:
    assert logs.accept_request_id("abc-123:x/y=") == "abc-123:x/y="
    for hostile in ("", "a b", "x" * 129, "id\nforged: 1", "-starts-with-dash", None):
        replaced = logs.accept_request_id(hostile)
        assert replaced != hostile and len(replaced) == 32 and logs.valid_request_id(replaced)


def test_request_id_travels_from_api_to_worker(api, worker, tenant, settings) -> None:
    rid = f"req-{uuid.uuid4().hex}"
    answer = post(api, "/v1/batch", tenant["write"], {"batch": [message("u-logs")]}, timeout=30)
    assert answer.status_code == 200 and logs.valid_request_id(answer.headers["X-Request-Id"])
    answer = requests.post(f"{api}/v1/batch", json={"batch": [message("u-logs")]}, auth=(tenant["write"], ""),
                           headers={"X-Request-Id": rid}, timeout=30)
    assert answer.status_code == 200 and answer.headers["X-Request-Id"] == rid
    job = requests.post(f"{api}/v1/jobs", json={"kind": "rebuild", "args": {"users": ["u-logs"]}},
                        auth=(tenant["write"], ""), headers={"X-Request-Id": rid}, timeout=30)
    assert job.status_code == 202, job.text
    job_id = job.json()["id"]
    # Reads are logged when refused or slow, not when they succeed (RETAIN_API_LOG_READS=false).
    assert requests.get(f"{api}/healthz", headers={"X-Request-Id": rid}, timeout=30).status_code == 200
    assert requests.get(f"{api}/v1/profiles/u-logs", auth=("not-a-key", ""), headers={"X-Request-Id": rid},
                        timeout=30).status_code == 401

    def worker_lines(task: str) -> list[dict]:
        return [line for line in json_lines(worker.log_file)
                if line.get("request_id") == rid and line.get("task") == task and line.get("task_id")]

    ingest = poll(lambda: worker_lines("ingest.batch"), 60, f"the worker logs the ingest task of request {rid}")
    assert all(line["process"] == "worker" and line["task_id"] in line["message"] for line in ingest
               if line["logger"] == "celery.app.trace")
    rebuild = poll(lambda: worker_lines("profiles.rebuild"), 60, f"the worker logs the rebuild job of {rid}")
    assert {line["task_id"] for line in rebuild} == {job_id}, "the job's id is the task id in the worker's logs"

    api_log = retain_process(settings, "test-api").log_file
    access = [line for line in json_lines(api_log) if line.get("request_id") == rid and line["logger"] == "retain.access"]
    assert sorted((line["route"], line["status"]) for line in access) == [
        ("/v1/batch", 200), ("/v1/jobs", 202), ("/v1/profiles/<user_id>", 401)]
