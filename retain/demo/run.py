"""`retain demo`: the whole system on this machine, end to end, with real services.

Steps: the local stack and schema; the processes a deployment runs (ingest and training workers,
beat, API, Flower, the autoscaler with its local fleet of profile workers); two tenants; their
generated events sent through the HTTP API; models trained with Spark; every user's profile rebuilt
on the autoscaled fleet; a summary. Then the stack stays up until Ctrl-C (or stops, with --exit).
The demo stops only what it started: services already running are left as they were.
"""

from __future__ import annotations

import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import redis
import requests

from retain.config import Settings
from retain.errors import RetainError
from retain.demo.data import DemoTenant, demo_tenants, ensure_tenant, generate_events, sample_users, send_all
from retain.demo.processes import DemoError, DemoProcesses
from retain.demo.summary import render
from retain.stack import Stack
from retain.store.cassandra import CassandraStore
from retain.store.schema import migrate

# Demo-sized defaults, applied only to settings left at their defaults: a fleet that visibly grows
# and shrinks within minutes, and profile workers that pick up a new model within seconds.
DEMO_SETTINGS: dict[str, Any] = {
    "autoscaler_backend": "local", "autoscaler_pools": {"profiles": "profiles"},
    "autoscaler_min_workers": {"profiles": 0}, "autoscaler_max_workers": {"profiles": 2},
    "autoscaler_interval_seconds": 2.0, "autoscaler_startup_seconds": 5.0, "autoscaler_stabilization_seconds": 20.0,
    "autoscaler_fallback_rate": 2.0, "profile_model_refresh_seconds": 2.0,
}


def demo_settings(settings: Settings) -> tuple[Settings, bool]:
    """The settings the demo runs with, and whether it made up Flower's credentials."""
    fields = type(settings).model_fields
    update = {k: v for k, v in DEMO_SETTINGS.items() if getattr(settings, k) == fields[k].get_default(call_default_factory=True)}
    made_credentials = not (settings.flower_user and settings.flower_password)
    if made_credentials:
        update.update(flower_user="retain", flower_password=secrets.token_urlsafe(12))
    return settings.model_copy(update=update), made_credentials


@dataclass
class Demo:
    settings: Settings
    progress: Callable[[str], None] = print
    summary: dict[str, Any] = field(default_factory=dict)
    # One Redis client for the whole run: the waits poll it several times a second.
    _data_client: redis.Redis | None = field(default=None, init=False, repr=False)
    began_wall: float = field(default=0.0, init=False, repr=False)  # time.time() at the start of run()

    def _step(self, message: str) -> float:
        self.progress(f"==> {message}")
        return time.monotonic()

    def run(self, dcs: int = 1, exit_when_done: bool = False, users: int = 2000, days: int = 60,
            show: Callable[[dict], None] | None = None) -> dict:
        """Run every step; ``show`` gets the summary (default: the text summary on stdout) before the
        demo waits for Ctrl-C or, with ``exit_when_done``, stops."""
        began, self.began_wall = time.monotonic(), time.time()
        self.settings, made_credentials = demo_settings(self.settings)
        stack = Stack(self.settings)
        self.procs = DemoProcesses(self.settings)
        started_services: list[str] = []
        try:
            t0 = self._step(f"starting the local stack (Redis, Cassandra in {dcs} datacenter(s))")
            before = {s.name for s in stack.status() if s.state == "running"}
            statuses = stack.up(dcs, progress=lambda m: self.progress(f"    {m}"))
            started_services = [s.name for s in statuses if s.name not in before]
            self.summary["stack_up_s"] = round(time.monotonic() - t0, 1)
            self._migrate()
            self._start_processes()
            tenants = demo_tenants(users)
            keys = self._tenants(tenants)
            out = self._generate(tenants, days)
            self._ingest(tenants, keys, out)
            self._train(tenants)
            self._rebuild(tenants)
            self._show_profiles(tenants, keys, out)
            self.summary.update(self._endpoints(made_credentials), keys=keys, seconds=round(time.monotonic() - began, 1),
                                services=[s.to_dict() for s in stack.status()])
        except BaseException:
            # A failed step, Ctrl-C or a bug: leave nothing behind that this run started.
            self._stop(stack, started_services)
            raise
        (show or (lambda summary: print(render(summary), flush=True)))(self.summary)
        if exit_when_done:
            self._stop(stack, started_services)
        else:
            self._wait_for_interrupt(stack, started_services)
        return self.summary

    # -- steps -----------------------------------------------------------------------------------
    def _migrate(self) -> None:
        self._step("applying the Cassandra schema")
        store = CassandraStore(self.settings)
        try:
            report = migrate(store, self.settings.cassandra_replication)
        finally:
            store.close()
        self.summary["keyspace"] = report.keyspace

    def _start_processes(self) -> None:
        self._step("starting workers, beat, the API, Flower and the autoscaler")
        self.procs.start()
        api, flower = self._api_url(), f"http://{self.settings.flower_host}:{self.settings.flower_port}"
        auth = (self.settings.flower_user, self.settings.flower_password)
        self.procs.wait(lambda: requests.get(f"{api}/readyz", timeout=2).status_code == 200, 120,
                        f"the API answering ready at {api}/readyz", "start-up")
        self.procs.wait(lambda: requests.get(f"{flower}/api/workers", auth=auth, timeout=2).status_code == 200, 120,
                        f"Flower answering at {flower}", "start-up")
        self.procs.wait(self._autoscaler_status, 120, "the autoscaler's first look", "start-up")

    def _tenants(self, tenants: list[DemoTenant]) -> dict[str, dict[str, str]]:
        self._step(f"creating tenants {', '.join(t.name for t in tenants)}")
        store = CassandraStore(self.settings)
        try:
            return {t.name: ensure_tenant(store, t.name) for t in tenants}
        finally:
            store.close()

    def _generate(self, tenants: list[DemoTenant], days: int) -> dict[str, Path]:
        self._step(f"generating {days} days of behaviour for {tenants[0].users} users per tenant")
        out = {t.name: self.settings.home / "demo" / "events" / t.name for t in tenants}
        self.summary["tenants"] = {}
        for t in tenants:
            report = generate_events(t, days, out[t.name])
            self.summary["tenants"][t.name] = {"kind": t.kind, "users": t.users, "events": report["events"]}
            self.progress(f"    {t.name}: {report['events']:,} events")
        return out

    def _ingest(self, tenants: list[DemoTenant], keys: dict, out: dict[str, Path]) -> None:
        total = sum(self.summary["tenants"][t.name]["events"] for t in tenants)
        t0 = self._step(f"sending {total:,} events through the HTTP ingestion API ({self._api_url()}/v1/import)")
        sent = {"events": 0, "next": total // 10}

        def on_batch(_: str, events: int) -> None:
            sent["events"] += events
            if sent["events"] >= sent["next"]:
                self.progress(f"    {sent['events']:,} of {total:,} accepted ({time.monotonic() - t0:.0f} s)")
                sent["next"] += total // 10
                self.procs.check("ingestion")

        try:
            # A refused upload is checked against the processes before it is retried: a dead API is
            # reported at once, not after the retries' deadline.
            reports = send_all(self._api_url(), [(t.name, [out[t.name]], keys[t.name]["write"]) for t in tenants],
                               on_batch, before_retry=lambda: self.procs.check("ingestion"))
        except RetainError:
            self.procs.check("ingestion")  # a dead API explains a refused upload best
            raise
        for name, report in reports.items():
            self.summary["tenants"][name].update(accepted=report["accepted"], rejected=report["rejected_count"])
        self.summary["ingest"] = {"events": total, "send_s": round(time.monotonic() - t0, 1),
                                  "events_per_s": round(total / max(time.monotonic() - t0, 1e-9))}
        from retain.ingest.journal import Journal

        data = self._data()
        journal = Journal(data, self.settings)
        # This run's batches: one an earlier run left behind (its API killed between recording the
        # batch and queueing it) is re-sent by beat's sweep later, and dropped as a duplicate then.
        self.procs.wait(lambda: journal.pending(since=self.began_wall) == 0, 600,
                        "every accepted batch processed by the ingest worker", "ingestion",
                        lambda s: self.progress(f"    {journal.pending(since=self.began_wall)} batches still being "
                                                "processed"))
        from retain.lake.flush import staged_count

        # One flush moves at most RETAIN_LAKE_FLUSH_EVENTS rows (and skips while another one runs):
        # flush until nothing is staged, so training sees every event.
        flushed = None
        while staged := staged_count(data, self.settings):
            if staged == flushed:
                # Ours was skipped: beat's flush holds the lake. Let it move the rows rather than send
                # ours again at once (and say the same line over and over).
                self.procs.wait(lambda: staged_count(data, self.settings) != staged, 300,
                                "the lake flush moving staged events", "ingestion")
                continue
            self._task("ingest.flush_lake", "ingest", f"flushing {staged:,} staged events to the Parquet lake", 300)
            flushed = staged
        self.summary["ingest"]["stored_s"] = round(time.monotonic() - t0, 1)
        from retain.lake import open_lake
        from retain.lake.flush import read_events

        lake = open_lake(self.settings)
        for t in tenants:
            self.summary["tenants"][t.name]["in_lake"] = read_events(lake, t.name).num_rows

    def _train(self, tenants: list[DemoTenant]) -> None:
        from retain.client import RetainClient

        t0 = self._step(f"training each tenant's models with Spark ({self.settings.spark_master})")
        client = RetainClient.from_settings(self.settings)
        try:
            handles = {t.name: client.train(t.name) for t in tenants}
            for name, handle in handles.items():
                trained = self._await(handle, f"training {name}", "training", 1200, self.procs.proc("demo-trainer"))
                self.summary["tenants"][name]["model"] = {
                    "version": trained["version"], "status": trained["status"],
                    **{k: trained["metrics"].get(k) for k in ("users", "p_return_auc", "visits_aggregate_error")},
                    "report": f"{self.settings.model_store_root}/tenants/{name}/versions/{trained['version']}/report.html",
                    "reasons": trained.get("reasons", [])}
                self.progress(f"    {name}: version {trained['version']} {trained['status']}")
        finally:
            client.close()
        self.summary["train_s"] = round(time.monotonic() - t0, 1)

    def _rebuild(self, tenants: list[DemoTenant]) -> None:
        from retain.client import RetainClient
        from retain.profiles.dirty import DirtyUsers

        t0 = self._step("rebuilding every user's profile on the autoscaled profile fleet")
        client = RetainClient.from_settings(self.settings)
        try:
            for t in tenants:
                marked = self._await(client.backfill(t.name), f"marking every user of {t.name} for a rebuild",
                                     "profile rebuilds", 300)
                self.summary["tenants"][t.name]["profiles"] = marked["users"]
        finally:
            client.close()
        dirty, fleet = DirtyUsers(self._data(), self.settings.redis_prefix), self.procs.fleet()
        sizes: list[int] = []
        pending = 0

        def done() -> bool:
            nonlocal pending
            sizes.append(fleet.current())
            pending = sum(sum(dirty.pending(t.name).values()) for t in tenants)
            return pending == 0

        self.procs.wait(done, 900, "every profile rebuilt", "profile rebuilds",
                        lambda s: self.progress(f"    {pending:,} users still to rebuild, "
                                                f"{sizes[-1]} profile worker(s) running ({s:.0f} s)"), every=5)
        self.summary["rebuild"] = {"seconds": round(time.monotonic() - t0, 1), "peak_workers": max(sizes, default=0),
                                   "max_workers": self.settings.autoscaler_max_workers.get("profiles")}

    def _show_profiles(self, tenants: list[DemoTenant], keys: dict, out: dict[str, Path]) -> None:
        api, shown = self._api_url(), {}
        for t in tenants:
            for user in sample_users(out[t.name], 2):
                response = requests.get(f"{api}/v1/profiles/{user}", auth=(keys[t.name]["read"], ""), timeout=10)
                if response.status_code != 200:
                    raise DemoError(f"GET /v1/profiles/{user} for {t.name} answered {response.status_code}: "
                                    f"{response.text[:300]}")
                shown[f"{t.name}/{user}"] = response.json()
        self.summary["profiles"] = shown

    # -- helpers ---------------------------------------------------------------------------------
    def _api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def _data(self) -> redis.Redis:
        if self._data_client is None:
            self._data_client = redis.Redis.from_url(self.settings.redis_url, decode_responses=True)
        return self._data_client

    def _autoscaler_status(self) -> bool:
        return bool(self._data().exists(f"{self.settings.redis_prefix}autoscaler:status:profiles"))

    def _task(self, name: str, queue: str, what: str, timeout: float) -> Any:
        from retain.client import JobHandle
        from retain.worker.app import create_celery

        self.progress(f"    {what}")
        return self._await(JobHandle(create_celery(self.settings).send_task(name, queue=queue), name), what, what,
                           timeout)

    def _await(self, handle, what: str, during: str, timeout: float, log_of=None) -> Any:
        """Wait for a job, checking the demo's processes and saying every 10 s how long it has taken."""
        self.procs.wait(lambda: handle.state in ("SUCCESS", "FAILURE"), timeout, what, during,
                        lambda s: self.progress(f"    {what}: {s:.0f} s"))
        if handle.state == "FAILURE":
            where = f"; see {log_of.log_file}" if log_of else ""
            raise DemoError(f"{what} failed: {handle.outcome().get('error')}{where}")
        return handle.wait(10)

    def _endpoints(self, made_credentials: bool) -> dict[str, Any]:
        s = self.settings
        return {"api": self._api_url(), "metrics": {"API": f"{self._api_url()}/metrics", **self.procs.metrics_urls()},
                "flower": {"url": f"http://{s.flower_host}:{s.flower_port}", "user": s.flower_user,
                           "password": s.flower_password, "made_up": made_credentials},
                "logs": str(s.home.resolve() / "logs")}

    def _stop(self, stack: Stack, services: list[str]) -> None:
        procs = getattr(self, "procs", None)
        if procs:
            procs.stop(self.progress)
        for name in reversed(services):
            stack.down(name)
            self.progress(f"    stopped {name}")
        services.clear()

    def _wait_for_interrupt(self, stack: Stack, services: list[str]) -> None:
        # A shell starts background jobs with SIGINT ignored; Ctrl-C and a plain `kill` must both
        # still end the demo cleanly.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _interrupt)
        self.progress("running; press Ctrl-C to stop what the demo started")
        try:
            while True:
                self.procs.check("the wait for Ctrl-C")
                time.sleep(1)
        except KeyboardInterrupt:
            self.progress("stopping")
            self._stop(stack, services)
        except DemoError as exc:
            self.progress(f"error: {exc}")
            self._stop(stack, services)
            raise


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
