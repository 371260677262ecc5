"""The API's worker processes share keep-alive connections evenly (retain.webapi.worker)."""

from __future__ import annotations

import os
import socket
from collections import Counter
from pathlib import Path

import pytest

from tests.harness import children, poll, start_api

WORKERS = 4


def _holder(workers: list[int], server_port: int, client_port: int) -> int | None:
    """The worker process holding the server side of the connection from ``client_port``."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            inode = fields[9]
    for pid in workers:
        try:
            if any(os.readlink(fd) == f"socket:[{inode}]" for fd in Path(f"/proc/{pid}/fd").iterdir()):
                return pid
        except OSError:
            continue
    return None


def _open(port: int) -> socket.socket:
    """A keep-alive connection that has been served once (so a worker accepted it)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    return sock


@pytest.fixture
def many_workers_api(settings):
    proc, url = start_api(settings.replace(api_workers=WORKERS, api_reuse_port=False), "api-workers")
    yield proc, int(url.rsplit(":", 1)[1])
    proc.stop(30)


def test_keep_alive_connections_are_spread_evenly(many_workers_api) -> None:
    proc, port = many_workers_api
    workers = poll(lambda: (found := children(proc.pid())) and len(found) == WORKERS and found, 60,
                   f"gunicorn runs {WORKERS} workers")
    held: list[socket.socket] = []
    holders: Counter = Counter()

    def take_one() -> Counter:
        sock = _open(port)
        held.append(sock)
        holders[_holder(workers, port, sock.getsockname()[1])] += 1
        return holders

    try:
        # Workers start one after another, and the first ones up take what comes meanwhile; a
        # worker serving holds the fewest, so it takes the next connections.
        poll(lambda: len(take_one()) == WORKERS and None not in holders, 60, "every worker holds a connection")
        # Enough for every worker to catch up with the one holding most, and then some.
        for _ in range(WORKERS * (max(holders.values()) + 2) - len(held)):
            take_one()
        counts = [holders[pid] for pid in workers]
        assert max(counts) - min(counts) <= 1, f"connections per worker: {counts}"
    finally:
        for sock in held:
            sock.close()
