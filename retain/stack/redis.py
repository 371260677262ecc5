"""The local Redis: Debian's redis-server with AOF persistence (broker, results, counters, cache)."""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import redis

from retain.errors import StackError
from retain.stack.service import Launch, Service


def ensure_redis_server() -> str:
    """Path of redis-server, installing Debian's package when it is missing."""
    found = shutil.which("redis-server")
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        raise StackError("redis-server is missing; install Debian's package: apt-get install redis-server")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with _no_service_autostart():
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                raise StackError(f"could not install redis-server ({' '.join(cmd)} failed):\n{out.stderr[-2000:]}")
    found = shutil.which("redis-server")
    if not found:
        raise StackError("apt-get installed redis-server but it is not on PATH")
    return found


@contextmanager
def _no_service_autostart() -> Iterator[None]:
    """Keep the package's own redis-server service from starting on port 6379: retain runs its own."""
    policy = Path("/usr/sbin/policy-rc.d")
    if policy.exists():
        yield
        return
    policy.write_text("#!/bin/sh\n# written by retain while installing redis-server\nexit 101\n")
    policy.chmod(0o755)
    try:
        yield
    finally:
        policy.unlink(missing_ok=True)


class RedisService(Service):
    """Redis on the host and port of RETAIN_REDIS_URL."""

    name = "redis"
    stop_timeout = 30.0

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.settings.redis_url)
        return parts.hostname or "127.0.0.1", parts.port or 6379

    def prepare(self) -> Launch:
        host, port = self.address
        data = self.data_dir()
        data.mkdir(parents=True, exist_ok=True)
        conf = self.home / "conf" / "redis.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        # appendonly: an event the API acknowledged sits in the broker until a worker takes it, so
        # the broker must survive a restart. daemonize no: retain supervises the process itself.
        conf.write_text(
            f"bind {host}\nport {port}\ndir {data}\ndaemonize no\nlogfile \"\"\n"
            f"appendonly yes\nappendfsync {self.settings.redis_appendfsync}\n"
            "save 900 1 300 100\nprotected-mode yes\ndatabases 32\n"
        )
        return Launch([ensure_redis_server(), str(conf)])

    def ready(self) -> bool:
        host, port = self.address
        try:
            return bool(redis.Redis(host=host, port=port, socket_timeout=1, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False
