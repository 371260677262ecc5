"""The fleet of each pool, of the kind the settings name (RETAIN_AUTOSCALER_BACKEND)."""

from __future__ import annotations

from retain.autoscaler.fleet import Fleet
from retain.autoscaler.local import LocalFleet
from retain.autoscaler.policy import PoolPolicy
from retain.config import Settings, env_name
from retain.errors import ConfigError


def _cloud_ids(settings: Settings, pools: list[PoolPolicy], setting: str, what: str) -> dict[str, str]:
    """Each pool's cloud fleet id from ``setting``; a ConfigError names the pools without one."""
    ids = getattr(settings, setting)
    missing = [pool.name for pool in pools if not ids.get(pool.name)]
    if missing:
        raise ConfigError(f"{env_name(setting)}: no {what} for pool(s) {', '.join(missing)} (needed with "
                          f"RETAIN_AUTOSCALER_BACKEND={settings.autoscaler_backend}); give pool:id pairs")
    return {pool.name: ids[pool.name] for pool in pools}


def fleets_for(settings: Settings, pools: list[PoolPolicy]) -> dict[str, Fleet]:
    if settings.autoscaler_backend == "local":
        return {pool.name: LocalFleet(settings, pool.name, pool.queues) for pool in pools}
    # Imported here: boto3 is slow to import and the local fleet does not need it.
    from retain.autoscaler import aws
    from retain.store.redis import redis_client

    if settings.autoscaler_backend == "spotfleet":
        from retain.autoscaler.spotfleet import SpotFleet

        requests = _cloud_ids(settings, pools, "autoscaler_spot_fleet_requests", "Spot Fleet request")
        ec2, data = aws.client(settings, "ec2"), redis_client(settings)
        return {name: SpotFleet(settings, name, request, ec2, data) for name, request in requests.items()}
    if settings.autoscaler_backend == "asg":
        from retain.autoscaler.asg import AutoScalingGroupFleet

        groups = _cloud_ids(settings, pools, "autoscaler_asg_names", "Auto Scaling group")
        autoscaling, data = aws.client(settings, "autoscaling"), redis_client(settings)
        return {name: AutoScalingGroupFleet(settings, name, group, autoscaling, data) for name, group in groups.items()}
    raise ConfigError(f"RETAIN_AUTOSCALER_BACKEND={settings.autoscaler_backend}: unknown fleet backend; "
                      "use local, spotfleet or asg")
