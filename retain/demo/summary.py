"""The demo's closing summary, for a person: what ran, what came out, and where to look next."""

from __future__ import annotations

from typing import Any


def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}" if isinstance(value, float) else f"{value:,}"


def _profile_line(name: str, p: dict[str, Any]) -> str:
    hour = p.get("best_send_hour") or {}
    top = ", ".join(c.get("category", str(c)) if isinstance(c, dict) else str(c) for c in (p.get("top_categories") or [])[:2])
    return (f"  {name}: churn risk {p.get('churn_risk')}, P(return in {p.get('horizon_days')} d) "
            f"{_num(p.get('p_return_h'))}, value {_num(p.get('predicted_ltv'))}, best channel {p.get('best_channel')} "
            f"at {hour.get('hour', '-')}h ({hour.get('timezone', 'UTC')}), likes {top or '-'} [{p.get('model')} "
            f"{p.get('model_version')}]")


def render(s: dict[str, Any]) -> str:
    ingest, rebuild = s["ingest"], s["rebuild"]
    lines = ["", f"retain demo: done in {s['seconds']:.0f} s (stack up {s['stack_up_s']} s, keyspace {s['keyspace']})", "",
             f"{'TENANT':10} {'KIND':9} {'USERS':>6} {'EVENTS':>8} {'ACCEPTED':>9} {'IN LAKE':>8} {'PROFILES':>8}  MODEL"]
    for name, t in s["tenants"].items():
        m = t.get("model", {})
        lines.append(f"{name:10} {t['kind']:9} {t['users']:>6,} {t['events']:>8,} {t.get('accepted', 0):>9,} "
                     f"{t.get('in_lake', 0):>8,} {t.get('profiles', 0):>8,}  {m.get('version', '-')} {m.get('status', '')}, "
                     f"P(return) AUC {_num(m.get('p_return_auc'))}, visits error {_num(m.get('visits_aggregate_error'))}")
    lines += ["",
              f"Ingestion: {ingest['events']:,} events sent in {ingest['send_s']} s ({ingest['events_per_s']:,}/s), "
              f"stored and in the lake after {ingest['stored_s']} s.",
              f"Training: {s['train_s']} s. Profiles: rebuilt in {rebuild['seconds']} s on up to "
              f"{rebuild['peak_workers']} autoscaled profile worker(s) (max {rebuild['max_workers']}).",
              "", "A few profiles (GET /v1/profiles/<user_id>):"]
    lines += [_profile_line(name, p) for name, p in s["profiles"].items()]
    lines += ["", "Model reports:"]
    lines += [f"  {name}: {t['model']['report']}" for name, t in s["tenants"].items() if t.get("model")]
    flower = s["flower"]
    made = " (made up for this run; set RETAIN_FLOWER_USER/RETAIN_FLOWER_PASSWORD to choose)" if flower["made_up"] else ""
    lines += ["", "Where to look:",
              f"  API      {s['api']}   (OpenAPI: {s['api']}/openapi.json)",
              f"  Flower   {flower['url']}   user {flower['user']}, password {flower['password']}{made}",
              f"  logs     {s['logs']} (JSON lines)", "  metrics (Prometheus):"]
    lines += [f"    {who:17} {url}" for who, url in s["metrics"].items()]
    lines += ["", "Keys (HTTP Basic user name, empty password):"]
    lines += [f"  {name}: write {k['write']}   read {k['read']}" for name, k in s["keys"].items()]
    first = next(iter(s["profiles"]), None)
    if first:
        tenant, user = first.split("/", 1)
        lines += ["", f"Try: curl -u {s['keys'][tenant]['read']}: {s['api']}/v1/profiles/{user}"]
    return "\n".join(lines)
