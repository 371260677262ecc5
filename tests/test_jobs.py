"""Jobs enqueued from outside: retain.client in a process without retain's task code, and
/v1/jobs over HTTP with a write key; bad requests are refused before anything is enqueued."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import requests

from retain.profiles.dirty import DirtyUsers
from retain.store.profiles import ProfileStore
from retain.store.redis import redis_client
from retain.tenancy.registry import TenantRegistry
from tests.harness import child_env, poll
from tests.ingest_helpers import message, post

CLIENT_SCRIPT = """
import json, sys
from retain.client import RetainClient, JobError
client = RetainClient(sys.argv[1], sys.argv[2])
try:
    client.submit("reindex", sys.argv[3])
except JobError as exc:
    refused = exc.field
job = client.rebuild(sys.argv[3], [sys.argv[4]])
result = job.wait(timeout=120)
loaded = sorted(m for m in sys.modules if m.startswith(("retain.tasks", "retain.worker", "retain.profiles")))
print(json.dumps({"refused": refused, "result": result, "state": job.state, "loaded": loaded}))
"""


def test_client_enqueues_by_name_without_task_code(worker, tenant, schema, settings) -> None:
    user = f"u-{uuid.uuid4().hex[:6]}"
    out = subprocess.run([sys.executable, "-c", CLIENT_SCRIPT, settings.broker_url, settings.result_backend,
                          tenant["id"], user], capture_output=True, text=True, env=child_env(settings), timeout=180)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["refused"] == "kind" and report["state"] == "SUCCESS"
    assert report["result"]["users"] == report["result"]["written"] == 1
    assert report["loaded"] == [], "the client imports none of the task code"
    assert ProfileStore(schema).get(tenant["id"], user)["model"] == "priors"


def test_jobs_over_http(api, worker, tenant, schema, settings) -> None:
    users = [f"h-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    assert post(api, "/v1/batch", tenant["write"], {"batch": [message(u, "Product Viewed") for u in users]}).ok
    client = redis_client(settings)
    jobs_before = len(list(client.scan_iter(f"{settings.redis_prefix}job:*")))
    url = f"{api}/v1/jobs"
    for body, field in (({"kind": "reindex"}, "kind"), ({"kind": "rebuild", "args": {"users": []}}, "args.users"),
                        ({"kind": "train", "args": {"holdout_days": "soon"}}, "args.holdout_days"),
                        ({"kind": "rebuild", "args": ["u1"]}, "args"), (["rebuild"], "body")):
        refused = requests.post(url, json=body, auth=(tenant["write"], ""), timeout=30)
        assert refused.status_code == 400 and refused.json()["error"]["field"] == field, (body, refused.text)
    assert len(list(client.scan_iter(f"{settings.redis_prefix}job:*"))) == jobs_before, "nothing was enqueued"
    assert requests.post(url, json={"kind": "backfill"}, auth=(tenant["read"], ""), timeout=30).status_code == 403

    # The API acknowledges before the worker has stored the events: wait until they are there.
    poll(lambda: all(list(schema.read("SELECT message_id FROM events_by_user WHERE tenant_id = ? AND user_id = ?",
                                      (tenant["id"], u))) for u in users), 60, "the events are stored")
    created = requests.post(url, json={"kind": "backfill"}, auth=(tenant["write"], ""), timeout=30)
    assert created.status_code == 202, created.text
    job = created.json()
    assert created.headers["Location"] == job["url"] == f"/v1/jobs/{job['id']}"
    done = poll(lambda: (r := requests.get(f"{api}{job['url']}", auth=(tenant["write"], ""), timeout=30).json())
                ["state"] == "SUCCESS" and r, 120, "the backfill job succeeds")
    assert done["kind"] == "backfill" and done["result"] == {"tenant": tenant["id"], "users": 3}
    assert DirtyUsers(client, settings.redis_prefix).pending(tenant["id"])["dirty"] == 3, "every user awaits a rebuild"
    _, other = TenantRegistry(schema).create(f"t-{uuid.uuid4().hex[:10]}")
    assert requests.get(f"{api}{job['url']}", auth=(other["write"], ""), timeout=30).status_code == 404
    client.close()
