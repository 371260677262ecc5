"""A pool on an EC2 Spot Fleet request (type ``maintain``) that an operator created beforehand.

Units. The autoscaler counts workers; a Spot Fleet counts capacity units. One unit is one
`retain worker` process (with its ``RETAIN_WORKER_CONCURRENCY`` slots), and each instance type's
WeightedCapacity is the number of worker processes its machines run (a 2-vCPU type 1, an 8-vCPU
type 4, say). So the pool's desired workers *is* the request's target capacity, and a machine
counts its weight. Weights are read from the request itself (LaunchSpecifications, or the
overrides of LaunchTemplateConfigs); a type without one weighs 1, as in AWS.

current(). The capacity that is really there: the smaller of the request's FulfilledCapacity and
the summed weights of its instances that EC2 says are pending or running (a launched machine counts
while it boots, so the controller does not order it again every look), capped at the target, so
instances kept beyond it for draining are not counted. Capacity asked for but not fulfilled
(no spot capacity in the pools, fulfilment lagging) never counts. Each look compares the target
with what this process last asked for: a difference means someone else changed it (the console,
another autoscaler); it is logged once and followed, since the next resize overrides it anyway.
Fulfilment lag and draining are logged when they change and shown by describe().

resize(). Calls ModifySpotFleetRequest only when the target changes, always with
ExcessCapacityTerminationPolicy=noTermination. With the default policy Spot Fleet meets a lower
target by terminating machines of its choosing, killing the tasks they run (training runs for
hours). With noTermination it keeps them and does not replace the ones we terminate, so the
backend shrinks the fleet itself: every look terminates instances that hold no task (the busy set
workers report, see busy.py), largest weight first, as long as that keeps the capacity at or
above the target. Busy instances beyond the target drain: they are terminated at a later look,
once idle. An instance that would leave the fleet below the target stays (Spot Fleet would only
replace it), as AWS's own weighted overshoot does. Trimming carries out a target already set, so
a dry-run controller's looks do it too; it never sets a target. A worker that takes a task between
the busy check and the termination loses it to the termination, and the broker redelivers it
(tasks are acknowledged late).

A request being modified (or still submitted) is left for the next look; a cancelled, failed or
one-time (``request``) one cannot be resized and raises AwsError.

moto (the tests' EC2) launches instances at once on a larger target (fulfilment never lags),
does not report Type or ExcessCapacityTerminationPolicy, and fills a target with whole instances
of its own choice, so its fulfilled capacity can overshoot the target by up to one weight.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import redis
from botocore.exceptions import ClientError

from retain.autoscaler import aws
from retain.autoscaler.busy import busy_instances
from retain.autoscaler.fleet import Fleet
from retain.config import Settings, env_name

log = logging.getLogger("retain.autoscaler")

_LIVE = ("pending", "running")
_WAIT = ("submitted", "modifying")  # AWS refuses a modification now; the next look asks again
_FILTER_CHUNK = 200  # values EC2 accepts in one filter


@dataclass
class _Look:
    state: str
    kind: str
    target: int
    fulfilled: float
    weights: dict[str, float]
    live: dict[str, str] = field(default_factory=dict)  # instance id -> type, pending or running

    def weight(self, instance_id: str) -> float:
        return self.weights.get(self.live[instance_id], 1.0)

    @property
    def live_capacity(self) -> float:
        return sum(self.weight(i) for i in self.live)

    @property
    def current(self) -> int:
        return max(math.floor(min(self.fulfilled, self.live_capacity, self.target) + 1e-9), 0)


def _weights(config: dict[str, Any]) -> dict[str, float]:
    weights: dict[str, float] = {}
    specs = list(config.get("LaunchSpecifications") or [])
    for template in config.get("LaunchTemplateConfigs") or []:
        specs.extend(template.get("Overrides") or [])
    for spec in specs:
        if spec.get("InstanceType"):
            weights.setdefault(spec["InstanceType"], float(spec.get("WeightedCapacity") or 1.0))
    return weights


class SpotFleet(Fleet):
    def __init__(self, settings: Settings, pool: str, request_id: str, ec2: Any | None = None,
                 data: redis.Redis | None = None) -> None:
        from retain.store.redis import redis_client

        self.settings, self.pool, self.request_id = settings, pool, request_id
        self.ec2 = ec2 if ec2 is not None else aws.client(settings, "ec2")
        self.data = data if data is not None else redis_client(settings)
        self._asked: int | None = None
        self._notes: list[str] = []

    def _what(self) -> str:
        return (f"spot fleet request {self.request_id} of pool {self.pool} "
                f"({env_name('autoscaler_spot_fleet_requests')}, region {self.settings.aws_region})")

    def _look(self) -> _Look:
        with aws.calling(f"describing {self._what()}"):
            try:
                found = self.ec2.describe_spot_fleet_requests(SpotFleetRequestIds=[self.request_id])
            except ClientError as exc:
                if aws.error_code(exc).startswith("InvalidSpotFleetRequestId"):
                    raise aws.AwsError(f"{self._what()}: not found") from exc
                raise
            configs = found.get("SpotFleetRequestConfigs") or []
            if not configs:
                raise aws.AwsError(f"{self._what()}: not found")
            request = configs[0]
            config = request.get("SpotFleetRequestConfig") or {}
            look = _Look(request.get("SpotFleetRequestState", ""), config.get("Type", "maintain"),
                         int(config.get("TargetCapacity") or 0), float(config.get("FulfilledCapacity") or 0.0),
                         _weights(config))
            look.live = self._live_instances()
        self._reconcile(look)
        return look

    def _live_instances(self) -> dict[str, str]:
        listed: dict[str, str] = {}
        token: str | None = None
        while True:
            page = self.ec2.describe_spot_fleet_instances(SpotFleetRequestId=self.request_id,
                                                          **({"NextToken": token} if token else {}))
            listed.update({i["InstanceId"]: i.get("InstanceType", "") for i in page.get("ActiveInstances") or []})
            token = page.get("NextToken")
            if not token:
                break
        # The fleet's list of active instances is refreshed lazily: one we terminated last look may
        # still be on it, and counting it would make this look terminate a second one.
        ids, live = sorted(listed), set()
        for start in range(0, len(ids), _FILTER_CHUNK):
            pages = self.ec2.get_paginator("describe_instances").paginate(Filters=[
                {"Name": "instance-id", "Values": ids[start:start + _FILTER_CHUNK]},
                {"Name": "instance-state-name", "Values": list(_LIVE)}])
            live.update(i["InstanceId"] for page in pages for r in page["Reservations"] for i in r["Instances"])
        return {i: listed[i] for i in ids if i in live}

    def _reconcile(self, look: _Look) -> None:
        notes = []
        # While "modifying", the new target may not show yet: not a change made by someone else.
        if self._asked is not None and look.target != self._asked and look.state != "modifying":
            notes.append(f"target capacity is {look.target}, not the {self._asked} the autoscaler asked for: "
                         "changed outside retain; following it")
            self._asked = look.target
        if look.state not in ("active", *_WAIT):
            notes.append(f"request is {look.state}")
        if look.fulfilled + 1e-9 < look.target:
            notes.append(f"fulfilment lags: {look.fulfilled:g} of {look.target} units")
        if look.live_capacity > look.target + 1e-9:
            notes.append(f"{look.live_capacity - look.target:g} unit(s) above the target, draining")
        for note in notes:
            if note not in self._notes:
                log.info("pool %s: spot fleet %s: %s", self.pool, self.request_id, note)
        self._notes = notes

    def _trim(self, look: _Look, target: int) -> list[str]:
        """Terminate idle instances beyond ``target``, never going below it; the ones terminated."""
        excess = look.live_capacity - target
        if excess <= 1e-9 or look.state not in ("active", *_WAIT):
            return []
        busy = busy_instances(self.data, self.settings.redis_prefix)
        doomed = []
        for instance in sorted((i for i in look.live if i not in busy), key=lambda i: (-look.weight(i), i)):
            if look.weight(instance) <= excess + 1e-9:
                doomed.append(instance)
                excess -= look.weight(instance)
        if doomed:
            log.info("pool %s: terminating idle instance(s) %s above target %d of spot fleet %s", self.pool,
                     ", ".join(doomed), target, self.request_id)
            with aws.calling(f"terminating idle instances of {self._what()}"):
                self.ec2.terminate_instances(InstanceIds=doomed)
            for instance in doomed:
                del look.live[instance]
        return doomed

    def current(self) -> int:
        look = self._look()
        self._trim(look, look.target)
        return look.current

    def resize(self, desired: int) -> None:
        desired = max(int(desired), 0)
        look = self._look()
        if look.state in _WAIT:
            log.info("pool %s: spot fleet %s is %s; asking for %d at the next look", self.pool, self.request_id,
                     look.state, desired)
            return
        if look.state != "active" or look.kind != "maintain":
            raise aws.AwsError(f"{self._what()} cannot be resized: it is {look.state}"
                               f"{'' if look.kind == 'maintain' else f' and of type {look.kind}, not maintain'}")
        if desired != look.target:
            with aws.calling(f"setting the target capacity of {self._what()} to {desired}"):
                self.ec2.modify_spot_fleet_request(SpotFleetRequestId=self.request_id, TargetCapacity=desired,
                                                   ExcessCapacityTerminationPolicy="noTermination")
        self._asked = desired
        self._trim(look, desired)

    def describe(self) -> dict[str, Any]:
        look = self._look()
        busy = busy_instances(self.data, self.settings.redis_prefix)
        return {"pool": self.pool, "kind": type(self).__name__, "request": self.request_id, "state": look.state,
                "current": look.current, "target": look.target, "asked": self._asked, "fulfilled": look.fulfilled,
                "live_capacity": look.live_capacity, "weights": look.weights,
                "instances": [{"id": i, "type": t, "weight": look.weight(i), "busy": i in busy}
                              for i, t in sorted(look.live.items())],
                "notes": list(self._notes)}
