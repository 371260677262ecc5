"""HTTP/1.1 load generators for the benchmarks: wrk (closed loop), one of our own in Python that can
also run an open loop, and the same open loop in C (bench/openloop.c, built with the machine's C
compiler on first use), which costs a fraction of the CPU the Python one does on the cores it measures.

Ours runs in a forked process with a single thread and a selector over all its keep-alive
connections: a thread per connection would make the client's own GIL hand-offs part of the measured
latency (a response that arrived waits for its thread to get the interpreter).
Modes: closed loop (send on each answer), open loop (``rate``/s, each connection's sends at fixed
instants, latency counted from the instant a request was due, so a stalled server cannot hide behind a
waiting client: no coordinated omission), or ``once``: each request once.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import selectors
import shutil
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

from common import runqueue_seconds

WRK_LUA = r"""
local paths, n, auth = {}, 0, os.getenv("BENCH_AUTH")
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
if auth ~= "" then wrk.headers["Authorization"] = auth end
request = function() n = n + 1; return wrk.format("GET", paths[n % #paths + 1]) end
done = function(s, lat, _)
  local e = s.errors
  io.write(string.format('WRKJSON {"requests": %d, "seconds": %.3f, "errors": %d, "non_2xx": %d, ' ..
    '"p50_ms": %.3f, "p99_ms": %.3f, "p999_ms": %.3f, "max_ms": %.3f}\n', s.requests, s.duration / 1e6,
    e.connect + e.read + e.write + e.timeout, e.status, lat:percentile(50) / 1e3, lat:percentile(99) / 1e3,
    lat:percentile(99.9) / 1e3, lat.max / 1e3))
end
"""
DRAIN_SECONDS = 30.0  # silence after which the answers still awaited count as lost


def latency(us: list[int]) -> dict[str, float]:
    ordered = sorted(us) or [0]
    at = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000, 3)  # noqa: E731
    return {"p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99), "p999_ms": at(0.999), "max_ms": at(1.0)}


class _Conn:
    """One keep-alive connection: its requests, what it has read, and the request awaiting an answer."""

    def __init__(self, port: int, reqs: list[bytes]) -> None:
        self.port, self.reqs, self.sent = port, reqs, 0
        self.due: float | None = None  # when the request in flight was due; None: idle
        self.finished = False
        self.buf = bytearray()
        self.connect()

    def connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf.clear()

    def send(self, due: float) -> None:
        self.sock.sendall(self.reqs[self.sent % len(self.reqs)])  # blocking: a request fits the buffer
        self.sent, self.due = self.sent + 1, due

    def answers(self) -> list[str] | None:
        """The answers completed by what can be read now ("200 redis"), or None when the server closed."""
        chunk = self.sock.recv(262144)
        if not chunk:
            return None
        self.buf += chunk
        done = []
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head, length, source = bytes(self.buf[:end]).split(b"\r\n"), 0, b""
            for line in head[1:]:
                name, _, value = line.partition(b":")
                name = name.lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"x-retain-source":
                    source = value.strip()
            if len(self.buf) < end + 4 + length:
                break
            del self.buf[:end + 4 + length]
            done.append(f"{head[0][9:12].decode()} {source.decode()}".strip())
        return done


def _drive(port: int, reqs: list[bytes], conns: int, seconds: float, rate: float, once: bool) -> dict:
    pool = [_Conn(port, reqs[i::conns] if once else reqs[i % len(reqs):] + reqs[:i % len(reqs)])
            for i in range(conns)]
    pool = [c for c in pool if c.reqs]
    sel = selectors.SelectSelector()  # select(2): microsecond timeouts (epoll rounds up to a millisecond)
    for conn in pool:
        sel.register(conn.sock, selectors.EVENT_READ, conn)
    lat, answers = [], Counter()
    start = time.perf_counter() + 0.05
    end = heard = start + seconds

    def next_due(i: int, conn: _Conn, now: float) -> float | None:
        if once:
            return max(now, start) if conn.sent < len(conn.reqs) else None
        due = start + (conn.sent * conns + i) / rate if rate else max(now, start)
        return due if due < end else None
    while True:
        now = time.perf_counter()
        wake, idle = None, False
        for i, conn in enumerate(pool):
            if conn.due is not None or conn.finished:
                continue
            if (due := next_due(i, conn, now)) is None:
                # Nothing left to send: close it, or the server's keep-alive timeout would close
                # it and look like a dropped request.
                sel.unregister(conn.sock)
                conn.sock.close()
                conn.finished = True
                continue
            idle = True
            if due <= now:
                conn.send(due)
            else:
                wake = due if wake is None else min(wake, due)
        busy = any(c.due is not None for c in pool)
        if not busy and not idle:
            break
        if now > max(heard, end) + DRAIN_SECONDS:
            answers["unanswered"] += sum(c.due is not None for c in pool)
            break
        for key, _ in sel.select(1.0 if wake is None else max(0.0, wake - time.perf_counter())):
            conn = key.data
            done = conn.answers()
            if done is None:  # the server closed the connection: count it, reconnect
                answers["closed"] += 1
                sel.unregister(conn.sock)
                conn.sock.close()
                conn.connect()
                sel.register(conn.sock, selectors.EVENT_READ, conn)
                conn.due = None
                continue
            if done:
                heard = time.perf_counter()
                lat.append(int((heard - conn.due) * 1e6))
                answers.update(done)
                conn.due = None
    stopped = time.perf_counter()
    for conn in pool:
        conn.sock.close()
    elapsed = stopped - start
    return {"requests": len(lat), "seconds": round(elapsed, 2), "rps": round(len(lat) / elapsed),
            **latency(lat), "answers": dict(answers)}


def _client(port: int, reqs: list[bytes], conns: int, seconds: float, rate: float, once: bool, out) -> None:
    cpu, waited = resource.getrusage(resource.RUSAGE_SELF), runqueue_seconds("self")
    result = _drive(port, reqs, conns, seconds, rate, once)
    used, elapsed = resource.getrusage(resource.RUSAGE_SELF), max(result["seconds"], 1e-3)
    spent = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
    # The load generator shares the cores it measures: while it waits for one, answers that
    # arrived count as late.
    out.put({**result, "loadgen_cpu_cores": round(spent / elapsed, 2),
             "loadgen_runqueue_share": round((runqueue_seconds("self") - waited) / elapsed, 3)})


def python_load(port: int, reqs: list[bytes], conns: int, seconds: float = 0, rate: float = 0,
                once: bool = False) -> dict:
    """Run our load generator in another process (forked: it only needs sockets, and starts in
    milliseconds) against 127.0.0.1:``port``."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=_client, args=(port, reqs, conns, seconds, rate, once, out))
    proc.start()
    result = out.get(timeout=seconds + 900)
    proc.join()
    return {"loadgen": "python", "connections": conns, **({"target_rps": round(rate)} if rate else {}), **result}


def build_openloop(home: Path) -> Path | None:
    """bench/openloop.c built into ``home``; None when the machine has no C compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        return None
    binary = home / "openloop"
    subprocess.run([compiler, "-O2", "-o", str(binary), str(Path(__file__).with_name("openloop.c"))], check=True)
    return binary


def native_load(binary: Path, port: int, reqs: list[bytes], conns: int, seconds: float, rate: float) -> dict:
    """The open loop of ``python_load(..., rate=rate)`` (same schedule and accounting) by bench/openloop.c,
    which sends bodiless requests only."""
    if any(not r.endswith(b"\r\n\r\n") or r.count(b"\r\n\r\n") > 1 for r in reqs):
        raise ValueError("openloop sends requests without a body")
    batch = binary.with_suffix(".reqs")
    batch.write_bytes(b"".join(reqs))
    out = subprocess.run([str(binary), str(port), str(conns), str(rate), str(seconds), str(batch)],
                         capture_output=True, text=True, check=True, timeout=seconds + 900)
    return {"loadgen": "c", "connections": conns, "target_rps": round(rate), **json.loads(out.stdout)}


def wrk_load(url: str, paths: list[str], auth: str, conns: int, seconds: float, home: Path) -> dict | None:
    """A closed loop of wrk (one thread) over ``paths`` in turn; None when wrk is not installed."""
    if not shutil.which("wrk"):
        return None
    (home / "wrk.lua").write_text(WRK_LUA)
    (home / "wrk.paths").write_text("\n".join(paths) + "\n")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
                          "-s", str(home / "wrk.lua"), url], capture_output=True, text=True, check=True,
                         env={**os.environ, "BENCH_AUTH": auth, "BENCH_PATHS": str(home / "wrk.paths")})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    found = json.loads(next(l for l in out.stdout.splitlines() if l.startswith("WRKJSON "))[8:])
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"loadgen": "wrk", "connections": conns, **found, "rps": round(found["requests"] / found["seconds"]),
            "loadgen_cpu_cores": round(cpu / found["seconds"], 2)}
