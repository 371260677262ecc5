"""The Spot Fleet and Auto Scaling group fleets against a real moto server on 127.0.0.1, with busy
instances reported in the real test Redis.

moto does what the fleets ask at once (launches on a larger target, terminates on a smaller
desired capacity), so each step can be checked right after it, without waiting.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter

import pytest
import redis

from retain.autoscaler import busy
from retain.autoscaler.asg import AutoScalingGroupFleet
from retain.autoscaler.aws import AwsError
from retain.autoscaler.backends import fleets_for
from retain.autoscaler.controller import Controller, pools_from_settings
from retain.autoscaler.queues import queue_keys
from retain.autoscaler.spotfleet import SpotFleet
from retain.errors import ConfigError
from retain.store.redis import redis_client
from tests.aws_fixtures import REGION, aws_client

# test_celery isolates brokers in 5..8, the crash tests in 9..12 and 14/15: 13 is nobody's.
BROKER_DB = 13
SMALL, LARGE = "t3.small", "t3.large"


@pytest.fixture(scope="module")
def network(moto_endpoint: str) -> dict[str, str]:
    """An AMI from moto's catalogue and a subnet for the fleets' machines."""
    ec2 = aws_client("ec2", moto_endpoint)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.1.0/24", AvailabilityZone=f"{REGION}a")["Subnet"]
    return {"image": image, "subnet": subnet["SubnetId"]}


@pytest.fixture
def spot_request(moto_endpoint: str, network: dict[str, str]):
    """A maintain-type request of two instance types: t3.small runs 1 worker, t3.large 2."""
    ec2 = aws_client("ec2", moto_endpoint)
    specs = [{"ImageId": network["image"], "InstanceType": kind, "SubnetId": network["subnet"],
              "WeightedCapacity": weight} for kind, weight in ((SMALL, 1.0), (LARGE, 2.0))]
    request = ec2.request_spot_fleet(SpotFleetRequestConfig={
        "TargetCapacity": 1, "IamFleetRole": "arn:aws:iam::123456789012:role/retain-fleet", "Type": "maintain",
        "AllocationStrategy": "diversified", "LaunchSpecifications": specs})["SpotFleetRequestId"]
    yield request
    # moto refuses to terminate an empty list of instances.
    left = ec2.describe_spot_fleet_instances(SpotFleetRequestId=request)["ActiveInstances"]
    ec2.cancel_spot_fleet_requests(SpotFleetRequestIds=[request], TerminateInstances=bool(left))


@pytest.fixture
def own(settings, moto_endpoint: str):
    """Settings on the moto server, with a data prefix of their own (the busy set lives under it)."""
    return settings.replace(aws_endpoint_url=moto_endpoint, aws_region=REGION,
                            redis_prefix=f"retain:t{uuid.uuid4().hex[:8]}:", autoscaler_pools={"profiles": "profiles"},
                            worker_concurrency=2)


@pytest.fixture
def data(stack, own):
    client = redis_client(own)
    yield client
    client.delete(own.redis_prefix + busy.KEY)
    client.close()


def _spot_settings(own, request: str):
    return own.replace(autoscaler_backend="spotfleet", autoscaler_spot_fleet_requests={"profiles": request})


def _live(ec2, ids) -> dict[str, str]:
    """Instance id -> type of the given instances that are pending or running."""
    pages = ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": sorted(ids)},
                                            {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return {i["InstanceId"]: i["InstanceType"] for r in pages["Reservations"] for i in r["Instances"]}


def _target(ec2, request: str) -> int:
    [config] = ec2.describe_spot_fleet_requests(SpotFleetRequestIds=[request])["SpotFleetRequestConfigs"]
    return config["SpotFleetRequestConfig"]["TargetCapacity"]


def _count_calls(client, operation: str) -> list[str]:
    """A list that grows by one at every ``operation`` the (real) client sends."""
    calls: list[str] = []
    client.meta.events.register(f"before-call.{client.meta.service_model.endpoint_prefix}.{operation}",
                                lambda **_: calls.append(operation))
    return calls


def test_spot_fleet_grows_by_weight_and_shrinks_by_idle_machines(own, data, spot_request, moto_endpoint) -> None:
    ec2 = aws_client("ec2", moto_endpoint)
    own = _spot_settings(own, spot_request)
    fleet = fleets_for(own, pools_from_settings(own))["profiles"]
    assert isinstance(fleet, SpotFleet) and fleet.current() == 1
    modifications = _count_calls(fleet.ec2, "ModifySpotFleetRequest")

    fleet.resize(4)
    seen = fleet.describe()
    assert seen["target"] == 4 and seen["asked"] == 4 and fleet.current() == 4 and seen["fulfilled"] == 4
    assert seen["weights"] == {SMALL: 1.0, LARGE: 2.0}
    assert Counter(i["type"] for i in seen["instances"]) == {SMALL: 2, LARGE: 1}, "4 units: 2 small + 1 large"
    fleet.resize(4)
    assert len(modifications) == 1, "the same target again is not a modification"

    smalls = sorted(i["id"] for i in seen["instances"] if i["type"] == SMALL)
    [large] = [i["id"] for i in seen["instances"] if i["type"] == LARGE]
    for instance in smalls:
        busy.report(data, own.redis_prefix, instance, in_flight=1)
    fleet.resize(1)
    assert _target(ec2, spot_request) == 1
    assert set(_live(ec2, smalls + [large])) == set(smalls), "the idle large machine goes, the busy ones drain"
    assert fleet.current() == 1, "capacity kept above the target for draining does not count"
    assert any("above the target, draining" in note for note in fleet.describe()["notes"])

    busy.report(data, own.redis_prefix, smalls[0], in_flight=0)
    assert fleet.current() == 1
    assert set(_live(ec2, smalls)) == {smalls[1]}, "a drained machine goes at the next look, the busy one stays"
    seen = fleet.describe()
    assert seen["live_capacity"] == 1 and not seen["notes"]
    assert seen["instances"] == [{"id": smalls[1], "type": SMALL, "weight": 1.0, "busy": True}]


def test_spot_fleet_follows_a_target_changed_elsewhere(own, data, spot_request, moto_endpoint, caplog) -> None:
    ec2 = aws_client("ec2", moto_endpoint)
    fleet = fleets_for(_spot_settings(own, spot_request), [pools_from_settings(own)[0]])["profiles"]
    fleet.resize(2)
    ec2.modify_spot_fleet_request(SpotFleetRequestId=spot_request, TargetCapacity=3)
    with caplog.at_level(logging.INFO, logger="retain.autoscaler"):
        assert fleet.current() == 3
    assert "not the 2 the autoscaler asked for: changed outside retain" in caplog.text
    assert fleet.describe()["asked"] == 3, "followed, and reported once"


def test_controller_sizes_a_spot_fleet_from_the_backlog(own, data, spot_request, moto_endpoint) -> None:
    own = _spot_settings(own, spot_request).replace(
        broker_url=f"{own.redis_url.rsplit('/', 1)[0]}/{BROKER_DB}", autoscaler_max_workers={"profiles": 6},
        autoscaler_target_latency=5.0, autoscaler_fallback_rate=1.0, autoscaler_stabilization_seconds=0.0,
        autoscaler_scale_in_step=10)
    broker = redis.Redis.from_url(own.broker_url)
    broker.flushdb()
    # The controller reads list lengths only: 100 waiting tasks at 1 task/s per slot and a 5 s
    # target need 20 slots, 10 workers of 2: capped at 6.
    broker.lpush(queue_keys("profiles")[0], *[b"{}"] * 100)
    fleets = fleets_for(own, pools_from_settings(own))
    controller = Controller(own, fleets, broker, data)
    [step] = controller.look()
    assert (step.current, step.desired, step.applied) == (1, 6, True) and "capped at max 6" in step.reason
    assert _target(aws_client("ec2", moto_endpoint), spot_request) == 6 and fleets["profiles"].current() == 6

    broker.delete(*queue_keys("profiles"))
    [step] = controller.look()
    assert (step.current, step.desired, step.applied) == (6, 0, True), step.reason
    assert fleets["profiles"].current() == 0 and fleets["profiles"].describe()["instances"] == []
    broker.flushdb()
    broker.close()


def test_spot_fleet_errors_say_what_is_wrong(own, data, spot_request, moto_endpoint) -> None:
    pools = pools_from_settings(own)
    with pytest.raises(ConfigError, match="RETAIN_AUTOSCALER_SPOT_FLEET_REQUESTS: no Spot Fleet request for pool"):
        fleets_for(own.replace(autoscaler_backend="spotfleet"), pools)
    with pytest.raises(ConfigError, match="RETAIN_AUTOSCALER_SPOT_FLEET_REQUESTS names pool.* batch"):
        own.replace(autoscaler_spot_fleet_requests={"batch": spot_request})
    unknown = fleets_for(_spot_settings(own, "sfr-00000000-0000-0000-0000-000000000000"), pools)["profiles"]
    with pytest.raises(AwsError, match="sfr-00000000-0000-0000-0000-000000000000 of pool profiles .*not found"):
        unknown.current()
    aws_client("ec2", moto_endpoint).cancel_spot_fleet_requests(SpotFleetRequestIds=[spot_request],
                                                                 TerminateInstances=False)
    cancelled = fleets_for(_spot_settings(own, spot_request), pools)["profiles"]
    with pytest.raises(AwsError, match="cannot be resized: it is cancelled_running"):
        cancelled.resize(3)


@pytest.fixture
def group(moto_endpoint: str, network: dict[str, str]):
    """An Auto Scaling group of 3 (between 0 and 4) from a launch template."""
    ec2, autoscaling = aws_client("ec2", moto_endpoint), aws_client("autoscaling", moto_endpoint)
    name = f"retain-{uuid.uuid4().hex[:8]}"
    ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"ImageId": network["image"],
                                                                             "InstanceType": SMALL})
    autoscaling.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=0, MaxSize=4, DesiredCapacity=3,
                                          LaunchTemplate={"LaunchTemplateName": name},
                                          VPCZoneIdentifier=network["subnet"])
    yield name
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)


def _protection(autoscaling, name: str) -> dict[str, bool]:
    [found] = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return {i["InstanceId"]: i["ProtectedFromScaleIn"] for i in found["Instances"]}


def test_asg_shrinks_by_idle_instances_and_protects_busy_ones(own, data, group, moto_endpoint) -> None:
    autoscaling = aws_client("autoscaling", moto_endpoint)
    own = own.replace(autoscaler_backend="asg", autoscaler_asg_names={"profiles": group})
    fleet = fleets_for(own, pools_from_settings(own))["profiles"]
    assert isinstance(fleet, AutoScalingGroupFleet) and fleet.current() == 3
    first = sorted(_protection(autoscaling, group))
    busy.report(data, own.redis_prefix, first[2], in_flight=3)

    fleet.resize(1)
    assert _protection(autoscaling, group) == {first[2]: True}, "AWS terminated the idle ones, not the busy one"
    assert fleet.current() == 1

    fleet.resize(9)
    seen = fleet.describe()
    assert (seen["desired"], seen["asked"], seen["current"]) == (4, 4, 4), "clamped to the group's MaxSize"
    # Now the first busy instance is idle (still protected) and a new one is busy.
    others = sorted(set(_protection(autoscaling, group)) - {first[2]})
    busy.report(data, own.redis_prefix, first[2], in_flight=0)
    busy.report(data, own.redis_prefix, others[0], in_flight=1)
    fleet.resize(2)
    flags = _protection(autoscaling, group)
    assert others[0] in flags and flags[others[0]] is True, "the busy instance stays, protected"
    assert first[2] not in flags or flags[first[2]] is False, "the idle one lost its protection"
    assert len(flags) == 2 and fleet.current() == 2


def test_asg_keeps_busy_instances_until_they_drain(own, data, group, moto_endpoint) -> None:
    autoscaling = aws_client("autoscaling", moto_endpoint)
    fleet = AutoScalingGroupFleet(own, "profiles", group, aws_client("autoscaling", moto_endpoint), data)
    instances = sorted(_protection(autoscaling, group))
    for instance in instances:
        busy.report(data, own.redis_prefix, instance, in_flight=1)
    fleet.resize(1)
    assert _protection(autoscaling, group) == dict.fromkeys(instances, True), "all busy: none terminated"
    seen = fleet.describe()
    assert seen["current"] == 1 and seen["draining"] == 2, "instances above the desired size do not count"
    for instance in instances:
        busy.report(data, own.redis_prefix, instance, in_flight=0)
    assert fleet.current() == 1
    # AWS now terminates the released instances on its own (moto only when the size is set again).
    assert _protection(autoscaling, group) == dict.fromkeys(instances, False), "drained instances are released"


def test_asg_errors_say_what_is_wrong(own, data) -> None:
    pools = pools_from_settings(own)
    with pytest.raises(ConfigError, match="RETAIN_AUTOSCALER_ASG_NAMES: no Auto Scaling group for pool.*profiles"):
        fleets_for(own.replace(autoscaler_backend="asg"), pools)
    missing = fleets_for(own.replace(autoscaler_backend="asg", autoscaler_asg_names={"profiles": "no-such-group"}),
                         pools)["profiles"]
    with pytest.raises(AwsError, match="Auto Scaling group no-such-group of pool profiles .*not found"):
        missing.resize(2)
