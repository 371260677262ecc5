"""Model versions and the current pointer, on a local store and on S3 (moto)."""

from __future__ import annotations

import pytest

from retain.models.store import PUBLISHED, REJECTED, ModelStore, ModelStoreError, new_version


def _store(settings, url):
    return ModelStore(settings.replace(model_store_url=url))


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_promote_and_rollback(settings, tmp_path, backend, request) -> None:
    if backend == "s3":
        endpoint = request.getfixturevalue("moto_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        store = ModelStore(settings.replace(model_store_url=f"s3://{bucket}/models", aws_endpoint_url=endpoint))
    else:
        store = _store(settings, f"file://{tmp_path}/models")
    first, second, bad = new_version(), new_version(), new_version()
    store.save("acme", first, {"status": PUBLISHED, "params": {"r": 1.0}})
    store.save("acme", second, {"status": PUBLISHED, "params": {"r": 2.0}})
    store.save("acme", bad, {"status": REJECTED, "reason": "AUC fell from 0.80 to 0.60"})
    assert store.current("acme") is None
    store.promote("acme", first)
    store.promote("acme", second)
    assert store.current("acme") == second
    with pytest.raises(ModelStoreError, match="rejected, not published"):
        store.promote("acme", bad)
    assert store.rollback("acme") == first and store.current("acme") == first
    with pytest.raises(ModelStoreError, match="no earlier version"):
        store.rollback("acme")
    listed = {v["version"]: v for v in store.versions("acme")}
    assert set(listed) == {first, second, bad} and listed[first]["current"] and not listed[second]["current"]
    store.put_artifact("acme", first, "tables/users.parquet", b"PAR1")
    assert store.artifact("acme", first, "tables/users.parquet") == b"PAR1"
    with pytest.raises(ModelStoreError, match="no artifact"):
        store.artifact("acme", first, "report.html")
