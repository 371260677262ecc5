"""The training report: one self-contained HTML file, and the API that serves it to its tenant only."""

from __future__ import annotations

import base64
import re
import uuid

import numpy as np
import pytest
import requests

from retain.models import bgnbd
from retain.models.report import REPORT_ARTIFACT, ReportData, predicted_cumulative, render_report, write_report
from retain.models.store import PUBLISHED, ModelStore, new_version

PARAMS = bgnbd.BGNBDParams(0.9, 8.0, 0.8, 2.5)
PLOT_SECTIONS = ("Tracking", "P(return) calibration", "Feature importance", "Action impact", "Channels", "Send time")


def full_data(tenant: str = "t-report", version: str = "v1") -> ReportData:
    rng = np.random.default_rng(7)
    days = np.arange(120)
    predicted = predicted_cumulative(PARAMS, rng.integers(0, 60, 2000), days)
    calibration = [{"decile": i + 1, "users": 200, "predicted": (i + 0.5) / 10, "observed": (i + 0.4) / 10}
                   for i in range(10)]
    info = {"version": version, "status": PUBLISHED, "created_at": "2024-05-01T00:00:00+00:00",
            "cutoff": "2024-03-01", "holdout_days": 60, "horizon_days": 30, "params": {"bgnbd": PARAMS.to_dict()},
            "metrics": {"users": 2000, "p_return_auc": 0.81, "p_return_calibration": calibration,
                        "visits_per_user": {"mae": 1.3, "rmse": 2.1, "aggregate_error": 0.02}},
            "not_fitted": {"gammagamma": "Gamma-Gamma needs at least 2 buyers"}, "reasons": []}
    return ReportData.from_version(
        tenant, info, tracking_days=days, tracking_actual=predicted * rng.normal(1, 0.02, days.size),
        tracking_predicted=predicted, tracking_cutoff_day=60,
        # Tenant-supplied names: markup, a broken mathtext formula, a very long name.
        feature_importance={"sessions": 0.12, "purchases": 0.05, "<script>alert(1)</script>": 0.01,
                            r"$\frac$ off": 0.02, "x" * 200: 0.03},
        label_entropy_bits=0.97,
        action_impacts={"signup": (0.1, 0.05, 0.15), "complain": (-0.08, -0.12, -0.03), "browse": (0.01, -0.02, 0.04),
                        "never compared": (float("nan"), float("nan"), float("nan"))},
        channel_prior_rates={"email": 0.1, "push": 0.05}, best_channel_users={"email": 300, "push": 700},
        send_time_share=rng.random(168))


def sections(html: str) -> dict[str, str]:
    return dict(re.findall(r"<section><h2>(.*?)</h2>(.*?)</section>", html, re.S))


def assert_self_contained(html: str) -> None:
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I), "external resource"
    assert "<script" not in html.lower(), "no JavaScript, and tenant-supplied names are escaped"
    assert "<link" not in html.lower() and "@import" not in html


def embedded_pngs(section: str) -> list[bytes]:
    return [base64.b64decode(b, validate=True) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', section)]


def test_full_report_embeds_every_plot() -> None:
    html = render_report(full_data())
    assert html.startswith("<!DOCTYPE html>")
    assert_self_contained(html)
    found = sections(html)
    for name in PLOT_SECTIONS:
        title = next(t for t in found if t.startswith(name))
        images = embedded_pngs(found[title])
        assert len(images) == 1 and images[0].startswith(b"\x89PNG\r\n\x1a\n"), title
        assert "not available" not in found[title]
    assert "1 more without an estimate" in found["Action impact"], "an action with no estimate is mentioned"
    assert "&lt;script&gt;" not in html, "names are drawn into the PNG, never written raw"
    assert "gammagamma not fitted: Gamma-Gamma needs at least 2 buyers" in found["Run"]
    assert "<h3>bgnbd</h3>" in found["Parameters"] and "0.9" in found["Parameters"]
    assert "0.81" in found["Holdout evaluation"] and "rmse" in found["Holdout evaluation"]


def test_minimal_report_says_why_each_section_is_missing() -> None:
    html = render_report(ReportData("t-<b>", "v2", "failed", not_fitted={"bgnbd": "no repeat activity"},
                                    reasons=["retention model not fitted: no repeat activity"]))
    assert_self_contained(html)
    assert "data:image" not in html
    assert "t-&lt;b&gt;" in html and "t-<b>" not in html
    found = sections(html)
    assert found["Tracking: cumulative repeat active days"] == \
        "<p class=na>not available: bgnbd not fitted: no repeat activity</p>"
    assert "bgnbd not fitted: no repeat activity" in found["P(return) calibration"]
    assert "not available: no feature importance was computed" in found["Feature importance"]
    for name in ("Parameters", "Holdout evaluation", *PLOT_SECTIONS[3:]):
        title = next(t for t in found if t.startswith(name))
        assert "not available: " in found[title] and found[title].count("not available: ") == 1, title


def test_bad_inputs_fail_loudly() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        ReportData("t", "v", "published", tracking_days=[0, 1, 2], tracking_actual=[0, 1], tracking_predicted=[0, 1, 2])
    with pytest.raises(ValueError, match="send_time_share"):
        ReportData("t", "v", "published", send_time_share=np.ones((24, 7)))
    with pytest.raises(ValueError, match="not t-other"):
        write_report(None, "t-other", "v1", full_data())  # type: ignore[arg-type]


def test_predicted_cumulative_sums_cohorts() -> None:
    curve = bgnbd.expected_unconditional(PARAMS, np.arange(10.0))
    got = predicted_cumulative(PARAMS, [0, 0, 3], np.arange(10))
    expected = 2 * curve + np.concatenate([np.zeros(3), curve[:7]])
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.fixture
def other_tenant(schema):
    from retain.tenancy.registry import TenantRegistry

    created, keys = TenantRegistry(schema).create(f"t-{uuid.uuid4().hex[:10]}")
    return {"id": created.tenant_id, "write": keys["write"], "read": keys["read"]}


def test_api_serves_the_report_to_its_tenant_only(api, tenant, other_tenant, settings) -> None:
    store = ModelStore(settings)
    version = new_version()
    data = full_data(tenant["id"], version)
    store.save(tenant["id"], version, {"status": PUBLISHED, "created_at": data.created_at, "metrics": data.metrics})
    store.promote(tenant["id"], version)
    path = write_report(store, tenant["id"], version, data)
    assert path.endswith(f"/{version}/{REPORT_ARTIFACT}")
    url = f"{api}/v1/models/{version}/report"

    mine = requests.get(url, auth=(tenant["read"], ""), timeout=30)
    assert mine.status_code == 200, mine.text[:300]
    assert mine.headers["Content-Type"] == "text/html; charset=utf-8"
    assert mine.text == store.artifact(tenant["id"], version, REPORT_ARTIFACT).decode()
    assert "default-src 'none'" in mine.headers["Content-Security-Policy"]

    theirs = requests.get(url, auth=(other_tenant["read"], ""), timeout=30)
    assert theirs.status_code == 404 and version in theirs.json()["error"]["message"]
    assert requests.get(url, auth=(tenant["write"], ""), timeout=30).status_code == 403
    assert requests.get(url, timeout=30).status_code == 401
    for unknown in ("v20000101T000000Z-abcdef", "%2E%2E", ".hidden", "a%2Fb"):
        missing = requests.get(f"{api}/v1/models/{unknown}/report", auth=(tenant["read"], ""), timeout=30)
        assert missing.status_code == 404 and missing.headers["Content-Type"].startswith("application/json")
        assert missing.json()["error"]["status"] == 404

    unknown = requests.get(f"{api}/v1/models/v20000101T000000Z-abcdef/report", auth=(tenant["read"], ""), timeout=30)
    assert "v20000101T000000Z-abcdef" in unknown.json()["error"]["message"]

    # A version without a report says so.
    bare = new_version() + "-bare"
    store.save(tenant["id"], bare, {"status": "rejected", "created_at": data.created_at})
    no_report = requests.get(f"{api}/v1/models/{bare}/report", auth=(tenant["read"], ""), timeout=30)
    assert no_report.status_code == 404 and "has no report" in no_report.json()["error"]["message"]

    listing = requests.get(f"{api}/v1/models", auth=(tenant["read"], ""), timeout=30)
    assert listing.status_code == 200
    body = listing.json()
    assert body["current"] == version and body["count"] == 2
    by_version = {v["version"]: v for v in body["versions"]}
    assert by_version[version]["current"] and by_version[version]["status"] == PUBLISHED
    assert by_version[version]["metrics"] == {"users": 2000, "p_return_auc": 0.81}
    assert not by_version[bare]["current"] and by_version[bare]["metrics"] == {}
    assert requests.get(f"{api}/v1/models", auth=(other_tenant["read"], ""), timeout=30).json()["versions"] == []


def test_model_routes_are_documented() -> None:
    from retain.webapi import create_app
    from retain.webapi.openapi import document

    paths = document()["paths"]
    from retain.models import report
    from retain.webapi import models

    assert models.REPORT_ARTIFACT == report.REPORT_ARTIFACT
    rules = [r for r in create_app().url_map.iter_rules() if r.rule.startswith("/v1/models")]
    assert len(rules) == 2
    for rule in rules:
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)  # Flask's <name> is OpenAPI's {name}
        assert set(paths[path]) == {m.lower() for m in rule.methods - {"HEAD", "OPTIONS"}}, rule.rule
