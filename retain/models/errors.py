"""Errors of the per-tenant models."""

from __future__ import annotations

from retain.errors import RetainError


class FitError(RetainError):
    """A model could not be fitted; the message says why (the run records it and goes on)."""
