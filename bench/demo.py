"""`retain demo --exit` on this machine: wall time, per-step times, and peak memory.

Runs the real demo in a child process with a fresh RETAIN_HOME (so the stack starts from empty, as
on a fresh machine once installed) and samples every process it starts: the peak of their summed
resident memory (what the machine must hold at once) and each process's own peak (VmHWM). The
demo's own summary gives the step times; the target (issue 7) is under 10 minutes on 2 cores.

    python bench/demo.py [--users 2000] [--days 60] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, TreePeaks, descendants  # noqa: E402


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass  # exited meanwhile
    return 0.0


class TotalPeak(threading.Thread):
    """The largest sum of resident memory over this process's descendants at one sampling instant."""

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval, self.peak, self.at = interval, 0.0, 0.0
        self.began, self._done = time.monotonic(), threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.interval):
            total = sum(rss_mb(pid) for pid in descendants(os.getpid()))
            if total > self.peak:
                self.peak, self.at = total, time.monotonic() - self.began

    def finish(self) -> None:
        self._done.set()
        self.join()


def role(argv: bytes) -> str:
    """A short name for a process from its command line."""
    text = argv.replace(b"\0", b" ").decode(errors="replace")
    for needle, name in (("cassandra", "cassandra"), ("redis-server", "redis"), ("pyspark", "spark-jvm"),
                         ("org.apache.spark", "spark-jvm"), ("--queues profiles", "profile worker"),
                         ("--queues train", "training worker"), ("--queues ingest", "ingest worker"),
                         ("retain beat", "beat"), ("retain flower", "flower"), ("retain api", "api"),
                         ("autoscaler run", "autoscaler"), ("retain demo", "demo")):
        if needle in text:
            return name
    return text.split(" ", 1)[0].rsplit("/", 1)[-1] or "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--keep", action="store_true", help="Keep the demo's RETAIN_HOME afterwards.")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="retain-bench-demo-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIN_")}
    env["RETAIN_HOME"] = str(home)
    total, peaks = TotalPeak(), TreePeaks()
    total.start(), peaks.start()
    began = time.monotonic()
    demo = subprocess.run([sys.executable, "-m", "retain", "demo", "--exit", "--json", "--users", str(args.users),
                           "--days", str(args.days)], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.monotonic() - began
    total.finish()
    by_role: dict[str, float] = defaultdict(float)
    for argv, mb in peaks.finish().values():
        name = role(argv)
        by_role[name] = max(by_role[name], mb)
    if demo.returncode != 0:
        print(demo.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"retain demo failed with exit code {demo.returncode}")
    summary = json.loads(demo.stdout)
    print(json.dumps({
        "benchmark": "retain demo --exit", "users_per_tenant": args.users, "days": args.days,
        "wall_s": round(wall, 1), "target_s": 600, "met": wall < 600,
        "steps_s": {"stack_up": summary["stack_up_s"], "ingest_send": summary["ingest"]["send_s"],
                    "ingest_stored": summary["ingest"]["stored_s"], "train": summary["train_s"],
                    "rebuild": summary["rebuild"]["seconds"]},
        "events": summary["ingest"]["events"], "ingest_events_per_s": summary["ingest"]["events_per_s"],
        "peak_profile_workers": summary["rebuild"]["peak_workers"],
        "peak_total_rss_mb": round(total.peak), "peak_total_at_s": round(total.at, 1),
        "peak_rss_mb_by_process": {k: round(v) for k, v in sorted(by_role.items(), key=lambda kv: -kv[1])},
        "models": {name: {k: t["model"].get(k) for k in ("status", "p_return_auc")}
                   for name, t in summary["tenants"].items()},
    }, indent=2))
    if args.keep:
        print(f"kept {home}", file=sys.stderr)
    else:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
