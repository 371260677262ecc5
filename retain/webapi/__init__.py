"""The HTTP API: a Flask app factory and its blueprints, served by gunicorn."""

from retain.webapi.app import create_app

__all__ = ["create_app"]
