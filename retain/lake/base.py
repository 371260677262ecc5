"""What the lake needs from a storage backend: whole objects under a root, written atomically.

Paths are relative to the lake's root and '/'-separated on every backend, so the flush and the
readers never care whether the lake is a directory or an S3 prefix.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from retain.errors import RetainError


class LakeError(RetainError):
    """The lake could not be read or written, or holds something it should not."""


class MissingObject(LakeError):
    """A path that was read does not exist in the lake."""


def clean_path(path: str) -> str:
    """``path`` checked to stay inside the lake root (no absolute paths, no '..', no empty parts)."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise LakeError(f"invalid lake path {path!r}: must be relative, '/'-separated, without '.' or '..'")
    return path


def clean_prefix(prefix: str) -> str:
    """A listing prefix: empty (everything) or a path start that cannot climb out of the root."""
    if prefix and (prefix.startswith("/") or any(part in (".", "..") for part in prefix.split("/"))):
        raise LakeError(f"invalid lake prefix {prefix!r}")
    return prefix


class Lake(ABC):
    """One lake root on one backend. Implementations are safe to share between threads."""

    url: str

    @abstractmethod
    def put(self, path: str, data: bytes) -> None:
        """Write ``data`` at ``path``, replacing what was there; a reader sees all of it or none."""

    @abstractmethod
    def get(self, path: str) -> bytes:
        """The bytes at ``path``; :class:`MissingObject` if there are none."""

    @abstractmethod
    def exists(self, path: str) -> bool:
        """Whether an object is at ``path``."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Paths starting with ``prefix`` (a string prefix, as in S3), sorted."""

    @abstractmethod
    def delete(self, path: str) -> None:
        """Remove ``path``; removing what is not there is not an error."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
