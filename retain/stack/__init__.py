"""The local stack: real Redis and Cassandra processes on loopback, run without Docker."""

from retain.stack.stack import Stack

__all__ = ["Stack"]
