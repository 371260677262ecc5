"""Resolving jars from Maven Central with ``mvn``: Apache Cassandra's, and (retain.spark.jars) the
s3a connector Spark needs for an S3 lake.

There is no tarball or Debian package to install from; cassandra-all and its runtime dependencies
are the whole server. Resolved jars are cached per version outside the checkout, so every clone and
every test run after the first starts without the network.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

from retain.errors import RetainError, StackError

_CASSANDRA_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.retain</groupId>
  <artifactId>cassandra-runtime</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""


def cassandra_lib(cache_dir: Path, version: str) -> Path:
    """Directory holding the jars of cassandra-all ``version`` (resolved on first use)."""
    return maven_lib(cache_dir / f"cassandra-{version}", _CASSANDRA_POM.format(version=version),
                     expect="cassandra-all-*.jar", what=f"org.apache.cassandra:cassandra-all:{version}")


def maven_lib(root: Path, pom: str, expect: str, what: str, exclude_groups: tuple[str, ...] = (),
              error: type[RetainError] = StackError) -> Path:
    """``root``/lib holding the runtime dependencies of ``pom``, resolved once with mvn.

    ``expect`` is a glob that must match a jar in the result; ``exclude_groups`` are group ids
    left out of the copy; ``what`` names the artifact in errors, raised as ``error``.
    """
    lib = root / "lib"
    done = root / ".complete"
    if done.exists() and any(lib.glob(expect)):
        return lib
    mvn = shutil.which("mvn")
    if not mvn:
        raise error(f"mvn unreachable: Maven is not installed (apt-get install maven); it resolves {what}")
    root.mkdir(parents=True, exist_ok=True)
    # Two processes resolving at once (parallel tests, a worker and a CLI) would share the staging
    # directory: the second waits, then finds the first one's result.
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists() and any(lib.glob(expect)):
            return lib
        _resolve(mvn, root, pom, expect, what, exclude_groups, error)
    return lib


def _resolve(mvn: str, root: Path, pom: str, expect: str, what: str, exclude_groups: tuple[str, ...],
             error: type[RetainError]) -> None:
    lib = root / "lib"
    (root / "pom.xml").write_text(pom)
    staging = root / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [mvn, "-q", "-B", "-f", str(root / "pom.xml"), "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-DoutputDirectory={staging}"]
    if exclude_groups:
        cmd.append(f"-DexcludeGroupIds={','.join(exclude_groups)}")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired as exc:
        raise error(f"mvn unreachable: resolving {what} took over 30 minutes") from exc
    jars = list(staging.glob(expect)) if staging.exists() else []
    if out.returncode != 0 or not jars:
        # mvn prints a harmless "[ERROR] ... systemPath ${jmc5.path}" even on success, so the exit
        # code and the jar decide, and the log is shown only on failure.
        lines = "\n".join((out.stdout + out.stderr).strip().splitlines()[-15:])
        raise error(f"mvn unreachable or failed: could not resolve {what} from Maven Central "
                    f"(exit {out.returncode}):\n{lines}")
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    (root / ".complete").write_text(what)
