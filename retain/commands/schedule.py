"""`retain schedule show`: what beat runs when, and what the running beat last sent."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import click
import redis
from celery.schedules import crontab, maybe_schedule

from retain.commands.output import json_option, report
from retain.config import Settings
from retain.worker.beatlock import Holder, Run, broker_redis, holder, last_runs
from retain.worker.schedule import beat_schedule, describe_when


@click.group("schedule")
def schedule_group() -> None:
    """The periodic tasks beat sends."""


def next_run(value, last: Run | None, now: datetime) -> datetime | None:
    """When a running beat fires an entry next: from its last run, or for a crontab from now (an
    interval entry that never ran starts counting when a beat starts)."""
    if last is None and not isinstance(value, crontab):
        return None
    every = maybe_schedule(value)
    moment = now + max(every.remaining_estimate(last.at if last else now), timedelta(0))
    return (moment + timedelta(microseconds=500_000)).replace(microsecond=0)


def entries(settings: Settings, runs: dict[str, Run], now: datetime, running: bool) -> list[dict]:
    """The schedule with each entry's last run; a next run only if a beat is there to send it."""
    shown = []
    for name, entry in beat_schedule(settings).items():
        last = runs.get(name)
        upcoming = next_run(entry["schedule"], last, now) if running else None
        shown.append({
            "name": name, "task": entry["task"], "queue": entry["options"].get("queue"),
            "when": describe_when(entry["schedule"]), "expires": entry["options"].get("expires"),
            "last_run": last.at.isoformat() if last else None, "runs": last.runs if last else 0,
            "sent_by": last.by.rsplit(":", 1)[0] if last else None,
            "next_run": upcoming.isoformat() if upcoming else None,
        })
    return shown


def _lock_text(lock: Holder | None, problem: str | None) -> str:
    if problem:
        return f"beat: state unknown ({problem})"
    if lock is None:
        return "beat: no beat holds the lock (none running, or the last one stopped)"
    return f"beat: {lock.instance} is sending (its lock expires in {lock.ttl_seconds:.0f} s unless renewed)"


def _text(rows: list[dict], lock: Holder | None, problem: str | None) -> str:
    def cell(value: str | None) -> str:
        return value[:19].replace("T", " ") if value else "-"

    header = f"{'NAME':20} {'TASK':34} {'QUEUE':12} {'WHEN':22} {'LAST RUN (UTC)':20} {'RUNS':>6}  NEXT RUN (UTC)"
    lines = [header] + [f"{r['name']:20} {r['task']:34} {r['queue'] or '-':12} {r['when']:22} "
                        f"{cell(r['last_run']):20} {r['runs']:>6}  {cell(r['next_run'])}" for r in rows]
    return "\n".join(lines + ["", _lock_text(lock, problem)])


@schedule_group.command("show")
@json_option
def show(as_json: bool) -> None:
    """Print every periodic task: what, where, when, and when it last ran."""
    settings = Settings.from_env()
    now = datetime.now(timezone.utc)
    lock, runs, problem = None, {}, None
    client = broker_redis(settings)
    try:
        lock, runs = holder(client, settings), last_runs(client, settings)
    except redis.RedisError as exc:
        # The schedule itself is configuration: show it even when the broker cannot say what ran.
        problem = f"broker Redis unreachable: {exc}"
    finally:
        client.close()
    rows = entries(settings, runs, now, running=lock is not None)
    document = {"entries": rows, "problem": problem,
                "beat": {"holder": lock.instance, "lock_ttl_seconds": lock.ttl_seconds} if lock else None}
    report(as_json, document, lambda: _text(rows, lock, problem))
