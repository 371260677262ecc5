"""Profile rebuilds and lookups, each next to a baseline measured in the same run.

    .venv/bin/python bench/profiles.py [--users 20000] [--seconds 10] [--connections 16] [--cprofile]
                                       [--api-workers N] [--api-threads N] [--api-worker gthread|epoll]
                                       (default: the settings')

Prints one JSON document (progress on stderr):
- machine: how fast this machine runs a fixed piece of Python, to compare runs on different machines;
- rebuild: profiles/s of ``Rebuilder.rebuild`` in this one process over batches of
  RETAIN_PROFILE_BATCH_SIZE users, ~5 events each, tenant-less priors (no trained model), and the
  time of each phase (target >= 1,000 profiles/s per worker process), in three passes over every
  user, each once Cassandra is flushed and done compacting: the median pass counts, and every pass is
  listed (the first also pays the warm-up of a Cassandra just started, its code not yet compiled by
  the JVM, which a node in service has long done); --cprofile prints where the first pass goes;
- cassandra_quiesce: before the lookups, Cassandra is flushed and left to finish compacting what the
  rebuild wrote (lookups read Redis; a compaction meanwhile took CPU from whichever round it hit);
- lookups through gunicorn (RETAIN_API_WORKERS x RETAIN_API_THREADS) on loopback, the load generator
  in another process over 16 keep-alive connections (wrk when installed, and bench/loadgen.py's
  single-threaded client): closed-loop peak of GET /healthz (the framework ceiling) and of cache
  hits of 2,000 popular users (each API process holds them in memory after a warm-up), measured in
  five pairs of rounds back to back (the ratio is the median pair's, the peak each route's median
  round); each once: cache hits through Redis, misses of users whose profile is only in Cassandra,
  unknown users (negative lookups); batchGet of 100 ids; then, once Cassandra's JIT compiler is idle
  again (the misses just made it compile: ``open_loop_cassandra_jit_wait``), an open loop at half
  the cache-hit peak, latency counted from each request's scheduled send time (no coordinated
  omission), driven by bench/openloop.c when the machine has a C compiler (it costs the shared cores
  a fraction of what the Python client does; the Python client otherwise), in five rounds
  alternating with /healthz at half its own peak (the same share of its capacity: held profiles are
  answered before Flask, so the hits' peak is well above /healthz's); the round with the median p99
  counts, and each round
  says how often the host woke a sleeping process over 5 ms late meanwhile and how much CPU the
  hypervisor gave to other guests (steal): a stalled machine, not the code. Targets: cache hits
  >= 80% of /healthz, open-loop p99 <= 5 ms;
- redis_get: a raw redis-py GET loop (no pipelining) in one process: the floor under any cached lookup;
- cpu_cores of each phase: what the API (each process), Redis, Cassandra, the load generator and the
  whole machine used (and the hypervisor stole), to tell which one saturated it (the load generator
  shares the server's cores),
  and the API's CPU per request, which other jobs on a shared machine hardly change; with our load
  generator, also how long the API's threads waited for a core per request, and the share of the
  time the load generator itself waited for one (both part of the latency it counts).
Runs a stack of its own (Redis on a free port, Cassandra on 127.0.0.41, JMX 7999).
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import json
import os
import pstats
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import redis
from common import Stalls, bench_settings, descendants, machine_speed, quiet_cassandra, runqueue_seconds, settle_jit
from loadgen import build_openloop, latency, native_load, python_load, wrk_load

import retain.profiles.rebuild as rebuild_module
from retain.ingest.pipeline import Ingestor, TenantConfigs
from retain.ingest.submit import prepare
from retain.profiles.cache import ProfileCache
from retain.stack import Stack
from retain.store.cassandra import CassandraStore
from retain.store.redis import redis_client
from retain.store.schema import migrate
from retain.tenancy.registry import TenantRegistry
from retain.webapi.server import WORKER_CLASSES

from tests.harness import start_api

TICK = os.sysconf("SC_CLK_TCK")
# The users looked up again and again (what the near cache of each API process is for); the others
# are looked up once each, from Redis or from Cassandra.
POPULAR = 2000
ROUNDS = 5  # open-loop rounds of each route; the median one counts
PASSES = 3  # rebuild passes over every user; the median one counts
PAIRS = 5  # closed-loop pairs of rounds (/healthz and cache hits); the median pair counts
ZONES = ("Europe/Paris", "America/New_York", "Asia/Tokyo", "")
def log(message: str) -> None:
    print(f"[bench/profiles] {message}", file=sys.stderr, flush=True)


def user_messages(n: int, now: datetime) -> list[dict]:
    """Five events of one user over 60 days (a page visit, a product view, an email sent and opened,
    an order or an app open): every step of the scoring has something to do."""
    rnd, user, zone = random.Random(n), f"bu{n:06d}", ZONES[n % len(ZONES)]

    def msg(kind: str, days: float, **fields: Any) -> dict:
        at = now - timedelta(days=days, minutes=rnd.random() * 600)
        return {"type": kind, "userId": user, "messageId": str(uuid.uuid4()), "timestamp": at.isoformat(),
                "context": {"timezone": zone} if zone else {}, **fields}
    item = {"content_id": f"c{rnd.randrange(500)}", "category": f"cat{rnd.randrange(12)}"}
    last = (msg("track", rnd.uniform(0, 5), event="Order Completed", properties={"revenue": rnd.randint(5, 80)})
            if n % 3 == 0 else msg("track", rnd.uniform(0, 5), event="Application Opened", properties={}))
    return [msg("page", rnd.uniform(20, 60), name="Home", properties=item),
            msg("track", rnd.uniform(5, 20), event="Product Viewed", properties=item),
            msg("track", 10, event="Email Delivered", properties={}),
            msg("track", 9.9, event="Email Opened", properties={}), last]


def ingest(settings, store: CassandraStore, data: redis.Redis, tenant: str, users: int) -> dict:
    ingestor, now, events, started = Ingestor(settings, store, data), datetime.now(timezone.utc), 0, time.perf_counter()
    for first in range(0, users, 200):
        batch = [m for n in range(first, min(first + 200, users)) for m in user_messages(n, now)]
        ingestor.process(prepare(batch, tenant, "bench", settings, history=True).payload())  # history: old events ok
        events += len(batch)
    elapsed = time.perf_counter() - started
    return {"events": events, "seconds": round(elapsed, 1), "events_per_s": round(events / elapsed)}


def rebuild(settings, store: CassandraStore, cache: ProfileCache, tenant: str, ids: list[str], profile: bool) -> dict:
    rebuilder = rebuild_module.Rebuilder(settings, store, cache, TenantConfigs(TenantRegistry(store)).get)
    phases: Counter = Counter()

    def timed(phase: str, fn: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[phase] += time.perf_counter() - started
        return wrapper
    # Per-phase times without touching retain: wrap this process's objects, and the names rebuild()
    # looks up in its module's globals (restored below).
    # Reads and writes are issued without waiting and overlap the scoring: what is not in a phase
    # below ("io_wait") is time spent waiting for Cassandra.
    rebuilder._start_reads = timed("start_reads", rebuilder._start_reads)
    rebuilder.profiles.start_writes = timed("start_writes", rebuilder.profiles.start_writes)
    cache.put = timed("write_cache", cache.put)
    originals = {name: getattr(rebuild_module, name) for name in ("event_columns", "activity", "score")}
    for name, phase in (("event_columns", "decode_classify"), ("activity", "activity"), ("score", "score")):
        setattr(rebuild_module, name, timed(phase, originals[name]))
    size, profiler = settings.profile_batch_size, cProfile.Profile() if profile else None
    try:
        result = rebuilder.rebuild(tenant, ids[:1])  # warm-up: prepared statements, tenant config, model pointer
        phases.clear()
        started, written, cpu = time.perf_counter(), 0, time.process_time()  # all threads: the driver's too
        if profiler:
            profiler.enable()
        for first in range(0, len(ids), size):
            result = rebuilder.rebuild(tenant, ids[first:first + size])
            written += result.written
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        if profiler:
            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        for name, fn in originals.items():
            setattr(rebuild_module, name, fn)
        del cache.put
    return {"users": len(ids), "batch_size": size, "written": written, "seconds": round(elapsed, 2),
            "model": result.model_version or "priors", "cprofile_on": profile,
            "profiles_per_s": round(len(ids) / elapsed), "this_process_cpu_cores": round(cpu / elapsed, 2),
            "phase_ms_per_batch": {k: round(v * 1000 * size / len(ids), 1) for k, v in phases.items()},
            "phase_share": {**{k: round(v / elapsed, 3) for k, v in phases.items()},
                            "io_wait": round(1 - sum(phases.values()) / elapsed, 3)}}


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        total += (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
    return total


def machine_busy() -> tuple[float, float]:
    """CPU seconds the whole machine spent not idle (other jobs share it: their part is noise), and
    those the hypervisor gave to other guests while this one had work (steal)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # All but idle and iowait (guest time is counted in user).
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / TICK, ticks[7] / TICK


def with_cpu(servers: dict[str, Callable[[], list[int]]], run: Callable[[], dict | None]) -> dict | None:
    """``run``'s result plus the cores each server process tree (and the machine) used meanwhile, each
    API process's share (gunicorn workers accept connections unevenly), and the API's CPU per request:
    unlike requests/s, that cost hardly depends on what else runs on the machine."""
    def sample() -> tuple[dict[str, dict[int, float]], float]:
        """Each server process's CPU seconds, and how long the API's threads have waited for a core
        (each server's processes listed once: finding the API's walks all of /proc)."""
        pids = {k: f() for k, f in servers.items()}
        return ({k: {pid: cpu_seconds([pid]) for pid in found} for k, found in pids.items()},
                sum(runqueue_seconds(pid) for pid in pids.get("api", [])))
    (before, waited_before), started = sample(), time.perf_counter()
    busy_before, steal_before = machine_busy()
    result = run()
    wall = time.perf_counter() - started
    after, waited = sample()
    waited -= waited_before
    if result is not None:
        used = {k: {pid: (t - before[k].get(pid, 0.0)) / wall for pid, t in pids.items()} for k, pids in after.items()}
        cores = {k: round(sum(by_pid.values()), 2) for k, by_pid in used.items()}
        busy_after, steal_after = machine_busy()
        result["cpu_cores"] = {**cores, "machine": round((busy_after - busy_before) / wall, 2),
                               "stolen_by_host": round((steal_after - steal_before) / wall, 2)}
        if "api" in used:
            result["cpu_cores"]["api_per_process"] = sorted(round(c, 2) for c in used["api"].values())
        if "requests" in result:
            result["cpu_cores"]["loadgen"] = result.pop("loadgen_cpu_cores")
            result["api_cpu_ms_per_request"] = round(cores["api"] * wall * 1000 / result["requests"], 3)
            # How long the API's threads waited for a core, per request: the machine's share of latency.
            result["api_runqueue_ms_per_request"] = round(waited * 1000 / result["requests"], 3)
    return result


def middle(items: list, key: Callable[[Any], float] = lambda x: x) -> Any:
    """The median item by ``key`` (the upper one of an even count: an item measured, not a mean)."""
    return sorted(items, key=key)[len(items) // 2]


def peak(rounds: list[dict | None]) -> dict | None:
    """The round with the median throughput (the peak as the machine gives it most of the time:
    the open loop runs then too, so half of the best round would be more than half of the capacity
    it meets), and every round's requests/s."""
    if rounds[0] is None:
        return None
    return {**middle(rounds, lambda r: r["rps"]), "rps_rounds": [r["rps"] for r in rounds]}


def pair_ratios(hits: list[dict | None], trivial: list[dict | None]) -> dict | None:
    """Cache hits' requests/s over /healthz's in each pair of rounds, and the median pair's ratio."""
    if hits[0] is None:
        return None
    ratios = sorted(round(h["rps"] / t["rps"], 3) for h, t in zip(hits, trivial))
    return {"median": middle(ratios), "pairs": ratios}


def redis_get_loop(url: str, key: str, seconds: float) -> dict:
    client, lat = redis.Redis.from_url(url), []
    started = time.perf_counter()
    end = started + seconds
    while (t := time.perf_counter()) < end:
        client.get(key)
        lat.append(int((time.perf_counter() - t) * 1e6))
    client.close()
    return {"ops": len(lat), "ops_per_s": round(len(lat) / (time.perf_counter() - started)), **latency(lat)}


def lookups(url: str, read_key: str, hit_ids: list[str], redis_ids: list[str], miss_ids: list[str], servers: dict,
            seconds: float, home: Path, conns: int) -> dict:
    port = int(url.rsplit(":", 1)[1])
    auth = "Basic " + base64.b64encode(f"{read_key}:".encode()).decode()

    def get(path: str) -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\r\n".encode()
    hit_paths = [f"/v1/profiles/{u}" for u in random.Random(1).sample(hit_ids, len(hit_ids))]
    hits, healthz = [get(p) for p in hit_paths], [b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"]
    bodies = [json.dumps({"ids": random.Random(i).sample(hit_ids, 100)}).encode() for i in range(50)]
    batches = [f"POST /v1/profiles:batchGet HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(b)}\r\n\r\n".encode() + b for b in bodies]
    measure = lambda run: with_cpu(servers, run)  # noqa: E731
    native = build_openloop(home)  # the open loop's generator, when there is a C compiler
    # Warm-up: every connection asks for every popular user once. A gunicorn worker keeps the
    # connections it accepted, so each API process then holds them all in memory (and has connected
    # to Redis and Cassandra and knows the key) before anything is measured.
    python_load(port, [r for r in hits for _ in range(conns)], conns, once=True)
    log(f"closed loop: /healthz and cache hits, {PAIRS} pairs of rounds (wrk, then the Python client)")
    # Each pair measures both routes back to back, in turns of order, so the machine's noise of the
    # moment lands on both: the ratio is the median pair's (best round against best round would
    # reward whichever route happened to get the quietest moment).
    runs: dict[str, list] = {k: [] for k in ("healthz-wrk", "hit-wrk", "healthz-python", "hit-python")}
    round_seconds = seconds / PAIRS
    load = {"wrk": {"healthz": lambda: wrk_load(url, ["/healthz"], "", conns, round_seconds, home),
                    "hit": lambda: wrk_load(url, hit_paths, auth, conns, round_seconds, home)},
            "python": {"healthz": lambda: python_load(port, healthz, conns, round_seconds),
                       "hit": lambda: python_load(port, hits, conns, round_seconds)}}
    for n in range(PAIRS):
        for gen, routes in load.items():
            for route in ("healthz", "hit") if n % 2 == 0 else ("hit", "healthz"):
                runs[f"{route}-{gen}"].append(measure(routes[route]))
    closed: dict[str, Any] = {"trivial_healthz": {g: peak(runs[f"healthz-{g}"]) for g in load},
                              "cache_hit": {g: peak(runs[f"hit-{g}"]) for g in load},
                              "cache_hit_over_trivial_pairs": {g: pair_ratios(runs[f"hit-{g}"], runs[f"healthz-{g}"])
                                                               for g in load}}
    log("closed loop: batchGet, hits through Redis, misses, unknown users")
    closed["batch_get_100_cached"] = measure(lambda: python_load(port, batches, conns, seconds))
    closed["batch_get_100_cached"]["profiles_per_s"] = closed["batch_get_100_cached"]["rps"] * 100
    closed["cache_hit_redis_each_once"] = measure(
        lambda: python_load(port, [get(f"/v1/profiles/{u}") for u in redis_ids], conns, once=True))
    closed["cache_miss_in_cassandra_each_once"] = measure(
        lambda: python_load(port, [get(f"/v1/profiles/{u}") for u in miss_ids], conns, once=True))
    closed["unknown_user_each_once"] = measure(
        lambda: python_load(port, [get(f"/v1/profiles/ghost-{n}") for n in range(len(miss_ids))], conns, once=True))
    rates = {route: max(r["rps"] for r in closed[name].values() if r) / 2
             for route, name in (("hit", "cache_hit"), ("healthz", "trivial_healthz"))}
    # A cache hit does not touch Cassandra, but the node sharing this machine was still compiling
    # what the misses had just run (perf: its JIT took a third to a half of a core through the
    # first rounds, and the largest stalls of the lookups fell in its bursts): a node in service
    # has long compiled its read path. So the open loop starts once the compiler is idle: under 1%
    # of a core (3% still let bursts of a third of a core through in the rounds).
    jit = settle_jit(servers["cassandra"]()[0], 0, 240, lambda m: log(f"before the open loop: {m}"), settled=0.01)
    log(f"open loop: cache hits at {rates['hit']:.0f}/s, then /healthz at {rates['healthz']:.0f}/s (each half its "
        f"peak), {ROUNDS} rounds")
    # /healthz at the same share of its peak: what gunicorn, Flask and this machine's scheduling add to the tail.
    # Rounds alternate, and the median round counts: a burst of other jobs on the shared machine
    # lands in one round instead of deciding the figure.
    opened: dict[str, list] = {"hit": [], "healthz": []}

    def open_loop(reqs: list[bytes], rate: float) -> dict:
        if native:
            return native_load(native, port, reqs, conns, seconds, rate)
        return python_load(port, reqs, conns, seconds, rate=rate)
    for _ in range(ROUNDS):
        for route, reqs in (("hit", hits), ("healthz", healthz)):
            with Stalls() as host:
                opened[route].append(measure(lambda: open_loop(reqs, rates[route])))
            opened[route][-1]["host"] = host.report
    return {"closed_loop": closed, "open_loop_cassandra_jit_wait": jit,
            "open_loop_cache_hit_half_peak": median_round(opened["hit"]),
            "open_loop_healthz_half_peak": median_round(opened["healthz"])}


def median_round(rounds: list[dict]) -> dict:
    """The round with the median p99, and every round's p50/p99/p99.9 and late wake-ups of the host."""
    return {**middle(rounds, lambda r: r["p99_ms"]),
            "rounds_p50_p99_p999_ms": [[r["p50_ms"], r["p99_ms"], r["p999_ms"]] for r in rounds],
            "rounds_host_late_wakeups": [r["host"]["late_wakeups_over_5ms"] for r in rounds],
            "rounds_host_stolen_cores": [r["cpu_cores"]["stolen_by_host"] for r in rounds],
            "rounds_api_runqueue_ms_per_request": [r["api_runqueue_ms_per_request"] for r in rounds],
            "rounds_loadgen_runqueue_share": [r["loadgen_runqueue_share"] for r in rounds]}


def targets(report: dict, settings) -> dict:
    closed = report["closed_loop"]
    gen = "wrk" if closed["cache_hit"]["wrk"] else "python"
    hit, trivial, pairs = closed["cache_hit"], closed["trivial_healthz"], closed["cache_hit_over_trivial_pairs"]
    ratio, p99 = pairs[gen]["median"], report["open_loop_cache_hit_half_peak"]["p99_ms"]
    return {"cache_hit_over_trivial": ratio, "ratio_loadgen": gen, "cache_hit_ratio_ge_0.8": ratio >= 0.8,
            "cache_hit_over_trivial_python": pairs["python"]["median"],
            "cache_hit_over_trivial_best_rounds": round(max(hit[gen]["rps_rounds"])
                                                        / max(trivial[gen]["rps_rounds"]), 3),
            "api_cpu_per_request_hit_over_trivial": round(hit[gen]["api_cpu_ms_per_request"]
                                                          / trivial[gen]["api_cpu_ms_per_request"], 2),
            "open_loop_p99_ms": p99, "open_loop_p99_le_5ms": p99 <= 5.0,
            "open_loop_loadgen": report["open_loop_cache_hit_half_peak"]["loadgen"],
            "open_loop_healthz_p99_ms": report["open_loop_healthz_half_peak"]["p99_ms"],
            "rebuild_profiles_per_s": report["rebuild"]["profiles_per_s"],
            "rebuild_ge_1000_per_s": report["rebuild"]["profiles_per_s"] >= 1000,
            "api": f"{settings.api_processes()} workers x {settings.api_threads} threads, {settings.api_worker}"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections of the load")
    parser.add_argument("--cprofile", action="store_true", help="profile the rebuild pass (top 25 on stderr)")
    parser.add_argument("--api-workers", type=int, help="default: the setting's default")
    parser.add_argument("--api-threads", type=int, help="default: the setting's default")
    parser.add_argument("--api-worker", choices=sorted(WORKER_CLASSES), help="default: the setting's default")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="retain-bench-profiles-"))
    api_settings = {k: v for k, v in (("api_workers", args.api_workers), ("api_threads", args.api_threads),
                                      ("api_worker", args.api_worker)) if v}
    settings = bench_settings(home, ["127.0.0.41"], 7999, **api_settings)
    stack, api, report = Stack(settings), None, {"benchmark": "profiles", "cores": os.cpu_count(),
                                          "machine": machine_speed()}
    servers = {"redis": lambda: [stack.redis.process.pid()],
               "cassandra": lambda: [p for p in [stack.nodes[0].process.pid()] if p]}
    try:
        stack.up(1, progress=log)
        store, data = CassandraStore(settings), redis_client(settings)
        migrate(store, settings.cassandra_replication)
        tenant, keys = TenantRegistry(store).create(f"bench-{uuid.uuid4().hex[:6]}")
        log(f"ingesting {args.users} users x 5 events")
        report["ingest"] = ingest(settings, store, data, tenant.tenant_id, args.users)
        cache = ProfileCache(data, settings.redis_prefix, settings.profile_cache_ttl_seconds,
                             settings.profile_negative_ttl_seconds)
        ids = [f"bu{n:06d}" for n in range(args.users)]
        passes = []
        for n in range(PASSES):
            # Otherwise the compactions of what was written before (the events, then the last
            # pass's profiles) share the machine with the pass.
            quiet = quiet_cassandra(settings, settings.stack_cassandra_addresses[0])
            log(f"rebuilding every user, pass {n + 1} of {PASSES}")
            passes.append({**with_cpu(servers, lambda: rebuild(settings, store, cache, tenant.tenant_id, ids,
                                                               args.cprofile and n == 0)),
                           "cassandra_quiesce": quiet})
        report["rebuild"] = {"target_per_s": 1000, **middle(passes, lambda p: p["profiles_per_s"]),
                             "passes_profiles_per_s": [p["profiles_per_s"] for p in passes]}
        # Misses: users whose profile is in Cassandra but whose cache entry is gone.
        misses = min(4000, args.users // 4)
        for first in range(len(ids) - misses, len(ids), 1000):
            data.delete(*(cache.key(tenant.tenant_id, u) for u in ids[first:first + 1000]))
        sample = data.hget(cache.key(tenant.tenant_id, ids[0]), "b")
        data.set("bench:raw", sample)
        log("waiting for Cassandra's compactions of what was written to finish")
        report["cassandra_quiesce"] = quiet_cassandra(settings, settings.stack_cassandra_addresses[0])
        api, url = start_api(settings, "bench-api")
        servers["api"] = lambda: [api.pid(), *descendants(api.pid())]
        popular = ids[:min(POPULAR, len(ids) // 4)]
        redis_ids = ids[len(popular):len(popular) + misses]
        report.update(lookups(url, keys["read"], popular, redis_ids, ids[-misses:], servers, args.seconds, home,
                              args.connections))
        log("raw Redis GET loop")
        report["redis_get"] = {"value_bytes": len(sample), **redis_get_loop(settings.redis_url, "bench:raw",
                                                                            args.seconds / 2)}
        report["targets"] = targets(report, settings)
        store.close()
        data.close()
    finally:
        if api is not None:
            api.stop(30)
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
