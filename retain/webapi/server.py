"""Serving the API with gunicorn (gthread workers), configured from the settings."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

from retain.config import Settings
from retain.logs import gunicorn_logger_class
from retain.metrics.http import child_exit, prepare_server
from retain.webapi.app import create_app


class APIServer(BaseApplication):
    def __init__(self, settings: Settings, host: str, port: int) -> None:
        self.settings = settings
        self.bind = f"{host}:{port}"
        super().__init__()

    def load_config(self) -> None:
        self.cfg.set("bind", self.bind)
        self.cfg.set("workers", self.settings.api_workers)
        self.cfg.set("threads", self.settings.api_threads)
        self.cfg.set("worker_class", "gthread")
        self.cfg.set("timeout", self.settings.api_timeout)
        self.cfg.set("graceful_timeout", 20)
        # retain.metrics.http logs each request (with its request id) instead of gunicorn.
        self.cfg.set("accesslog", None)
        self.cfg.set("logger_class", gunicorn_logger_class(self.settings))
        self.cfg.set("child_exit", child_exit)
        self.cfg.set("loglevel", self.settings.log_level.lower())
        self.cfg.set("proc_name", "retain-api")

    def load(self):
        return create_app(self.settings)


def serve(settings: Settings, host: str, port: int) -> None:
    prepare_server(settings, host, port)  # before gunicorn forks its workers
    APIServer(settings, host, port).run()
