"""The Flask application factory."""

from __future__ import annotations

from flask import Flask

from retain.client import RetainClient
from retain.config import Settings
from retain.ingest.journal import Journal
from retain.metrics.http import instrument
from retain.profiles.nearcache import NearCache
from retain.store.cassandra import CassandraStore
from retain.store.redis import redis_client
from retain.tenancy.keycache import KeyCache
from retain.tenancy.registry import TenantRegistry
from retain.profiles.cache import ProfileCache
from retain.profiles.reader import ProfileReader
from retain.webapi import analytics, errors, health, ingest, jobs, models, openapi, profiles, timeline
from retain.webapi.memoryhits import MemoryHits


def create_app(settings: Settings | None = None) -> Flask:
    """Build the API for ``settings`` (loaded from the environment when omitted).

    Nothing connects here: gunicorn forks workers after loading the app, and connections made
    before the fork would be shared by every worker. Stores connect on first use.
    """
    settings = settings or Settings.from_env()
    app = Flask(__name__, static_folder=None)
    app.json.sort_keys = False
    app.extensions["retain"] = Stores(settings)
    errors.register(app)
    if settings.profile_near_cache_entries:
        app.wsgi_app = MemoryHits(app.wsgi_app, app.extensions["retain"])  # type: ignore[method-assign]
    instrument(app, settings)  # request ids, latency metrics, access log, /metrics: around all of it
    for blueprint in (health.bp, ingest.bp, analytics.bp, timeline.bp, models.bp, profiles.bp, jobs.bp, openapi.bp):
        app.register_blueprint(blueprint)
    return app


class Stores:
    """The app's settings and its lazily connected stores."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = redis_client(settings, timeout=2.0)
        self.cassandra = CassandraStore(settings)
        self.keys = KeyCache(TenantRegistry(self.cassandra), settings.key_cache_seconds)
        self.journal = Journal(self.redis, settings)
        cache = ProfileCache(self.redis, settings.redis_prefix, settings.profile_cache_ttl_seconds,
                             settings.profile_negative_ttl_seconds)
        if settings.profile_near_cache_entries:
            cache = NearCache(cache, settings.profile_near_cache_entries, settings.redis_url)
        self.profiles = ProfileReader(self.cassandra, cache)
        self.profile_cache_control = f"private, max-age={settings.profile_max_age_seconds}"
        # Connects on first use, after gunicorn's fork.
        self.jobs = RetainClient(settings.broker_url, settings.result_backend)
