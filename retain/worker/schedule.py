"""What beat runs when. One place for every periodic task."""

from __future__ import annotations

from celery.schedules import crontab

from retain.config import Settings


def beat_schedule(settings: Settings) -> dict:
    return {
        # Staged rows reach the lake at least this often, however few there are.
        "lake-flush": {"task": "ingest.flush_lake", "schedule": settings.lake_flush_seconds,
                       "options": {"queue": "ingest", "expires": settings.lake_flush_seconds}},
        # Accepted batches the broker lost in a crash are sent again (the ledger drops duplicates).
        "ingest-redeliver": {"task": "ingest.redeliver", "schedule": 60.0, "options": {"queue": "ingest", "expires": 60}},
        # Users quiet for the debounce (or busy for the maximum delay) become rebuild batches.
        "profiles-sweep": {"task": "profiles.sweep", "schedule": settings.profile_sweep_seconds,
                           "options": {"queue": "profiles", "expires": settings.profile_sweep_seconds}},
        # Every tenant's models, trained and evaluated on the data up to the day before.
        "train-nightly": {"task": "train.nightly", "schedule": crontab(hour=2, minute=0),
                          "options": {"queue": "train", "expires": 3600}},
    }
