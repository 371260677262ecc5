"""Serving the API with gunicorn (threaded workers that share connections evenly), configured from
the settings."""

from __future__ import annotations

import gc
import os
import socket

from gunicorn.app.base import BaseApplication

from retain.config import Settings
from retain.errors import StackError
from retain.logs import gunicorn_logger_class
from retain.metrics.http import child_exit, prepare_server
from retain.webapi.app import create_app
from retain.webapi.board import BoardMember, ConnectionBoard, pre_fork, worker_exited
from retain.webapi.worker import EpollThreadWorker


WORKER_CLASSES = {"epoll": "retain.webapi.worker.EpollThreadWorker",
                  "gthread": "retain.webapi.gthread.BalancedThreadWorker"}


class APIServer(BaseApplication):
    def __init__(self, settings: Settings, host: str, port: int) -> None:
        self.settings = settings
        self.bind = f"{host}:{port}"
        super().__init__()

    def load_config(self) -> None:
        processes = self.settings.api_processes()
        self.cfg.set("bind", self.bind)
        self.cfg.set("workers", processes)
        self.cfg.set("threads", self.settings.api_threads)
        self.cfg.set("reuse_port", self.settings.api_reuse_port)
        # Workers with sockets of their own get connections by the kernel's hash: nothing to balance.
        # Room for workers added at run time (TTIN) too.
        BoardMember.board = None if self.settings.api_reuse_port else ConnectionBoard(2 * processes)
        self.cfg.set("worker_class", WORKER_CLASSES[self.settings.api_worker])
        EpollThreadWorker.plain_get = self.settings.api_plain_get  # read after the fork, as the board
        self.cfg.set("pre_fork", pre_fork)
        self.cfg.set("timeout", self.settings.api_timeout)
        self.cfg.set("graceful_timeout", 20)
        # retain.metrics.http logs each request (with its request id) instead of gunicorn.
        self.cfg.set("accesslog", None)
        self.cfg.set("logger_class", gunicorn_logger_class(self.settings))
        self.cfg.set("child_exit", _child_exit)
        self.cfg.set("post_worker_init", _freeze_heap)
        if os.path.isdir("/dev/shm"):
            # Workers touch a heartbeat file on every loop; on a disk it can block behind
            # writeback for tens of milliseconds (gunicorn's own advice for containers).
            self.cfg.set("worker_tmp_dir", "/dev/shm")
        self.cfg.set("loglevel", self.settings.log_level.lower())
        self.cfg.set("proc_name", "retain-api")

    def load(self):
        return create_app(self.settings)


def _child_exit(server: object, worker: object) -> None:
    child_exit(server, worker)
    worker_exited(worker)


def _freeze_heap(worker: object) -> None:
    # The app, its drivers and their modules are built: hand them to the permanent generation so
    # the garbage collector's full passes stop walking them (tens of milliseconds of a request's
    # latency each time one runs otherwise).
    gc.freeze()


def _ensure_free(host: str, port: int) -> None:
    # With SO_REUSEPORT a second server on the same port would silently share it: refuse instead.
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # SO_REUSEADDR: connections of a server that just stopped (TIME_WAIT) do not count; a
        # listening socket still does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StackError(f"the API cannot listen on {host}:{port}: {exc.strerror}") from None


def serve(settings: Settings, host: str, port: int) -> None:
    _ensure_free(host, port)
    prepare_server(settings, host, port)  # before gunicorn forks its workers
    APIServer(settings, host, port).run()
