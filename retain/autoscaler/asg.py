"""A pool on an EC2 Auto Scaling group that an operator created beforehand (launch template, subnets,
MinSize and MaxSize are theirs; the autoscaler only sets DesiredCapacity).

Units. One unit is one `retain worker` process. A group of one instance type counts instances;
a group with a mixed instances policy and WeightedCapacity per type counts units (the instances'
weights, as AWS does for DesiredCapacity), so a weighted group works like a weighted Spot Fleet.

current(). Instances that are launching or in service (Pending, Pending:Wait, Pending:Proceed,
InService): a booting machine counts, so the controller does not order it again every look, while
Terminating, Detaching, Standby and warm-pool instances do not serve the queue. The sum is capped at
DesiredCapacity: instances above it are leaving (protected busy ones waiting to drain). A
DesiredCapacity different from what this process last set means someone else changed it (a
scheduled action, the console): it is logged once and followed.

resize(). The desired size is clamped to the group's MinSize and MaxSize (with a warning, as the
pool's RETAIN_AUTOSCALER_MAX_WORKERS should not exceed the group's MaxSize) and set with
SetDesiredCapacity, HonorCooldown=False (the autoscaler's stabilization window does that job), only
when it differs from the group's. Before a scale-in, and at every look while the group is above
its desired size, instances that hold tasks (the busy set workers report, see busy.py) get
ProtectedFromScaleIn=True and the others False, so AWS picks idle machines to terminate and leaves
busy ones until they finish and are released. Only instances whose flag differs are touched. A
worker that takes a task between that and the termination loses it to the termination; the broker
redelivers it (tasks are acknowledged late).

moto (the tests' Auto Scaling) launches and terminates at once with no lifecycle states in between,
terminates unprotected instances only when the desired capacity is set (AWS keeps working toward
it, so a protected instance released later is terminated then), accepts a desired size outside
MinSize/MaxSize, and reports no WeightedCapacity.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis

from retain.autoscaler import aws
from retain.autoscaler.busy import busy_instances
from retain.autoscaler.fleet import Fleet
from retain.config import Settings, env_name

log = logging.getLogger("retain.autoscaler")

_LIVE = ("Pending", "Pending:Wait", "Pending:Proceed", "InService")
_PROTECTION_BATCH = 50  # instance ids SetInstanceProtection accepts at once


@dataclass
class _Look:
    min_size: int
    max_size: int
    desired: int
    status: str
    instances: list[dict[str, Any]]  # pending or in service

    @staticmethod
    def weight(instance: dict[str, Any]) -> int:
        return int(instance.get("WeightedCapacity") or 1)

    @property
    def live_capacity(self) -> int:
        return sum(self.weight(i) for i in self.instances)

    @property
    def current(self) -> int:
        return min(self.live_capacity, self.desired)


class AutoScalingGroupFleet(Fleet):
    def __init__(self, settings: Settings, pool: str, group: str, autoscaling: Any | None = None,
                 data: redis.Redis | None = None) -> None:
        from retain.store.redis import redis_client

        self.settings, self.pool, self.group = settings, pool, group
        self.autoscaling = autoscaling if autoscaling is not None else aws.client(settings, "autoscaling")
        self.data = data if data is not None else redis_client(settings)
        self._asked: int | None = None
        self._clamped: tuple[int, int, int] | None = None  # warned once, not every look

    def _what(self) -> str:
        return (f"Auto Scaling group {self.group} of pool {self.pool} "
                f"({env_name('autoscaler_asg_names')}, region {self.settings.aws_region})")

    def _look(self) -> _Look:
        with aws.calling(f"describing {self._what()}"):
            groups = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[self.group])
        found = [g for g in groups.get("AutoScalingGroups") or [] if g.get("AutoScalingGroupName") == self.group]
        if not found:
            raise aws.AwsError(f"{self._what()}: not found")
        group = found[0]
        look = _Look(int(group["MinSize"]), int(group["MaxSize"]), int(group["DesiredCapacity"]),
                     group.get("Status", ""),
                     [i for i in group.get("Instances") or [] if i.get("LifecycleState") in _LIVE])
        if self._asked is not None and look.desired != self._asked:
            log.info("pool %s: group %s wants %d, not the %d the autoscaler set: changed outside retain; "
                     "following it", self.pool, self.group, look.desired, self._asked)
            self._asked = look.desired
        return look

    def protect_busy(self, look: _Look) -> dict[str, bool]:
        """Protect busy instances from scale-in and release idle ones; the flags changed."""
        busy = busy_instances(self.data, self.settings.redis_prefix)
        changes = {i["InstanceId"]: i["InstanceId"] in busy for i in look.instances
                   if bool(i.get("ProtectedFromScaleIn")) != (i["InstanceId"] in busy)}
        for protect in (True, False):
            ids = sorted(i for i, flag in changes.items() if flag is protect)
            for start in range(0, len(ids), _PROTECTION_BATCH):
                with aws.calling(f"setting scale-in protection={protect} in {self._what()}"):
                    self.autoscaling.set_instance_protection(AutoScalingGroupName=self.group,
                                                             InstanceIds=ids[start:start + _PROTECTION_BATCH],
                                                             ProtectedFromScaleIn=protect)
        if changes:
            log.info("pool %s: scale-in protection in group %s: %s", self.pool, self.group,
                     ", ".join(f"{i} {'on' if flag else 'off'}" for i, flag in sorted(changes.items())))
        for instance in look.instances:
            instance["ProtectedFromScaleIn"] = changes.get(instance["InstanceId"],
                                                           bool(instance.get("ProtectedFromScaleIn")))
        return changes

    def current(self) -> int:
        look = self._look()
        if look.live_capacity > look.desired:
            self.protect_busy(look)  # draining: release the instances that have finished
        return look.current

    def resize(self, desired: int) -> None:
        look = self._look()
        if look.status:  # only set while the group is being deleted
            raise aws.AwsError(f"{self._what()} cannot be resized: {look.status}")
        target = min(max(int(desired), look.min_size), look.max_size)
        if target != desired and self._clamped != (desired, look.min_size, look.max_size):
            self._clamped = (desired, look.min_size, look.max_size)
            log.warning("pool %s: %d workers asked, group %s allows %d..%d: setting %d", self.pool, desired,
                        self.group, look.min_size, look.max_size, target)
        if target < look.live_capacity:
            self.protect_busy(look)
        if target != look.desired:
            with aws.calling(f"setting the desired capacity of {self._what()} to {target}"):
                self.autoscaling.set_desired_capacity(AutoScalingGroupName=self.group, DesiredCapacity=target,
                                                      HonorCooldown=False)
        self._asked = target

    def describe(self) -> dict[str, Any]:
        look = self._look()
        busy = busy_instances(self.data, self.settings.redis_prefix)
        return {"pool": self.pool, "kind": type(self).__name__, "group": self.group, "current": look.current,
                "desired": look.desired, "asked": self._asked, "min": look.min_size, "max": look.max_size,
                "live_capacity": look.live_capacity,
                "draining": max(look.live_capacity - look.desired, 0),
                "instances": [{"id": i["InstanceId"], "state": i.get("LifecycleState"), "weight": look.weight(i),
                               "protected": bool(i.get("ProtectedFromScaleIn")), "busy": i["InstanceId"] in busy}
                              for i in sorted(look.instances, key=lambda i: i["InstanceId"])]}
