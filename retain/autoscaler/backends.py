"""The fleet of each pool, of the kind the settings name (RETAIN_AUTOSCALER_BACKEND)."""

from __future__ import annotations

from retain.autoscaler.fleet import Fleet
from retain.autoscaler.local import LocalFleet
from retain.autoscaler.policy import PoolPolicy
from retain.config import Settings
from retain.errors import ConfigError


def fleets_for(settings: Settings, pools: list[PoolPolicy]) -> dict[str, Fleet]:
    if settings.autoscaler_backend == "local":
        return {pool.name: LocalFleet(settings, pool.name, pool.queues) for pool in pools}
    raise ConfigError(f"RETAIN_AUTOSCALER_BACKEND={settings.autoscaler_backend}: this fleet backend is not "
                      "available yet; use local")
