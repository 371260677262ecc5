"""nodetool, run from the same cassandra-all jars and Java 17 as the nodes themselves.

There is no Cassandra distribution here, only Maven Central's jars: nodetool is their
``org.apache.cassandra.tools.NodeTool`` class, launched the way ``bin/nodetool`` launches it (the
server's module flags, a small heap, a quiet logback configuration), talking JMX to one node.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from retain.config import Settings
from retain.stack.jars import cassandra_lib
from retain.stack.java import find_java, module_flags

OUTPUT_TAIL_LINES = 40
OUTPUT_TAIL_CHARS = 8000

# The jars carry no logback configuration, and logback's default prints every DEBUG line of the
# JMX client on stdout; bin/nodetool uses conf/logback-tools.xml for the same reason.
_LOGBACK = """<configuration scan="false">
  <appender name="STDERR" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <encoder><pattern>%-5level %date{ISO8601} %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDERR"/></root>
</configuration>
"""


def jmx_address(settings: Settings, node: str) -> tuple[str, int]:
    """Where nodetool reaches ``node``'s JMX.

    A node of the local stack binds JMX on 127.0.0.1 only, on a port of its own; any other node is
    reached at its own address on RETAIN_CASSANDRA_JMX_PORT.
    """
    if node in settings.stack_cassandra_addresses:
        from retain.stack.cassandra import CassandraNode

        return "127.0.0.1", CassandraNode(settings, settings.stack_cassandra_addresses.index(node) + 1).jmx_port
    return node, settings.cassandra_jmx_port


@dataclass(frozen=True)
class NodetoolResult:
    """How one nodetool command ended: its exit code and the tail of its output."""

    argv: tuple[str, ...]
    returncode: int | None
    output: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def tail(text: str, lines: int = OUTPUT_TAIL_LINES, chars: int = OUTPUT_TAIL_CHARS) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])[-chars:]


class Nodetool:
    """Runs nodetool commands against the nodes of a cluster.

    Finding Java and resolving the jars happens here, once, so a machine that cannot run nodetool
    fails before anything (a repair lease, a run record) is taken.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.java = find_java(settings.java_home)
        self.lib = cassandra_lib(settings.cache_dir, settings.cassandra_version)
        self.logback = _write_logback(self.lib.parent / "nodetool-logback.xml")

    def argv(self, node: str, *command: str) -> list[str]:
        host, port = jmx_address(self.settings, node)
        auth: list[str] = []
        if self.settings.cassandra_jmx_username:
            auth += ["-u", self.settings.cassandra_jmx_username]
        if self.settings.cassandra_jmx_password_file:
            auth += ["-pwf", self.settings.cassandra_jmx_password_file]
        return [self.java, "-Xmx128m", *module_flags(), f"-Dlogback.configurationFile={self.logback}",
                "-Djava.net.preferIPv4Stack=true", "-cp", f"{self.lib}/*", "org.apache.cassandra.tools.NodeTool",
                "-h", host, "-p", str(port), *auth, *command]

    def run(self, node: str, *command: str, timeout: float) -> NodetoolResult:
        """Run ``nodetool <command>`` against ``node``; output is stdout and stderr interleaved."""
        argv = self.argv(node, *command)
        try:
            done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            partial = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else (exc.output or "")
            note = (f"nodetool did not finish within {timeout:.0f}s and was stopped; the node may still be "
                    "repairing (see `nodetool repair_admin list` on it)")
            return NodetoolResult(tuple(argv), None, tail(f"{partial}\n{note}"), timed_out=True)
        except OSError as exc:
            return NodetoolResult(tuple(argv), None, f"nodetool could not start: {exc}")
        return NodetoolResult(tuple(argv), done.returncode, tail(done.stdout))

    def repair(self, node: str, keyspace: str, full: bool, timeout: float) -> NodetoolResult:
        """Repair ``node``'s primary token ranges of ``keyspace`` (full, or incremental)."""
        mode = ["--full"] if full else []
        return self.run(node, "repair", "--partitioner-range", *mode, keyspace, timeout=timeout)


def _write_logback(path: Path) -> Path:
    if not path.exists() or path.read_text() != _LOGBACK:
        # Written aside and renamed: several processes may start nodetool at once.
        staging = path.with_name(f".{path.name}.{os.getpid()}")
        staging.write_text(_LOGBACK)
        staging.replace(path)
    return path
