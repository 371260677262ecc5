"""The Flask application factory."""

from __future__ import annotations

from flask import Flask

from retain.config import Settings
from retain.store.cassandra import CassandraStore
from retain.store.redis import redis_client
from retain.webapi import errors, health


def create_app(settings: Settings | None = None) -> Flask:
    """Build the API for ``settings`` (loaded from the environment when omitted).

    Nothing connects here: gunicorn forks workers after loading the app, and connections made
    before the fork would be shared by every worker. Stores connect on first use.
    """
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.json.sort_keys = False
    app.extensions["retain"] = Stores(settings)
    errors.register(app)
    app.register_blueprint(health.bp)
    return app


class Stores:
    """The app's settings and its lazily connected stores."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = redis_client(settings, timeout=2.0)
        self.cassandra = CassandraStore(settings)
