"""What the benchmarks share: a stack of their own (apart from the demo's and the tests'), ports."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from retain.config import Settings  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_settings(home: Path, addresses: list[str], jmx_port: int, **overrides) -> Settings:
    """Settings for a benchmark stack: Redis on a free port, Cassandra nodes on ``addresses``."""
    port = free_port()
    return Settings.from_env(
        {}, home=home, redis_url=f"redis://127.0.0.1:{port}/0", broker_url=f"redis://127.0.0.1:{port}/1",
        result_backend=f"redis://127.0.0.1:{port}/2", stack_cassandra_addresses=addresses,
        cassandra_hosts=addresses[:1], stack_jmx_port=jmx_port, **overrides,
    )


def child_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIN_")}
    return {**env, **settings.to_env()}
