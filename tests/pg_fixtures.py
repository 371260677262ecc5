"""A real PostgreSQL for the Redshift source's tests (Redshift speaks PostgreSQL's wire protocol).

Debian's server binaries run from a temporary data directory on a free port, owned by the
`postgres` system user (PostgreSQL refuses to run as root); the package's own cluster and service
are never started.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.harness import free_port


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def _install() -> Path:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail("PostgreSQL's server is missing; install Debian's package: apt-get install postgresql")
    from retain.stack.redis import _no_service_autostart

    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # policy-rc.d (exit 101) keeps apt from starting the package's own cluster on port 5432.
    with _no_service_autostart():
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                pytest.fail(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    found = _bin_dir()
    if found is None:
        pytest.fail("apt-get installed postgresql but no /usr/lib/postgresql/*/bin/postgres exists")
    return found


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str], what: str) -> None:
    out = subprocess.run(_as_postgres(argv), capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        pytest.fail(f"{what} failed ({' '.join(argv)}):\n{out.stdout[-1500:]}\n{out.stderr[-1500:]}")


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """DSN of a PostgreSQL server of this test session's own: postgresql://postgres@127.0.0.1:PORT/postgres."""
    bin_dir = _bin_dir() or _install()
    root = Path(tempfile.mkdtemp(prefix="retain-pg-"))
    data, sockets, logfile = root / "data", root / "sock", root / "postgres.log"
    sockets.mkdir()
    if os.geteuid() == 0:
        for path in (root, sockets):
            shutil.chown(path, "postgres", "postgres")
    port = free_port()
    _run([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"], "initdb")
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    try:
        _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(logfile), "-w", "-t", "60",
              "start"], "pg_ctl start")
    except BaseException:
        if logfile.exists():
            print(logfile.read_text()[-3000:])
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "stop", "-m", "fast", "-w"]),
                       capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)
