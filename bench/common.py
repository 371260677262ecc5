"""What the benchmarks share: a stack of their own (apart from the demo's and the tests'), ports."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from retain.config import Settings  # noqa: E402
from retain.stack.nodetool import Nodetool  # noqa: E402


def machine_speed() -> dict:
    """How fast this machine runs a fixed piece of Python (encoding and decoding a profile-sized
    document), best of seven, now: absolute targets (profiles/s, milliseconds) depend on the
    machine, which differs between runs of the same code (and a shared one from hour to hour), so a
    report says what machine it met."""
    doc = {"user_id": "u000001", "scores": {f"c{i}": i / 7 for i in range(20)}, "top": list(range(30))}
    best = float("inf")
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(2000):
            json.loads(json.dumps(doc))
        best = min(best, time.perf_counter() - started)
    return {"reference_python_ms": round(best * 1000, 1), "cpu_model": _cpu_model()}


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


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


def descendants(root: int) -> list[int]:
    """The pids of ``root``'s children, their children and so on, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue  # exited meanwhile
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        found.extend(kids := children.get(todo.pop(), []))
        todo.extend(kids)
    return found


def _schedstat(pid: int | str, field: int, threads: str = "") -> float:
    """Seconds of a schedstat field summed over the threads of ``pid`` (those whose name contains
    ``threads``, if given): 0 is time on a core, 1 time waiting, runnable, for one."""
    total = 0
    try:
        for task in os.scandir(f"/proc/{pid}/task"):
            try:
                if threads and threads not in Path(task.path, "comm").read_text():
                    continue
                total += int(Path(task.path, "schedstat").read_text().split()[field])
            except OSError:
                continue  # the thread ended meanwhile
    except OSError:
        return 0.0  # the process ended meanwhile
    return total / 1e9


def runqueue_seconds(pid: int | str) -> float:
    """How long the threads of process ``pid`` (or "self") have waited, runnable, for a core since
    they started (schedstat, Linux): latency that is the machine's queue, not the code's work."""
    return _schedstat(pid, 1)


def jit_seconds(pid: int) -> float:
    """Core time the JIT compiler threads of JVM ``pid`` have used. Under a new load, a Cassandra
    just started spends a core for a minute or two compiling (measured: two thirds of one, falling
    to a twentieth after about 100 s): its start, not the steady state a bench means."""
    return _schedstat(pid, 0, "CompilerThre")  # "C2 CompilerThread0", cut to 15 characters


JIT_WINDOW, JIT_SETTLED = 10.0, 0.05  # seconds, cores


def settle_jit(cassandra_pid: int, least: float, most: float, log: Callable[[str], None],
               settled: float = JIT_SETTLED) -> dict:
    """Wait ``least`` seconds, then until Cassandra's JIT compiler used less than ``settled`` of a
    core over JIT_WINDOW (``most`` seconds in all at most); what it took."""
    started = time.monotonic()
    time.sleep(least)
    share, before = None, jit_seconds(cassandra_pid)
    while time.monotonic() - started < most:
        time.sleep(JIT_WINDOW)
        after = jit_seconds(cassandra_pid)
        share, before = (after - before) / JIT_WINDOW, after
        log(f"Cassandra's JIT compiler used {share:.2f} of a core over the last {JIT_WINDOW:.0f} s")
        if share < settled:
            break
    return {"seconds": round(time.monotonic() - started, 1),
            "cassandra_jit_cores_last_window": None if share is None else round(share, 3),
            "jit_settled": share is not None and share < settled}


def peak_rss_mb(pid: int | str) -> float:
    """A process's peak resident set size (VmHWM, reset by exec), in MiB; ``pid`` may be "self"."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class TreePeaks(threading.Thread):
    """The peak RSS of each of this process's descendants, with its command line. Polled: a
    descendant that exits before the end (a forked worker) is counted too."""

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval, self._done = interval, threading.Event()
        self.peaks: dict[int, tuple[bytes, float]] = {}  # pid: (NUL-separated argv, MiB)

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        for pid in descendants(os.getpid()):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes()
                self.peaks[pid] = (argv, max(peak_rss_mb(pid), self.peaks.get(pid, (b"", 0.0))[1]))
            except OSError:
                continue  # exited meanwhile

    def finish(self) -> dict[int, tuple[bytes, float]]:
        """Stop polling; the peaks, read once more (VmHWM is a high-water mark: the last read is the peak)."""
        self._done.set()
        self.join()
        self.sample()
        return self.peaks


class Stalls:
    """How late a process that only sleeps 1 ms at a time wakes up, while the block runs: a gauge of
    the machine itself (another VM on the host, other jobs), apart from what is measured. A round
    whose tail coincides with late wake-ups here was stalled by the host, not by the code."""

    THRESHOLD = 0.005

    def __enter__(self) -> "Stalls":
        ctx = multiprocessing.get_context("fork")
        self._stop, (self._recv, send) = ctx.Event(), ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=self._watch, args=(self._stop, send), daemon=True)
        self._proc.start()
        return self

    @classmethod
    def _watch(cls, stop, out) -> None:
        late = []
        while not stop.is_set():
            before = time.perf_counter()
            time.sleep(0.001)
            if (over := time.perf_counter() - before - 0.001) > cls.THRESHOLD:
                late.append(over)
        out.send(late)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        late = self._recv.recv()
        self._proc.join()
        self.report = {"late_wakeups_over_5ms": len(late), "latest_ms": round(max(late, default=0.0) * 1000, 1)}


def quiet_cassandra(settings, node: str, timeout: float = 240.0) -> dict:
    """Flush ``node`` and wait until it has no compaction running or pending: a lookup phase reads
    Redis, and compacting what the phases before it wrote took up to a sixth of this 2-core machine
    in the middle of it (a round's throughput then says more about Cassandra than about the API)."""
    tool, started = Nodetool(settings), time.monotonic()
    tool.run(node, "flush", timeout=120)
    while True:
        out = tool.run(node, "compactionstats", timeout=60).output
        pending = re.search(r"pending tasks\s+(\d+)", out)
        # Running compactions are listed in a table with a progress column.
        quiet = bool(pending) and int(pending.group(1)) == 0 and "progress" not in out
        if quiet or time.monotonic() - started > timeout:
            return {"seconds": round(time.monotonic() - started, 1), "quiet": quiet}
        time.sleep(2)
