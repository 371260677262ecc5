"""Resolving Apache Cassandra's jars from Maven Central with ``mvn``.

There is no tarball or Debian package to install from; cassandra-all and its runtime dependencies
are the whole server. They are cached per version outside the checkout, so every clone and every
test run after the first starts without the network.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from retain.errors import StackError

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
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
    root = cache_dir / f"cassandra-{version}"
    lib = root / "lib"
    done = root / ".complete"
    if done.exists() and any(lib.glob("cassandra-all-*.jar")):
        return lib
    mvn = shutil.which("mvn")
    if not mvn:
        raise StackError("mvn unreachable: Maven is not installed (apt-get install maven); it resolves Cassandra's jars")
    root.mkdir(parents=True, exist_ok=True)
    (root / "pom.xml").write_text(_POM.format(version=version))
    staging = root / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [mvn, "-q", "-B", "-f", str(root / "pom.xml"), "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-DoutputDirectory={staging}"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired as exc:
        raise StackError("mvn unreachable: resolving Cassandra's jars took over 30 minutes") from exc
    jars = list(staging.glob("cassandra-all-*.jar")) if staging.exists() else []
    if out.returncode != 0 or not jars:
        # mvn prints a harmless "[ERROR] ... systemPath ${jmc5.path}" even on success, so the exit
        # code and the jar decide, and the log is shown only on failure.
        lines = "\n".join((out.stdout + out.stderr).strip().splitlines()[-15:])
        raise StackError(
            f"mvn unreachable or failed: could not resolve org.apache.cassandra:cassandra-all:{version} "
            f"from Maven Central (exit {out.returncode}):\n{lines}"
        )
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    done.write_text(version)
    return lib
