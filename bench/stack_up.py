"""Wall time of `retain stack up` (one datacenter, then two) and the stack's peak memory.

Runs a stack of its own (Redis on a free port, Cassandra on 127.0.0.21/22) from the CLI, as a user
would, and prints one JSON document. The machine is shared and noisy, so the figures come with a
baseline measured in the same run: the start of a bare JVM (`java -version`), which dominates a
Cassandra node's start on a small machine.

    .venv/bin/python bench/stack_up.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import bench_settings, child_env

from retain.stack import Stack
from retain.stack.java import find_java


def timed(argv: list[str], env: dict) -> float:
    start = time.monotonic()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the process's resident-set high-water mark."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="retain-bench-"))
    settings = bench_settings(home, ["127.0.0.21", "127.0.0.22"], 7699)
    env = child_env(settings)
    cli = [sys.executable, "-m", "retain", "stack"]
    java = find_java(settings.java_home)
    rounds = []
    peaks: dict[str, float] = {}
    try:
        Stack(settings).fetch()
        for _ in range(args.rounds):
            jvm = min(timed([java, "-version"], env) for _ in range(3))
            one = timed([*cli, "up", "--dcs", "1"], env)
            second = timed([*cli, "up", "--dcs", "2"], env)
            for svc in Stack(settings).services():
                pid = svc.process.pid()
                if pid:
                    peaks[svc.name] = max(peaks.get(svc.name, 0.0), peak_rss_mib(pid))
            down = timed([*cli, "down"], env)
            both = timed([*cli, "up", "--dcs", "2"], env)
            timed([*cli, "down"], env)
            rounds.append({"jvm_start_baseline_s": round(jvm, 2), "up_1dc_s": round(one, 1),
                           "add_2nd_dc_s": round(second, 1), "up_2dc_from_cold_s": round(both, 1),
                           "down_2dc_s": round(down, 1), "up_1dc_over_jvm": round(one / jvm, 1)})
    finally:
        Stack(settings).down()
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps({
        "benchmark": "stack_up", "cores": os.cpu_count(), "rounds": rounds,
        "best": {key: min(r[key] for r in rounds) for key in rounds[0]},
        "peak_rss_mib": {name: round(v) for name, v in peaks.items()},
        "peak_rss_total_mib": round(sum(peaks.values())),
        "cassandra_heap_mb": settings.cassandra_heap_mb,
    }, indent=2))


if __name__ == "__main__":
    main()
