"""Settings: validated at load, errors name the variable, children load what parents pass."""

from __future__ import annotations

import subprocess
import sys

import pytest

from retain.config import Settings, docs_table
from retain.errors import ConfigError
from tests.harness import ROOT


@pytest.mark.parametrize("variable, value, complaint", [
    ("RETAIN_CASSANDRA_WRITE_CONSISTENCY", "LOCAL_QUARUM", "unknown consistency level"),
    ("RETAIN_CASSANDRA_READ_CONSISTENCY", "", "unknown consistency level"),
    ("RETAIN_BROKER_URL", "redis//127.0.0.1:6379/1", "must be a redis://"),
    ("RETAIN_REDIS_URL", "redis://127.0.0.1:port/0", "malformed port"),
    ("RETAIN_RESULT_BACKEND", "redis://127.0.0.1:6379/abc", "database must be a number"),
    ("RETAIN_CASSANDRA_REQUEST_TIMEOUT", "-1", "greater than 0"),
    ("RETAIN_CASSANDRA_CONNECT_TIMEOUT", "soon", "valid number"),
    ("RETAIN_API_PORT", "70000", "less than or equal to 65535"),
    ("RETAIN_CASSANDRA_REPLICATION", "dc1", "key:value"),
    ("RETAIN_CASSANDRA_REPLICATION", "dc1:0", "at least 1"),
    ("RETAIN_TASK_TIME_LIMITS", "nightly:60", "unknown queue"),
    ("RETAIN_REDIS_APPENDFSYNC", "sometimes", "always"),
    ("RETAIN_CASANDRA_HOSTS", "127.0.0.1", "unknown setting"),
])
def test_bad_setting_names_the_variable(variable: str, value: str, complaint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value})
    assert str(caught.value).startswith(f"{variable}:"), str(caught.value)
    assert complaint in str(caught.value)


def test_visibility_timeout_must_exceed_time_limits() -> None:
    with pytest.raises(ConfigError, match="RETAIN_BROKER_VISIBILITY_TIMEOUT .* RETAIN_TASK_TIME_LIMITS"):
        Settings.from_env({"RETAIN_TASK_TIME_LIMITS": "train:20000"})


def test_defaults_and_parsing() -> None:
    settings = Settings.from_env({
        "RETAIN_CASSANDRA_HOSTS": "10.0.0.1, 10.0.0.2",
        "RETAIN_CASSANDRA_REPLICATION": "dc1:3,dc2:3",
        "RETAIN_CASSANDRA_READ_CONSISTENCY": "local_one",
        "RETAIN_TASK_TIME_LIMITS": "train:9000",
    })
    assert settings.cassandra_hosts == ["10.0.0.1", "10.0.0.2"]
    assert settings.cassandra_replication == {"dc1": 3, "dc2": 3}
    assert settings.cassandra_read_consistency == "LOCAL_ONE"
    assert settings.task_time_limits == {"ingest": 3600, "profiles": 3600, "train": 9000, "maintenance": 3600}
    assert settings.cassandra_write_consistency == "LOCAL_QUORUM"


def test_to_env_round_trips() -> None:
    settings = Settings.from_env({"RETAIN_CASSANDRA_REPLICATION": "dc1:2,dc2:1", "RETAIN_STACK_CASSANDRA_UNSAFE": "true"})
    assert Settings.from_env(settings.to_env()) == settings


def test_every_setting_is_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"


def test_readme_configuration_table_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- config-table -->", "<!-- /config-table -->"
    assert start in readme and end in readme, "README lacks the configuration table markers"
    table = readme.split(start, 1)[1].split(end, 1)[0].strip()
    assert table == docs_table(), "README's configuration table is stale: paste the output of `retain config docs`"


@pytest.mark.parametrize("command", [["worker"], ["api"], ["config", "show"], ["stack", "status"]])
def test_processes_refuse_to_start_with_bad_settings(command: list[str]) -> None:
    env = {"PATH": "/usr/bin:/bin", "RETAIN_CASSANDRA_READ_CONSISTENCY": "bogus"}
    out = subprocess.run([sys.executable, "-m", "retain", *command], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "RETAIN_CASSANDRA_READ_CONSISTENCY" in out.stderr
    assert "Traceback" not in out.stderr
