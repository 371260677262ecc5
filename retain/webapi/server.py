"""Serving the API with gunicorn (gthread workers), configured from the settings."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

from retain.config import Settings
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
        self.cfg.set("accesslog", "-")
        self.cfg.set("loglevel", self.settings.log_level.lower())
        self.cfg.set("proc_name", "retain-api")

    def load(self):
        return create_app(self.settings)


def serve(settings: Settings, host: str, port: int) -> None:
    APIServer(settings, host, port).run()
