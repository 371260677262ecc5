"""The fleet a pool runs on, behind one small interface; one file per kind of fleet:
local.py (worker processes on this machine), spotfleet.py (an EC2 Spot Fleet request) and
asg.py (an EC2 Auto Scaling group)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from retain.errors import RetainError


class FleetError(RetainError):
    """A fleet could not be read or resized (a cloud API throttled or unreachable, a request in no
    state to change); the controller skips that look and tries again at the next."""


class Fleet(ABC):
    """Workers of one pool. Sizes are in workers (capacity units for weighted fleets)."""

    pool: str

    @abstractmethod
    def current(self) -> int:
        """Workers serving now (draining ones excluded)."""

    @abstractmethod
    def resize(self, desired: int) -> None:
        """Ask for ``desired`` workers. Shrinking must let tasks in flight finish."""

    def describe(self) -> dict[str, Any]:
        return {"pool": self.pool, "kind": type(self).__name__, "current": self.current()}
