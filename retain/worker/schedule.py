"""What beat runs when. One place for every periodic task.

Only one beat sends: every `retain beat` runs retain.worker.beatlock.LockedScheduler, so a second
instance is a standby, not a second sender. Tasks are sent by name, so this module needs none of
the task modules (the daily repair lives with the maintenance tasks).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery.schedules import crontab, schedule as interval

from retain.config import Settings

DAILY_EXPIRES = 12 * 3600  # a daily job that waited half a day for a worker is better skipped than late


def beat_schedule(settings: Settings) -> dict:
    return {
        # Staged rows reach the lake at least this often, however few there are.
        "lake-flush": {"task": "ingest.flush_lake", "schedule": settings.lake_flush_seconds,
                       "options": {"queue": "ingest", "expires": settings.lake_flush_seconds}},
        # Accepted batches the broker lost in a crash are sent again (the ledger drops duplicates).
        "ingest-redeliver": {"task": "ingest.redeliver", "schedule": 60.0, "options": {"queue": "ingest", "expires": 60}},
        # Users quiet for the debounce (or busy for the maximum delay) become rebuild batches.
        "profiles-sweep": {"task": "ingest.sweep_dirty", "schedule": settings.profile_sweep_seconds,
                           "options": {"queue": "ingest", "expires": settings.profile_sweep_seconds}},
        # Every tenant's models, trained and evaluated on the data up to the day before.
        "train-nightly": {"task": "train.nightly", "schedule": crontab(hour=2, minute=0),
                          "options": {"queue": "train", "expires": 3600}},
        # Anti-entropy repair of the keyspace, after training has stopped writing model versions.
        "repair-daily": {"task": "maintenance.repair", "schedule": crontab(hour=3, minute=0),
                         "options": {"queue": "maintenance", "expires": DAILY_EXPIRES}},
        # Dead letters past their retention (kept longer under an earlier, longer retention).
        "deadletters-cleanup": {"task": "maintenance.cleanup_deadletters", "schedule": crontab(hour=4, minute=30),
                                "options": {"queue": "maintenance", "expires": DAILY_EXPIRES}},
    }


def describe_when(value: Any) -> str:
    """A schedule in words: ``every 60 s``, ``daily at 03:00 UTC`` or the crontab fields."""
    if isinstance(value, (int, float)):
        return f"every {value:g} s"
    if isinstance(value, timedelta):
        return f"every {value.total_seconds():g} s"
    if isinstance(value, crontab):
        every_day = (len(value.day_of_week) == 7 and len(value.day_of_month) == 31
                     and len(value.month_of_year) == 12)
        if every_day and len(value.hour) == 1 and len(value.minute) == 1:
            return f"daily at {min(value.hour):02d}:{min(value.minute):02d} UTC"
        fields = [getattr(value, f"_orig_{name}", "?") for name in
                  ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")]
        return f"cron '{' '.join(str(f) for f in fields)}' UTC"
    if isinstance(value, interval):
        return f"every {value.run_every.total_seconds():g} s"
    return str(value)
