"""The profile lookups of a real gunicorn API: read-through cache, ETags, field selection, batch
gets, tenant isolation, and one Cassandra read for a stampede of misses."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from retain.profiles.activity import activity
from retain.profiles.cache import ProfileCache
from retain.profiles.model import ProfileModel
from retain.profiles.scoring import score
from retain.store.profiles import ProfileStore
from retain.store.redis import redis_client
from retain.tenancy.config import TenantConfig
from retain.tenancy.registry import TenantRegistry
from tests.harness import poll

NOW = int(time.time() * 1000)


def rebuilt(schema, settings, tenant: str, *users: str, cache: bool = False,
            seen: int = NOW - 86_400_000) -> list[dict]:
    """Profiles as a rebuild writes them (scored with the priors), to Cassandra and optionally the
    cache, for users last seen at ``seen`` (ms): a later one makes a newer version."""
    model = ProfileModel.priors(tenant, TenantConfig())
    rows = {"type": ["page"], "name": [None], "event_time": [seen], "received_at": [seen], "visit": [True]}
    profiles = score(model, [activity(u, rows, NOW) for u in users])
    ProfileStore(schema).write(profiles)
    if cache:
        client = redis_client(settings)
        ProfileCache(client, settings.redis_prefix, 3600, 30).put(profiles)
        client.close()
    return profiles


def get(api: str, key: str, path: str, **headers) -> requests.Response:
    return requests.get(f"{api}{path}", auth=(key, ""), headers=headers, timeout=30)


def test_lookup_etag_fields_and_errors(api, tenant, schema, settings) -> None:
    user = f"u-{uuid.uuid4().hex[:6]}"
    [profile] = rebuilt(schema, settings, tenant["id"], user)
    first = get(api, tenant["read"], f"/v1/profiles/{user}")
    assert first.status_code == 200, first.text
    assert first.json() == profile and first.headers["X-Retain-Source"] == "store"
    assert first.headers["Cache-Control"] == "private, max-age=60" and first.headers["ETag"]
    again = get(api, tenant["read"], f"/v1/profiles/{user}", **{"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.content == b"" and again.headers["X-Retain-Source"] == "cache"
    some = get(api, tenant["read"], f"/v1/profiles/{user}?fields=p_return_h,churn_risk")
    assert some.json() == {k: profile[k] for k in ("user_id", "version", "p_return_h", "churn_risk")}
    assert some.headers["ETag"] != first.headers["ETag"], "a field selection is a different representation"
    bad = get(api, tenant["read"], f"/v1/profiles/{user}?fields=p_return_h,shoe_size")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "fields" and "shoe_size" in bad.text
    missing = get(api, tenant["read"], "/v1/profiles/nobody")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert get(api, tenant["write"], f"/v1/profiles/{user}").status_code == 403
    assert requests.get(f"{api}/v1/profiles/{user}", timeout=30).status_code == 401
    # A user looked up before their first rebuild: the remembered miss gives way to the profile.
    rebuilt(schema, settings, tenant["id"], "nobody", cache=True)
    assert get(api, tenant["read"], "/v1/profiles/nobody").status_code == 200


def test_batch_get(api, tenant, schema, settings) -> None:
    users = [f"b-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    rebuilt(schema, settings, tenant["id"], *users)
    url = f"{api}/v1/profiles:batchGet"
    answer = requests.post(url, json={"ids": [*users, "ghost", users[0]], "fields": ["p_alive"]},
                           auth=(tenant["read"], ""), timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body["profiles"]) == set(users) and body["missing"] == ["ghost"]
    assert set(body["profiles"][users[0]]) == {"user_id", "version", "p_alive"}
    for bad, field in (({"ids": [f"u{i}" for i in range(101)]}, "ids"), ({"ids": "u1"}, "ids"), ({"ids": [""]}, "ids"),
                       ([], "body"), ({"ids": ["u1"], "fields": ["nope"]}, "fields")):
        refused = requests.post(url, json=bad, auth=(tenant["read"], ""), timeout=30)
        assert refused.status_code == 400 and refused.json()["error"]["field"] == field, (bad, refused.text)


def test_a_read_key_sees_only_its_tenants_profiles(api, tenant, schema, settings) -> None:
    other, keys = TenantRegistry(schema).create(f"t-{uuid.uuid4().hex[:10]}")
    shared, only_a = "same-id", f"a-{uuid.uuid4().hex[:6]}"
    rebuilt(schema, settings, tenant["id"], shared, only_a, cache=True)
    for _ in range(6):  # tenant A's lookups: the API's processes then hold A's profiles in memory
        for user in (shared, only_a):
            assert get(api, tenant["read"], f"/v1/profiles/{user}").status_code == 200
    for user in (shared, only_a):
        assert get(api, keys["read"], f"/v1/profiles/{user}").status_code == 404, "tenant B must not see A's users"
    body = requests.post(f"{api}/v1/profiles:batchGet", json={"ids": [shared, only_a]}, auth=(keys["read"], ""),
                         timeout=30).json()
    assert body == {"profiles": {}, "missing": [shared, only_a]}
    assert get(api, tenant["read"], f"/v1/profiles/{shared}").json()["tenant_id"] == tenant["id"]


def test_a_newer_profile_replaces_the_one_lookups_were_answered_from(api, tenant, schema, settings) -> None:
    user = f"n-{uuid.uuid4().hex[:6]}"
    [old] = rebuilt(schema, settings, tenant["id"], user, cache=True)
    answers = [get(api, tenant["read"], f"/v1/profiles/{user}") for _ in range(10)]  # held in memory from here
    assert {(a.status_code, a.headers["ETag"], a.content) for a in answers} == {(200, answers[0].headers["ETag"],
                                                                                 answers[0].content)}
    [new] = rebuilt(schema, settings, tenant["id"], user, cache=True, seen=NOW - 3_600_000)
    assert new["version"] > old["version"]
    poll(lambda: get(api, tenant["read"], f"/v1/profiles/{user}").json()["version"] == new["version"], 10,
         "the newer profile served")
    # Every API process got the change from Redis: none still answers the old profile from memory.
    assert {get(api, tenant["read"], f"/v1/profiles/{user}").json()["version"] for _ in range(20)} == {new["version"]}


def test_a_stampede_of_misses_reads_cassandra_once(api, tenant, schema, settings) -> None:
    user = f"hot-{uuid.uuid4().hex[:6]}"
    rebuilt(schema, settings, tenant["id"], user)  # in Cassandra only: every request starts with a miss

    def lookup(_: int) -> str:
        response = get(api, tenant["read"], f"/v1/profiles/{user}")
        assert response.status_code == 200, response.text
        return response.headers["X-Retain-Source"]

    with ThreadPoolExecutor(64) as pool:
        sources = list(pool.map(lookup, range(300)))
    assert sources.count("store") == 1, f"{sources.count('store')} of 300 concurrent lookups read Cassandra"
