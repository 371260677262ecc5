"""The exceptions retain raises on purpose.

Everything a user can cause or fix derives from :class:`RetainError`, so the CLI can turn it into a
one-line message and a non-zero exit instead of a traceback.
"""

from __future__ import annotations


class RetainError(Exception):
    """Base of every error retain raises deliberately."""

    exit_code = 1


class ConfigError(RetainError):
    """A setting is missing or invalid; the message names the RETAIN_* variable."""

    exit_code = 2


class StackError(RetainError):
    """A local service could not be installed, started, stopped or reached."""


class MigrationError(RetainError):
    """A schema migration failed; the message names the file and the CQL error."""


class StoreUnavailable(RetainError):
    """A backing store (Redis, Cassandra) did not answer."""


class RepairError(RetainError):
    """A repair could not start or a node's repair failed; the message names the node."""


class RepairLocked(RepairError):
    """Another repair holds the cluster-wide repair lease; the message names its holder."""

    exit_code = 4
