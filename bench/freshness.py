"""Freshness: from an event accepted by the API to the updated profile visible through the API.

    .venv/bin/python bench/freshness.py [--rate 200] [--users 20000] [--seconds 60] [--probes 4]
                                        [--warmup 15] [--warmup-max 240] [--keep-logs DIR]

Runs a stack of its own (Redis on a free port, Cassandra on 127.0.0.51, JMX 7599) and the processes
a deployment runs on that path: the API (gunicorn), an ingest worker, a profile worker and beat, all
with the settings' defaults. Throughout, a steady load of ``--rate`` events/s goes to /v1/batch on a
fixed schedule (batches every 100 ms, users drawn at random from ``--users``). On top of it, ``--probes``
times a second a user of that population sends one event stamped now; from the API's 200:
- ingested: the event is in the user's timeline (/v1/users/<id>/events): the baseline, what
  ingestion alone takes in the same run;
- fresh: /v1/profiles:batchGet answers a ``last_seen`` that includes the event (target p99 <= 5 s).
Probes start once the load has run ``--warmup`` seconds and Cassandra's JIT compiler has settled
(under 5% of a core over 10 s, or ``--warmup-max`` seconds in all): a node just started compiles
for a minute or two under a new load, taking most of a core on this 2-core machine, and freshness
measured then is the node's start, not the steady state.
Prints one JSON document (progress on stderr): p50/p90/p99/max of both, the floor the settings put
under freshness (a quiet user is claimed once the debounce has passed, by the next sweep), the load
achieved, and the probes never seen (lost: must be 0).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import requests
from common import bench_settings, child_env, settle_jit
from loadgen import latency

from retain.profiles.dirty import DirtyUsers
from retain.stack import Stack
from retain.store.cassandra import CassandraStore
from retain.store.redis import redis_client
from retain.store.schema import migrate
from retain.tenancy.registry import TenantRegistry

from tests.harness import retain_process, start_api, start_worker

LOST_AFTER = 30.0  # seconds after which a probe not yet visible counts as lost
POLL_SECONDS = 0.02


def log(message: str) -> None:
    print(f"[bench/freshness] {message}", file=sys.stderr, flush=True)


def event(user: str, at: datetime) -> dict:
    return {"type": "track", "event": "Article Viewed", "userId": user, "messageId": str(uuid.uuid4()),
            "timestamp": at.isoformat(timespec="milliseconds"), "context": {"timezone": "Europe/Paris"},
            "properties": {"content_id": f"c{random.randrange(500)}", "category": "news"}}


class Load(threading.Thread):
    """``rate`` events/s in batches every 100 ms, on a schedule (a slow answer delays no later batch's due time)."""

    def __init__(self, url: str, key: str, users: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.url, self.users, self.per_batch = url, users, max(1, round(rate / 10))
        self.session = requests.Session()
        self.session.auth = (key, "")
        self.stop, self.sent, self.errors = threading.Event(), 0, 0

    def run(self) -> None:
        due = time.monotonic()
        while not self.stop.is_set():
            batch = [event(f"u{random.randrange(self.users)}", datetime.now(timezone.utc)) for _ in range(self.per_batch)]
            answer = self.session.post(f"{self.url}/v1/batch", json={"batch": batch}, timeout=30)
            if answer.status_code == 200:
                self.sent += len(batch)
            else:
                self.errors += 1
            due += 0.1
            self.stop.wait(max(0.0, due - time.monotonic()))


class Probe:
    def __init__(self, user: str, at: datetime, accepted: float) -> None:
        self.user, self.at, self.accepted = user, at, accepted
        self.ingested: float | None = None
        self.fresh: float | None = None


def probe_loop(url: str, keys: dict, users: int, per_second: float, seconds: float) -> tuple[list[Probe], dict]:
    """Send probes for ``seconds`` and watch each until its profile shows it (or it counts as lost);
    also returns how many requests the watching made (timeline reads, batchGets) per second."""
    write, read = requests.Session(), requests.Session()
    reads = {"timeline": 0, "batch_get": 0}
    write.auth, read.auth = (keys["write"], ""), (keys["read"], "")
    probes: list[Probe] = []
    watching: dict[str, Probe] = {}  # one probe per user at a time: its last_seen tells them apart
    started = next_probe = time.monotonic()
    while time.monotonic() < started + seconds or watching:
        now = time.monotonic()
        if now >= next_probe and now < started + seconds:
            user = f"u{random.randrange(users)}"
            if user not in watching:
                at = datetime.now(timezone.utc)
                answer = write.post(f"{url}/v1/batch", json={"batch": [event(user, at)]}, timeout=30)
                answer.raise_for_status()
                watching[user] = Probe(user, at.replace(microsecond=at.microsecond // 1000 * 1000), time.monotonic())
                probes.append(watching[user])
            next_probe += 1 / per_second
        for probe in [p for p in watching.values() if p.ingested is None]:
            events = read.get(f"{url}/v1/users/{probe.user}/events", params={"limit": 5}, timeout=30).json()["events"]
            reads["timeline"] += 1
            if any(_instant(e["timestamp"]) >= probe.at for e in events):
                probe.ingested = time.monotonic()
        pending = [p for p in watching.values() if p.ingested is not None]
        if pending:
            found = read.post(f"{url}/v1/profiles:batchGet", json={"ids": [p.user for p in pending],
                                                                   "fields": ["last_seen"]}, timeout=30).json()
            reads["batch_get"] += 1
            for probe in pending:
                seen = found["profiles"].get(probe.user, {}).get("last_seen")
                if seen is not None and _instant(seen) >= probe.at:
                    probe.fresh = time.monotonic()
                    del watching[probe.user]
        for user in [u for u, p in watching.items() if time.monotonic() - p.accepted > LOST_AFTER]:
            del watching[user]
        time.sleep(POLL_SECONDS)
    elapsed = time.monotonic() - started
    return probes, {name: round(count / elapsed, 1) for name, count in reads.items()}


def _instant(value: str | int) -> datetime:
    """A stored event's time (ms since the epoch) or a profile's (ISO 8601)."""
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, timezone.utc)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def figures(probes: list[Probe], stage: str) -> dict:
    """How long after acceptance the probes reached ``stage``, in seconds."""
    done = [int((getattr(p, stage) - p.accepted) * 1e6) for p in probes if getattr(p, stage) is not None]
    return {"count": len(done), **{k.replace("_ms", "_s"): round(v / 1000, 3) for k, v in latency(done).items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200.0, help="background events/s")
    parser.add_argument("--users", type=int, default=20000, help="population the events are spread over")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long probes are sent")
    parser.add_argument("--probes", type=float, default=4.0, help="probe events per second")
    parser.add_argument("--warmup", type=float, default=15.0, help="least seconds of load before the first probe")
    parser.add_argument("--warmup-max", type=float, default=240.0,
                        help="most seconds of load before the first probe, waiting for Cassandra's JIT to settle")
    parser.add_argument("--keep-logs", type=Path, help="copy the processes' logs here before cleaning up")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="retain-bench-freshness-"))
    settings = bench_settings(home, ["127.0.0.51"], 7599)
    stack, procs, load = Stack(settings), [], None
    try:
        stack.up(1, progress=log)
        store = CassandraStore(settings)
        migrate(store, settings.cassandra_replication)
        tenant, keys = TenantRegistry(store).create(f"bench-{uuid.uuid4().hex[:6]}")
        store.close()
        procs.append(start_worker(settings, "bench-ingest", queues="ingest"))
        procs.append(start_worker(settings, "bench-profiles", queues="profiles"))
        beat = retain_process(settings, "bench-beat")
        beat.spawn([sys.executable, "-m", "retain", "beat"], env=child_env(settings))
        procs.append(beat)
        api, url = start_api(settings, "bench-api")
        procs.append(api)
        log(f"load: {args.rate:.0f} events/s over {args.users} users; at least {args.warmup:.0f} s of warm-up")
        load = Load(url, keys["write"], args.users, args.rate)
        load.start()
        warm = settle_jit(stack.nodes[0].process.pid(), args.warmup, args.warmup_max, lambda m: log(f"warm-up: {m}"))
        sent_before, load_started = load.sent, time.monotonic()
        log(f"probes: {args.probes:g}/s for {args.seconds:.0f} s")
        probes, watching = probe_loop(url, keys, args.users, args.probes, args.seconds)
        load_rate = (load.sent - sent_before) / (time.monotonic() - load_started)
        # Whether the rebuilds kept up: a backlog would grow with the run's length.
        backlog = DirtyUsers(redis_client(settings), settings.redis_prefix).pending(tenant.tenant_id)
    finally:
        if load is not None:
            load.stop.set()
            load.join(30)
        for proc in reversed(procs):
            proc.stop(60)
        stack.down()
        if args.keep_logs:
            shutil.copytree(home / "logs", args.keep_logs, dirs_exist_ok=True)
        shutil.rmtree(home, ignore_errors=True)
    fresh, ingested = figures(probes, "fresh"), figures(probes, "ingested")
    floor = settings.profile_debounce_seconds + settings.profile_sweep_seconds
    print(json.dumps({
        "benchmark": "freshness",
        "load": {"events_per_s": round(load_rate), "target_events_per_s": args.rate, "users": args.users,
                 "errors": load.errors},
        "settings": {"debounce_s": settings.profile_debounce_seconds, "sweep_s": settings.profile_sweep_seconds,
                     "max_delay_s": settings.profile_max_delay_seconds, "batch_size": settings.profile_batch_size},
        "warm_up": warm,
        "probes": len(probes),
        "watching_requests_per_s": watching,
        "backlog_at_end": backlog,
        "lost": sum(1 for p in probes if p.fresh is None),
        "baseline_ingested": ingested,
        "fresh": fresh,
        "floor_debounce_plus_sweep_s": floor,
        "targets": {"fresh_p99_s": fresh["p99_s"], "fresh_p99_le_5s": fresh["p99_s"] <= 5.0},
    }, indent=2))


if __name__ == "__main__":
    main()
