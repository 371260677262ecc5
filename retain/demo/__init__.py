"""`retain demo`: the whole system on this machine (see run.py)."""

from retain.demo.processes import DemoError
from retain.demo.run import Demo

__all__ = ["Demo", "DemoError"]
