"""Finding a Java that runs Cassandra 5.0, and the JVM flags it needs on Java 17.

Cassandra 5.0 runs on Java 11 and 17 only: 18-23 need extra flags and 24+ cannot run it at all
(the SecurityManager API is gone), so whatever ``java`` is first on PATH is not trusted.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

from retain.errors import StackError

SUPPORTED_MAJORS = (17, 11)

# From Cassandra 5.0's conf/jvm17-server.options: without them startup dies with
# InaccessibleObjectException. nodetool takes the same list.
_EXPORTS = (
    "java.base/jdk.internal.misc", "java.management.rmi/com.sun.jmx.remote.internal.rmi",
    "java.management/com.sun.jmx.remote.security", "java.rmi/sun.rmi.registry",
    "java.rmi/sun.rmi.server", "java.sql/java.sql", "java.base/java.lang.ref",
    "jdk.unsupported/sun.misc", "jdk.attach/sun.tools.attach", "jdk.compiler/com.sun.tools.javac.file",
)
_OPENS = (
    "java.base/java.lang.module", "java.base/jdk.internal.loader", "java.base/jdk.internal.ref",
    "java.base/jdk.internal.reflect", "java.base/jdk.internal.math", "java.base/jdk.internal.module",
    "java.base/jdk.internal.util.jar", "jdk.management/com.sun.management.internal",
    "java.base/sun.nio.ch", "java.base/java.io", "java.base/java.lang.reflect", "java.base/java.lang",
    "java.base/java.util", "java.base/java.nio", "jdk.compiler/com.sun.tools.javac",
)


def module_flags() -> list[str]:
    """The --add-exports/--add-opens flags Cassandra's classes need on Java 17."""
    flags = [f"--add-exports={item}=ALL-UNNAMED" for item in _EXPORTS]
    flags += [f"--add-opens={item}=ALL-UNNAMED" for item in _OPENS]
    return flags


def java_major(java: str) -> int | None:
    """The major version of a ``java`` binary, or None if it does not run."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def _candidates(java_home: str) -> list[str]:
    if java_home:
        return [str(Path(java_home) / "bin" / "java")]
    found: list[str] = []
    if os.environ.get("JAVA_HOME"):
        found.append(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    found += sorted(glob.glob("/usr/lib/jvm/*17*/bin/java")) + sorted(glob.glob("/usr/lib/jvm/*/bin/java"))
    on_path = shutil.which("java")
    if on_path:
        found.append(on_path)
    return list(dict.fromkeys(found))


def find_java(java_home: str = "") -> str:
    """Path of a Java 17 (or 11) binary; StackError listing what was found otherwise."""
    seen = []
    for java in _candidates(java_home):
        major = java_major(java)
        if major in SUPPORTED_MAJORS:
            return java
        seen.append(f"{java} (Java {major})" if major else f"{java} (does not run)")
    where = "; found: " + ", ".join(seen) if seen else "; no Java found"
    hint = "set RETAIN_JAVA_HOME to a Java 17 home" if java_home else \
        "install one (apt-get install openjdk-17-jre-headless) or set RETAIN_JAVA_HOME"
    raise StackError(f"Java missing: Cassandra 5.0 needs Java 17 (or 11){where}; {hint}")
