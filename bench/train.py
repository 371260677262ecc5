"""Training wall time and peak memory as events grow, beside the compressed BG/NBD fit vs a per-row one.

    PYTHONPATH=. python3 bench/train.py [--events 100000 1000000 10000000] [--skip-bgnbd] [--out FILE]
                                        [--budget SECONDS] [--keep DIR (lakes kept and reused across runs)]

Prints one JSON document (progress goes to stderr). ``training``: per size, a synthetic tenant
(``retain.generator``, 180 days, users scaled to land near the size; the actual count is reported)
is written to a temporary lake as the flush lays it out (Parquet per tenant/date/hour listed by
manifests; no Redis), then ``train_tenant`` runs in a child process with a fresh Spark session on
``--master`` (local[2]). Reported: generation and lake-writing seconds (not counted), training wall
time and its split by step, the peak RSS (VmHWM) of the driver JVM, the Python driver and pyspark
workers, a trivial Spark job timed in the same session (cold, before, after) and the growth
between sizes. A size whose time, extrapolated from the previous ones, would overrun ``--budget``
seconds of total run time is skipped, with the reason. ``bgnbd``: bench/bgnbd_fit.py's
comparison at 10^6 users, cohort and spread populations; the target is >= 10x faster with
parameters within 1e-4 (relative), and the exit status is 1 if either misses it. The machine is
shared and noisy: the load average before and after is in the output.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bgnbd_fit import TOLERANCE, TRUE, compressed_fit, simulate
from bgnbd_fit import run as bgnbd_run
from common import TreePeaks, child_env, peak_rss_mb

from retain.config import Settings
from retain.events import from_dict
from retain.generator import generate
from retain.ingest.submit import prepare
from retain.lake import open_lake
from retain.lake.flush import file_path, manifest_path
from retain.lake.parquet import rows_to_parquet
from retain.lake.schema import lake_row
from retain.tenancy.config import TenantConfig, classify

TENANT, DAYS, HOLDOUT_DAYS, START = "bench", 180, 30, datetime(2025, 1, 1, tzinfo=timezone.utc)
EVENTS_PER_USER = 50  # measured: the generator's default tenant makes ~50 events per user in 180 days
EVENTS_PER_FILE = 50_000  # the generator's NDJSON files
FLUSH_EVENTS = 200_000  # rows per lake "flush" (one file per tenant/date/hour each), as tests/lake_helpers
CONFIG = TenantConfig()  # the default classification: what a tenant gets without configuring it
SPEEDUP_TARGET = 10.0
# train_tenant's steps, timed by wrapping the module's functions (each triggers its own Spark jobs;
# the first, retention, also reads the lake and fills the cache the others share).
PHASES = ("_retention", "_tracking", "_spend", "_channels", "_send_time", "_importance", "_content", "_report")


def log(message: str) -> None:
    print(f"[bench/train {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def write_lake(settings: Settings, tenant: str, gen_dir: Path) -> int:
    """Generated messages to lake rows (as the ingest worker builds them) in Parquet files and
    manifests laid out as the flush writes them, so ``retain.spark.lake.read_events`` finds them."""
    files = sorted(gen_dir.glob("events-*.ndjson"))
    step = max(1, FLUSH_EVENTS // EVENTS_PER_FILE)
    ranges = [(settings, tenant, files[i:i + step], n + 1) for n, i in enumerate(range(0, len(files), step))]
    # Ranges are independent (their own files and manifest): one process per core halves the
    # pure-Python row building, the longest part of the run before training at 10^7 events.
    with multiprocessing.get_context("fork").Pool(os.cpu_count()) as pool:
        return sum(pool.starmap(write_range, ranges))


def write_range(settings: Settings, tenant: str, files: list[Path], seq: int) -> int:
    rows = []
    for path in files:
        with open(path, encoding="utf-8") as handle:
            sub = prepare([json.loads(line) for line in handle], tenant, "backfill", settings, history=True)
        if sub.rejected:
            raise RuntimeError(f"{path}: generated messages rejected: {sub.rejected[:3]}")
        for data in sub.events:
            event = from_dict(data)
            rows.append(lake_row(event, classify(event, CONFIG), event.timestamp))
    # Stream ids stand in for the staging stream's: they only name the files and the manifest.
    first, last = f"{seq}-0", f"{seq}-{len(rows) - 1}"
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["date"], row["hour"]), []).append(row)
    lake, listed = open_lake(settings), []
    for (day, hour), group in sorted(groups.items()):
        path = file_path(tenant, day, hour, first, last)
        lake.put(path, rows_to_parquet(group))
        listed.append({"path": path, "rows": len(group), "tenant": tenant, "date": day, "hour": hour})
    # Last, as in the flush: readers trust only files a manifest lists. Same document (format 1).
    lake.put(manifest_path(first, last), json.dumps({
        "format": 1, "stream": {"first": first, "last": last}, "rows": len(rows), "tenants": [tenant],
        "dates": sorted({item["date"] for item in listed}), "files": listed}, indent=1, sort_keys=True).encode())
    return len(rows)


def memory_peaks(peaks: dict[int, tuple[bytes, float]]) -> dict[str, Any]:
    """The largest peak RSS per kind of process: this (the Python driver), the py4j gateway's JVM,
    pyspark.daemon and its forked workers (none unless a job runs Python code on rows)."""
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it would report the parent's peak.
    out: dict[str, Any] = {"python_driver_peak_mb": round(peak_rss_mb("self"))}
    # By the program and module, not any mention of pyspark: the JVM's class path names it too.
    for kind, matches in (("jvm", lambda argv: argv[0].endswith(b"java")),
                          ("pyspark_workers", lambda argv: b"python" in argv[0] and b"pyspark.daemon" in argv)):
        mine = [mb for line, mb in peaks.values() if matches(line.split(b"\0"))]
        out[f"{kind}_processes"], out[f"{kind}_peak_mb"] = len(mine), round(max(mine, default=0.0))
    return out


def train_child(spec: dict[str, Any]) -> dict[str, Any]:
    """In a process of its own, so each size gets a fresh JVM and its own memory high-water marks."""
    import retain.spark.train as train_module
    from retain.spark.session import spark_session

    phases: dict[str, float] = {}

    def timed_phase(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[name] = round(time.perf_counter() - began, 2)
        return wrapper

    for name in PHASES:  # only those train.py still has: it changes under this bench
        if callable(fn := getattr(train_module, name, None)):
            setattr(train_module, name, timed_phase(name.lstrip("_"), fn))
    settings, memory, began = Settings.from_env(), TreePeaks(), time.perf_counter()
    memory.start()
    spark = spark_session(settings, "retain-bench-train")
    session_seconds, baseline = time.perf_counter() - began, []

    def trivial_job() -> None:
        began = time.perf_counter()
        spark.range(10**6).count()
        baseline.append(round(time.perf_counter() - began, 3))

    try:
        trivial_job()  # cold: includes the JVM's warm-up (class loading, codegen)
        trivial_job()  # warm, before training and (below) after: how loaded the machine was
        began = time.perf_counter()
        result = train_module.train_tenant(spark, settings, spec["tenant"], CONFIG,
                                           date.fromisoformat(spec["cutoff"]), spec["holdout_days"])
        seconds = time.perf_counter() - began
        trivial_job()
        peaks = memory_peaks(memory.finish())  # before stop(): the JVM and workers are still there
    finally:
        spark.stop()
    return {"train_seconds": round(seconds, 2), "phase_seconds": phases, "status": result.status,
            "calibration_users": result.metrics.get("users"), "bgnbd": result.params.get("bgnbd"),
            "not_fitted": result.not_fitted, "session_start_seconds": round(session_seconds, 2),
            "baseline_range_count_seconds": dict(zip(("cold", "before", "after"), baseline)), "memory": peaks}


def build_lake(target: int, settings: Settings, work: Path) -> dict[str, Any]:
    """Generate about ``target`` events and write them to the lake; reused when ``work`` has one."""
    done = work / "lake.json"
    if done.exists():  # --keep: the times are those of the run that built it
        return {**json.loads(done.read_text()), "lake_reused": True}
    users, gen_dir = max(1, round(target / EVENTS_PER_USER)), work / "generated"
    began = time.perf_counter()
    generate(TENANT, users, DAYS, 7, gen_dir, start=START, events_per_file=EVENTS_PER_FILE, overwrite=True)
    info = {"users": users, "days": DAYS, "generate_seconds": round(time.perf_counter() - began, 1)}
    log(f"{target}: generated {users} users' events in {info['generate_seconds']:.0f} s")
    began = time.perf_counter()
    info["events"] = write_lake(settings, TENANT, gen_dir)
    info["lake_write_seconds"] = round(time.perf_counter() - began, 1)
    shutil.rmtree(gen_dir)  # the NDJSON is several times the Parquet's size
    log(f"{target}: wrote {info['events']} lake rows in {info['lake_write_seconds']:.0f} s")
    done.write_text(json.dumps(info))
    return info


def train_size(target: int, base: Settings, work: Path) -> dict[str, Any]:
    settings = base.replace(home=work / "home", lake_url=f"file://{work}/lake", model_store_url=f"file://{work}/models")
    lake = build_lake(target, settings, work)
    cutoff = (START + timedelta(days=DAYS - HOLDOUT_DAYS - 1)).date()
    spec = {"tenant": TENANT, "cutoff": cutoff.isoformat(), "holdout_days": HOLDOUT_DAYS, "out": str(work / "out.json")}
    began = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=child_env(settings), check=True)
    trained = json.loads((work / "out.json").read_text())
    log(f"{target}: trained in {trained['train_seconds']} s ({time.perf_counter() - began:.0f} s with the session)")
    return {"target_events": target, **lake, "child_seconds": round(time.perf_counter() - began, 1), **trained}


def growth(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each size against the previous one: how training time and peak memory grow with events."""
    def ratio(small: dict[str, Any], big: dict[str, Any], key: str) -> float:
        return round(big[key] / small[key], 2)
    return [{"from": s["events"], "to": b["events"], "events_ratio": ratio(s, b, "events"),
             "train_seconds_ratio": ratio(s, b, "train_seconds"),  # and as a power of the events ratio:
             "train_seconds_exponent": round(math.log(b["train_seconds"] / s["train_seconds"])
                                             / math.log(b["events"] / s["events"]), 2),
             "jvm_peak_ratio": ratio(s["memory"], b["memory"], "jvm_peak_mb"),
             "python_peak_ratio": ratio(s["memory"], b["memory"], "python_driver_peak_mb")}
            for s, b in zip(results, results[1:])]


def projection(results: list[dict[str, Any]], target: int) -> float:
    """Seconds a size will take: generating and writing grow linearly with events; training (with
    its session) along the line through the last two sizes, as it is mostly fixed costs when small.
    After one size only its fixed cost is known, so it is taken as is."""
    last = results[-1]
    linear = (last["generate_seconds"] + last["lake_write_seconds"]) * target / last["events"]
    slope = 0.0
    if len(results) > 1:
        prev = results[-2]
        slope = max(0.0, (last["child_seconds"] - prev["child_seconds"]) / (last["events"] - prev["events"]))
    return linear + last["child_seconds"] + slope * (target - last["events"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--budget", type=float, default=1500.0, help="seconds of total run time to stay within")
    parser.add_argument("--keep", type=Path, help="keep the lakes here, and reuse those already there")
    parser.add_argument("--skip-bgnbd", action="store_true")
    parser.add_argument("--bgnbd-users", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2, help="BG/NBD fits per method; the fastest counts")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        Path(spec["out"]).write_text(json.dumps(train_child(spec)))
        return
    began, doc = time.perf_counter(), {"benchmark": "train", "machine": {"cpus": os.cpu_count(),
                                                                        "load_average_before": os.getloadavg()}}
    if not args.skip_bgnbd:
        compressed_fit(*simulate(TRUE, 2000, 100, 0))  # warm-up: scipy's lazy imports, first-call costs
        runs = [bgnbd_run(args.bgnbd_users, 365, population, 7, args.repeats) for population in ("cohort", "spread")]
        for fitted in runs:
            fitted["meets_target"] = fitted["within_tolerance"] and fitted["speedup"] >= SPEEDUP_TARGET
            log(f"bgnbd {fitted['population']}: {fitted['speedup']}x, max rel diff {fitted['param_max_rel_diff']}")
        doc["bgnbd"] = {"target": {"speedup_at_least": SPEEDUP_TARGET, "param_rel_diff_at_most": TOLERANCE},
                        "meets_target": all(fitted["meets_target"] for fitted in runs), "results": runs}
    base = Settings.from_env(spark_master=args.master)  # RETAIN_SPARK_DRIVER_MEMORY etc. from the environment
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for target in sorted(args.events):
        if results and time.perf_counter() - began + (projected := projection(results, target)) > args.budget:
            skipped.append({"target_events": target, "reason": f"projected {projected:.0f} s (extrapolated from "
                            f"{results[-1]['events']} events) would overrun the {args.budget:.0f} s budget (--budget)"})
            log(f"{target}: skipped, {skipped[-1]['reason']}")
            continue
        with tempfile.TemporaryDirectory(prefix="retain-bench-train-") as tmp:
            (work := args.keep / str(target) if args.keep else Path(tmp)).mkdir(parents=True, exist_ok=True)
            results.append(train_size(target, base, work.resolve()))
    doc["training"] = {"master": base.spark_master, "driver_memory": base.spark_driver_memory,
                       "results": results, "growth": growth(results), "skipped": skipped}
    doc["machine"]["load_average_after"] = os.getloadavg()
    doc["total_seconds"] = round(time.perf_counter() - began, 1)
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    sys.exit(0 if doc.get("bgnbd", {}).get("meets_target", True) else 1)


if __name__ == "__main__":
    main()
