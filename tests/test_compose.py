"""docker-compose.yml, checked without Docker: the services it defines, the settings it passes and
the README's list of services must agree with each other and with retain.config.Settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from retain.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
README = ROOT / "README.md"

EXPECTED_SERVICES = {
    "redis",
    "cassandra-dc1",
    "cassandra-dc2",
    "migrate",
    "api",
    "api-dc2",
    "worker-ingest",
    "worker-profiles",
    "worker-train",
    "beat",
    "flower",
    "spark-master",
    "spark-worker",
    "autoscaler",
}

README_START = "<!-- compose-services -->"
README_END = "<!-- /compose-services -->"

RETAIN_VAR = re.compile(rf"\b{ENV_PREFIX}[A-Z0-9_]+\b")
# A backtick-quoted word that could be a service name (`api`, `worker-ingest`); longer code spans
# such as `docker compose up -d` are prose, not names.
SERVICE_NAME_SPAN = re.compile(r"`([A-Za-z0-9][A-Za-z0-9._-]*)`")
FENCED_BLOCK = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict) and isinstance(document.get("services"), dict), \
        "docker-compose.yml has no `services` mapping"
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _env_keys(environment: Any) -> list[str]:
    """Variable names of a service's `environment`, in either of Compose's two forms."""
    if environment is None:
        return []
    if isinstance(environment, dict):
        return [str(key) for key in environment]
    return [str(item).split("=", 1)[0] for item in environment]


def _strings(node: Any) -> Iterator[str]:
    """Every key and scalar of a parsed YAML document, as text."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif node is not None:
        yield str(node)


def _is_setting(var: str) -> bool:
    return var[len(ENV_PREFIX):].lower() in Settings.model_fields


def test_service_names_are_the_expected_ones(services):
    names = set(services)
    assert names == EXPECTED_SERVICES, (
        f"missing: {sorted(EXPECTED_SERVICES - names)}; unexpected: {sorted(names - EXPECTED_SERVICES)}"
    )


def test_every_service_has_an_image_or_a_build(services):
    lacking = [name for name, service in services.items() if not (service.get("image") or service.get("build"))]
    assert not lacking, f"services with neither image nor build: {lacking}"


def test_every_retain_environment_variable_is_a_setting(services):
    unknown = {
        f"{name}: {var}"
        for name, service in services.items()
        for var in _env_keys(service.get("environment"))
        if var.startswith(ENV_PREFIX) and not _is_setting(var)
    }
    assert not unknown, f"RETAIN_* variables that are not fields of retain.config.Settings: {sorted(unknown)}"


def test_no_unknown_retain_variable_anywhere_in_the_file(compose):
    # Also catches one used in a command, an interpolation or an extension field (x-...). A
    # container given an unknown RETAIN_* variable refuses to start (Settings.from_env).
    used = {match for text in _strings(compose) for match in RETAIN_VAR.findall(text)}
    unknown = sorted(var for var in used if not _is_setting(var))
    assert not unknown, f"RETAIN_* names in docker-compose.yml that are not settings: {unknown}"


def test_the_retain_variables_parse_as_settings(services):
    # Values, not only names: a malformed one (say a replication map) fails every retain container.
    for name, service in services.items():
        environment = service.get("environment") or {}
        if not isinstance(environment, dict):
            environment = dict(str(item).partition("=")[::2] for item in environment)
        retain_env = {key: str(value) for key, value in environment.items() if key.startswith(ENV_PREFIX)}
        if retain_env and "$" not in "".join(retain_env.values()):
            Settings.from_env(retain_env)


def test_depends_on_names_existing_services(services):
    problems = []
    for name, service in services.items():
        depends_on = service.get("depends_on") or []
        for dependency in (depends_on if isinstance(depends_on, list) else list(depends_on)):
            if dependency not in services:
                problems.append(f"{name} depends on unknown service {dependency!r}")
            elif dependency == name:
                problems.append(f"{name} depends on itself")
    assert not problems, "; ".join(problems)


def test_readme_lists_only_existing_services(services):
    if not README.is_file():
        pytest.fail(f"{README} is missing; it must list the Compose services between "
                    f"{README_START} and {README_END}")
    text = README.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start == -1 or end == -1 or end < start:
        pytest.fail(f"README.md has no section between {README_START} and {README_END} "
                    "listing the Compose services (as `backtick-quoted` names)")
    section = FENCED_BLOCK.sub("", text[start + len(README_START):end])
    mentioned = set(SERVICE_NAME_SPAN.findall(section))
    assert mentioned, f"the README's {README_START} section names no service in backticks"
    unknown = sorted(mentioned - set(services))
    assert not unknown, f"README.md names services that docker-compose.yml does not define: {unknown}"
