"""`retain flower`: a real Flower process on the real broker, its REST API and its authentication."""

from __future__ import annotations

import socket
import sys
import uuid

import pytest
import requests

from retain.config import QUEUES, Settings
from retain.flower import flower_argv
from retain.stack.process import ManagedProcess
from retain.store.redis import redis_client
from tests.harness import ROOT, child_env, free_port, poll, retain_process, run_cli

USER = "flower-admin"
# A comma and a colon: Flower's own command line would split this password into two credentials.
PASSWORD = f"s3cret,with:odd {uuid.uuid4().hex[:6]}"
AUTH = (USER, PASSWORD)
# A broker database of this module's own, for a Flower whose queues no worker drains.
ISOLATED_BROKER_DB = 4


def start_flower(settings: Settings, name: str, *args: str) -> tuple[ManagedProcess, str]:
    """A real `retain flower` process on a free port; returns once it answers."""
    proc = retain_process(settings, name)
    port = free_port()
    proc.spawn([sys.executable, "-m", "retain", "flower", "--host", "127.0.0.1", "--port", str(port), *args],
               env=child_env(settings), cwd=ROOT)
    url = f"http://127.0.0.1:{port}"

    def answers() -> str | None:
        if not proc.is_running():
            return "exited"
        return "up" if requests.get(f"{url}/healthcheck", timeout=1).status_code == 200 else None

    state = poll(answers, 60, f"Flower at {url} answers /healthcheck")
    assert state == "up", f"flower exited ({proc.exit_status()}):\n{proc.log_tail(30)}"
    return proc, url


@pytest.fixture(scope="module")
def flower(worker, settings: Settings):
    own = settings.replace(flower_user=USER, flower_password=PASSWORD)
    proc, url = start_flower(own, f"test-flower-{uuid.uuid4().hex[:6]}")
    yield {"url": url, "proc": proc}
    proc.stop(30)


@pytest.fixture
def worker_name(worker: ManagedProcess) -> str:
    return f"{worker.name}@{socket.gethostname()}"


def api(flower: dict, path: str, auth=AUTH) -> requests.Response:
    return requests.get(f"{flower['url']}{path}", auth=auth, timeout=10)


def wait_for_events(flower: dict, worker_name: str) -> None:
    """Until Flower has the worker's heartbeat events: its event receiver is then listening."""
    poll(lambda: api(flower, "/api/workers?status=1").json().get(worker_name) is True, 60,
         f"Flower receives events from {worker_name}")


def test_refuses_to_start_without_credentials(settings: Settings) -> None:
    out = run_cli(settings.replace(flower_user="", flower_password=""), "flower", "--port", str(free_port()), check=2)
    assert "RETAIN_FLOWER_USER" in out.stderr and "RETAIN_FLOWER_PASSWORD" in out.stderr, out.stderr
    assert "--insecure-no-auth" in out.stderr
    out = run_cli(settings.replace(flower_user=USER, flower_password=""), "flower", "--port", str(free_port()),
                  check=2)
    assert "RETAIN_FLOWER_PASSWORD not set" in out.stderr, out.stderr


@pytest.mark.parametrize("path", ["/api/workers", "/api/queues/length", f"/api/task/info/{uuid.uuid4()}"])
def test_api_answers_401_without_the_right_credentials(flower: dict, path: str) -> None:
    head, _, tail = PASSWORD.partition(",")
    for auth in (None, (USER, "wrong"), ("someone", PASSWORD), (USER, head), tuple(tail.split(":", 1))):
        response = api(flower, path, auth=auth)
        assert response.status_code == 401, (auth, response.status_code, response.text[:200])
    assert api(flower, "/api/workers").status_code == 200


def test_password_is_not_on_any_command_line(flower: dict) -> None:
    pid = flower["proc"].pid()
    assert pid is not None
    cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode()
    assert PASSWORD not in cmdline and USER not in cmdline


def test_lists_the_running_worker(flower: dict, worker_name: str) -> None:
    # refresh=1 has Flower inspect the workers again, as it otherwise does only when it starts.
    workers = poll(lambda: (api(flower, "/api/workers?refresh=1").json() or {}).get(worker_name), 60,
                   f"/api/workers lists {worker_name}")
    queues = {queue["name"] for queue in workers.get("active_queues", [])}
    assert queues == set(QUEUES)
    wait_for_events(flower, worker_name)


def test_shows_a_completed_task(flower: dict, worker_name: str) -> None:
    from retain.worker.app import app

    wait_for_events(flower, worker_name)
    token = uuid.uuid4().hex
    result = app.send_task("maintenance.probe", args=[token, 0])
    assert result.get(timeout=60)["token"] == token

    def succeeded() -> dict | None:
        response = api(flower, f"/api/task/info/{result.id}")
        return response.json() if response.status_code == 200 and response.json()["state"] == "SUCCESS" else None

    info = poll(succeeded, 60, f"/api/task/info/{result.id} shows the task SUCCESS")
    assert info["name"] == "maintenance.probe" and info["worker"] == worker_name
    assert token in info["result"]
    # task-sent (from this process), task-received and task-started all reached Flower.
    assert info["sent"] and info["received"] and info["started"]


def test_queue_lengths(flower: dict) -> None:
    lengths = api(flower, "/api/queues/length").json()["active_queues"]
    assert {queue["name"] for queue in lengths} == set(QUEUES)
    assert all(isinstance(queue["messages"], int) and queue["messages"] >= 0 for queue in lengths)


def test_insecure_no_auth_serves_without_credentials(stack, settings: Settings) -> None:
    from retain.worker.app import create_celery

    own = settings.replace(broker_url=f"{settings.broker_url.rsplit('/', 1)[0]}/{ISOLATED_BROKER_DB}",
                           flower_user="", flower_password="")
    broker = redis_client(own.replace(redis_url=own.broker_url))
    broker.flushdb()
    producer = create_celery(own)
    proc, url = start_flower(own, f"test-flower-open-{uuid.uuid4().hex[:6]}", "--insecure-no-auth")
    try:
        assert "without authentication" in proc.log_tail(50)
        for _ in range(3):
            producer.send_task("maintenance.probe", args=[uuid.uuid4().hex, 0])
        producer.send_task("profiles.backfill", args=["nobody"])

        def lengths() -> dict[str, int] | None:
            found = {q["name"]: q["messages"] for q in requests.get(f"{url}/api/queues/length", timeout=5).json()["active_queues"]}
            return found if found.get("maintenance") == 3 else None

        found = poll(lengths, 30, "/api/queues/length counts the 3 waiting maintenance tasks, without credentials")
        assert found == {"ingest": 0, "maintenance": 3, "profiles": 1, "train": 0}
        assert requests.get(f"{url}/api/workers", timeout=10).status_code == 200
    finally:
        proc.stop(30)
        producer.close()
        broker.flushdb()
        broker.close()


def test_flower_state_lives_under_home(settings: Settings) -> None:
    home = (settings.home / "flower").resolve()
    argv = flower_argv(settings, "127.0.0.1", 5555)
    assert f"--db={home / 'flower.db'}" in argv and "--persistent=False" in argv
    persistent = flower_argv(settings.replace(flower_persistent=True, flower_purge_offline_seconds=0), "h", 1)
    assert "--persistent=True" in persistent and any(a.startswith("--state_save_interval=") for a in persistent)
    assert not any(a.startswith("--purge_offline_workers") for a in persistent)


def test_config_show_masks_the_password(settings: Settings) -> None:
    shown = run_cli(settings.replace(flower_user=USER, flower_password=PASSWORD), "config", "show", "--json").stdout
    assert PASSWORD not in shown and '"RETAIN_FLOWER_PASSWORD": "********"' in shown
