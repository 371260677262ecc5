"""Enqueue retain's jobs from any Python process, by task name: rebuilds, backfills, scoring and
training. Nothing of retain's task code is imported; only the broker is needed.

    from retain.client import RetainClient
    client = RetainClient.from_settings()            # or RetainClient(broker_url, result_backend)
    job = client.rebuild("acme", ["u1", "u2"])
    job.wait(timeout=60)                            # the task's result, or JobFailed

Arguments are validated before anything is enqueued; a bad one raises JobError naming the field.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Annotated, Any

from celery import Celery
from celery.result import AsyncResult
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from retain.errors import RetainError

class JobError(RetainError):
    """A job was refused before it was enqueued; ``field`` names the offending argument."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class JobFailed(RetainError):
    """The job ran and failed; the message is the task's error."""


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RebuildArgs(_Args):
    users: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = Field(
        min_length=1, max_length=5000, description="User ids whose profiles to rebuild.")


class BackfillArgs(_Args):
    pass


class ScoreArgs(_Args):
    as_of: datetime | None = Field(None, description="Score as of this instant (default: now).")


class TrainArgs(_Args):
    cutoff: date | None = Field(None, description="Last day of the calibration period.")
    holdout_days: int = Field(30, ge=1, le=365)


@dataclass(frozen=True)
class Kind:
    task: str
    queue: str
    args: type[_Args]
    to_task: Callable[[str, Any], list]


def _iso(value: date | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


KINDS: dict[str, Kind] = {
    "rebuild": Kind("profiles.rebuild", "profiles", RebuildArgs, lambda t, a: [t, list(a.users)]),
    "backfill": Kind("profiles.backfill", "profiles", BackfillArgs, lambda t, a: [t]),
    "score": Kind("train.score", "train", ScoreArgs, lambda t, a: [t, _iso(a.as_of)]),
    "train": Kind("train.tenant", "train", TrainArgs, lambda t, a: [t, _iso(a.cutoff), a.holdout_days]),
}


def validate(kind: str, tenant: str, args: Any) -> tuple[Kind, list]:
    """The task and its positional arguments for a job; JobError naming the field otherwise."""
    spec = KINDS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise JobError("kind", f"kind: unknown job kind {kind!r}; one of {', '.join(KINDS)}")
    if not isinstance(tenant, str) or not tenant:
        raise JobError("tenant", "tenant: a tenant id is required")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise JobError("args", "args: an object of the job's arguments")
    try:
        parsed = spec.args.model_validate(args)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in ("args", *error["loc"]))
        raise JobError(where, f"{where}: {error['msg'].removeprefix('Value error, ')}") from None
    return spec, spec.to_task(tenant, parsed)


class JobHandle:
    """A job that was enqueued: its id, and a way to wait for its result."""

    def __init__(self, result: AsyncResult, kind: str) -> None:
        self._result, self.kind = result, kind

    @property
    def id(self) -> str:
        return self._result.id

    @property
    def state(self) -> str:
        """PENDING (queued or unknown), STARTED, SUCCESS, FAILURE or RETRY."""
        return self._result.state

    def outcome(self) -> dict[str, Any]:
        """{"state": ...}, with "result" once the job succeeded or "error" once it failed."""
        state = self._result.state
        body: dict[str, Any] = {"state": state}
        if state == "SUCCESS":
            body["result"] = self._result.result
        elif state == "FAILURE":
            body["error"] = repr(self._result.result)
        return body

    def wait(self, timeout: float | None = None) -> Any:
        try:
            return self._result.get(timeout=timeout, propagate=True)
        except TimeoutError:
            raise
        except Exception as exc:  # noqa: BLE001 - the task's own error type is not importable here
            raise JobFailed(f"{self.kind} job {self.id} failed: {exc!r}") from exc


class RetainClient:
    def __init__(self, broker_url: str, result_backend: str | None = None) -> None:
        self.app = Celery("retain-client", broker=broker_url, backend=result_backend)
        self.app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json",
                             result_extended=True)

    @classmethod
    def from_settings(cls, settings=None) -> "RetainClient":
        from retain.config import Settings

        settings = settings or Settings.from_env()
        return cls(settings.broker_url, settings.result_backend)

    def submit(self, kind: str, tenant: str, args: dict[str, Any] | None = None, job_id: str | None = None) -> JobHandle:
        spec, task_args = validate(kind, tenant, args)
        result = self.app.send_task(spec.task, args=task_args, queue=spec.queue, task_id=job_id or str(uuid.uuid4()))
        return JobHandle(result, kind)

    def job(self, job_id: str, kind: str = "job") -> JobHandle:
        return JobHandle(AsyncResult(job_id, app=self.app), kind)

    def rebuild(self, tenant: str, users: list[str]) -> JobHandle:
        return self.submit("rebuild", tenant, {"users": users})

    def backfill(self, tenant: str) -> JobHandle:
        return self.submit("backfill", tenant)

    def score(self, tenant: str, as_of: datetime | None = None) -> JobHandle:
        return self.submit("score", tenant, {"as_of": as_of})

    def train(self, tenant: str, cutoff: date | None = None, holdout_days: int = 30) -> JobHandle:
        return self.submit("train", tenant, {"cutoff": cutoff, "holdout_days": holdout_days})

    def close(self) -> None:
        self.app.close()
