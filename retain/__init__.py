"""retain: per-user predictions from behaviour events, served worldwide with low latency."""

__version__ = "0.1.0"
