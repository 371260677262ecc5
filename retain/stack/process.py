"""A background process that retain started and tracks through a pid file.

The pid file records the pid and the process's start time (from /proc), so a pid reused by an
unrelated process after a reboot or a crash is never mistaken for ours — and so never signalled.
The start time, unlike the command line, is fixed at fork: it holds before the child has exec'd
and after a server renames its process title. ``stop`` signals only processes this file describes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from retain.errors import StackError


@dataclass(frozen=True)
class ManagedProcess:
    """A long-running process identified by ``name``, with a pid file and a log file."""

    name: str
    pid_file: Path
    log_file: Path

    @classmethod
    def under(cls, home: Path, name: str) -> "ManagedProcess":
        """The process ``name`` of a retain home: pid file in run/, log in logs/."""
        home = home.resolve()
        return cls(name, home / "run" / f"{name}.pid", home / "logs" / f"{name}.log")

    # -- identity ------------------------------------------------------------------------------
    def _record(self) -> dict | None:
        try:
            return json.loads(self.pid_file.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, OSError):
            return None

    def pid(self) -> int | None:
        """The pid of our process if it is alive, else None (a stale pid file is ignored)."""
        record = self._record()
        if not record:
            return None
        pid = int(record.get("pid", 0))
        return pid if pid > 0 and _alive(pid, record.get("started")) else None

    def is_running(self) -> bool:
        return self.pid() is not None

    # -- lifecycle -----------------------------------------------------------------------------
    def spawn(self, argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> int:
        """Start ``argv`` detached (own session, output appended to the log) and record it."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            # start_new_session: Ctrl-C in the terminal that ran `retain stack up` must not stop the
            # services, and stop() can signal the whole process group.
            proc = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True,
            )
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": proc.pid, "started": _start_time(proc.pid), "argv": list(argv)}))
        tmp.replace(self.pid_file)
        return proc.pid

    def exit_status(self) -> str | None:
        """Why the recorded process is gone, if it has already exited (None while it runs)."""
        record = self._record()
        if not record:
            return "no pid file"
        pid = int(record.get("pid", 0))
        if _alive(pid, record.get("started")):
            return None
        code = _reap(pid)
        return f"exit code {code}" if code is not None else "exited"

    def stop(self, timeout: float = 60.0) -> bool:
        """SIGTERM the process group, SIGKILL after ``timeout``; True if something was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal_group(pid, signal.SIGTERM)
        started = _start_time(pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid, started):
            _reap(pid)
            time.sleep(0.2)
        if _alive(pid, started):
            _signal_group(pid, signal.SIGKILL)
            wait_until(lambda: not _alive(pid, started), 10.0, f"{self.name} to die after SIGKILL")
        _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    def terminate(self) -> bool:
        """SIGTERM the process itself (not its group) and return at once; True if it was running.

        For a Celery worker this is a warm shutdown: it stops taking tasks and exits once those it
        runs are done. Its pool processes must not get the signal themselves, which is why the
        group is left alone.
        """
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log_file, lines)


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.25, on_timeout: Callable[[], str] | None = None) -> None:
    """Poll ``predicate`` until it holds; raise StackError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            detail = on_timeout() if on_timeout else ""
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}" + (f"\n{detail}" if detail else ""))
        time.sleep(interval)


def _stat(pid: int) -> list[bytes] | None:
    """Fields of /proc/PID/stat after the command name (which may contain spaces)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def _start_time(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[19]) if fields else None  # field 22 of stat: start time in clock ticks


def _alive(pid: int, started: int | None) -> bool:
    fields = _stat(pid)
    if not fields or fields[0] in (b"Z", b"X"):
        return False
    return started is None or int(fields[19]) == started


def _reap(pid: int) -> int | None:
    """Collect the exit status if ``pid`` is our child (it is when this process spawned it)."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if done else None


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)
