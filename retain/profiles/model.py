"""What profile workers and batch scoring apply: a tenant's current model version, in memory.

A tenant that has no trained version yet is scored with tenant-less priors (published fits from
the literature and flat preferences), and its profiles say so.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from retain.models.bgnbd import BGNBDParams
from retain.models.channel import DEFAULT_PRIOR, BetaPrior
from retain.models.gammagamma import GammaGammaParams
from retain.models.sendtime import BUCKETS
from retain.models.store import ModelStore, ModelStoreError
from retain.tenancy.config import TenantConfig

RECOMMENDATIONS = "tables/content_recommendations.parquet"

# CDNOW fits of Fader, Hardie & Lee (2005), alpha converted from weeks to days, and of Fader &
# Hardie's Gamma-Gamma note: typical retail behaviour, better than nothing for a tenant's first day.
PRIOR_BGNBD = BGNBDParams(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426)
PRIOR_GAMMAGAMMA = GammaGammaParams(p=6.25, q=3.74, gamma=15.44)
PRIOR_PURCHASE_RATE = 0.1


@dataclass(frozen=True)
class ProfileModel:
    """Everything a profile needs from one model version of one tenant.

    ``switched_us`` is when this version became current (microseconds): profiles computed with it
    are at least that new, so re-scoring after a promotion or a rollback supersedes older profiles.
    """

    tenant: str
    version: str | None
    switched_us: int
    horizon_days: int
    annual_discount_rate: float
    bgnbd: BGNBDParams
    gammagamma: GammaGammaParams | None
    purchase_rate: float | None
    channels: dict[str, BetaPrior]
    send_time: np.ndarray
    category_shares: dict[str, float] = field(default_factory=dict)
    popular: tuple[str, ...] = ()
    recommended: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    drivers: dict[str, float] = field(default_factory=dict)

    @property
    def trained(self) -> bool:
        return self.version is not None

    @classmethod
    def priors(cls, tenant: str, config: TenantConfig) -> "ProfileModel":
        return cls(tenant, None, 0, config.horizon_days, config.annual_discount_rate, PRIOR_BGNBD, PRIOR_GAMMAGAMMA,
                   PRIOR_PURCHASE_RATE, {name: DEFAULT_PRIOR for name in config.channels},
                   np.full(BUCKETS, 1.0 / BUCKETS))

    @classmethod
    def from_version(cls, tenant: str, config: TenantConfig, info: dict[str, Any], switched_us: int,
                     recommended: Mapping[str, tuple[str, ...]] | None = None) -> "ProfileModel":
        """The model of a stored version (``info`` is its version.json)."""
        params = info.get("params", {})
        fitted = params["bgnbd"]
        bgnbd = BGNBDParams(fitted["r"], fitted["alpha"], fitted["a"], fitted["b"])
        spend = params.get("gammagamma")
        gammagamma = GammaGammaParams(spend["p"], spend["q"], spend["gamma"]) if spend else None
        channels = {name: BetaPrior(p["alpha"], p["beta"], p.get("users", 0), p.get("method", "mle"))
                    for name, p in params.get("channel", {}).items()}
        send_time = params.get("send_time", {}).get("tenant_distribution")
        content = params.get("content", {})
        impacts = info.get("metrics", {}).get("action_impact") or {}
        return cls(
            tenant, info["version"], switched_us, config.horizon_days, config.annual_discount_rate, bgnbd,
            gammagamma, spend.get("purchase_rate") if spend else None, channels,
            np.asarray(send_time, dtype=float) if send_time else np.full(BUCKETS, 1.0 / BUCKETS),
            dict(content.get("category_shares", {})), tuple(content.get("popular", ())), recommended or {},
            {action: v["difference"] for action, v in impacts.items() if v.get("sign")},
        )


def _recommendations(store: ModelStore, tenant: str, version: str) -> dict[str, tuple[str, ...]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(store.artifact(tenant, version, RECOMMENDATIONS)))
    except ModelStoreError:
        return {}  # the version fitted no content model
    return {user: tuple(items) for user, items in zip(table.column("user_id").to_pylist(),
                                                      table.column("items").to_pylist())}


def load_model(store: ModelStore, tenant: str, config: TenantConfig) -> ProfileModel:
    """The tenant's current version, or the tenant-less priors when it has none."""
    pointer = store.pointer(tenant)
    version = pointer["version"]
    if version is None:
        return ProfileModel.priors(tenant, config)
    switched = pointer.get("switched_at")
    switched_us = int(datetime.fromisoformat(switched).timestamp() * 1_000_000) if switched else 0
    return ProfileModel.from_version(tenant, config, store.get(tenant, version), switched_us,
                                     _recommendations(store, tenant, version))
