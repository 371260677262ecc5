"""The lake in a local directory (``file:///abs/path``): one file per object.

A write goes to a temporary file in the target's directory, is fsynced and renamed over the
target, then the directory is fsynced: a reader sees the old object or the new one, never part of
one, and a power cut after ``put`` returns does not lose the object.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from retain.lake.base import Lake, LakeError, MissingObject, clean_path, clean_prefix

_TMP_PREFIX = ".tmp-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(path: Path) -> None:
    """Create ``path`` and missing parents, fsyncing each new entry's parent so a crash keeps it."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            pass  # another writer created it first; it is there either way
        _fsync_dir(directory.parent)


class LocalLake(Lake):
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise LakeError(f"not a file:///absolute/path URL: {url!r}")
        self.url = url
        self.root = Path(unquote(parts.path))

    def _target(self, path: str) -> Path:
        return self.root / clean_path(path)

    def put(self, path: str, data: bytes) -> None:
        target = self._target(path)
        try:
            _make_dirs(target.parent)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_TMP_PREFIX)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                # mkstemp makes the file private; lake files are read by other users (Spark).
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            _fsync_dir(target.parent)
        except OSError as exc:
            raise LakeError(f"cannot write {path} in {self.url}: {exc}") from exc

    def get(self, path: str) -> bytes:
        try:
            return self._target(path).read_bytes()
        except FileNotFoundError:
            raise MissingObject(f"no {path} in {self.url}") from None
        except OSError as exc:
            raise LakeError(f"cannot read {path} in {self.url}: {exc}") from exc

    def exists(self, path: str) -> bool:
        return self._target(path).is_file()

    def list(self, prefix: str = "") -> list[str]:
        clean_prefix(prefix)
        # Walk only the deepest directory the prefix names, not the whole lake.
        start = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        found = []
        try:
            for directory, _dirs, files in os.walk(start):
                for name in files:
                    if name.startswith(_TMP_PREFIX):
                        continue  # a write in progress (or abandoned by a crash), not an object
                    rel = (Path(directory) / name).relative_to(self.root).as_posix()
                    if rel.startswith(prefix):
                        found.append(rel)
        except OSError as exc:
            raise LakeError(f"cannot list {prefix!r} in {self.url}: {exc}") from exc
        return sorted(found)

    def delete(self, path: str) -> None:
        try:
            self._target(path).unlink(missing_ok=True)
        except OSError as exc:
            raise LakeError(f"cannot delete {path} in {self.url}: {exc}") from exc
