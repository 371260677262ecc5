"""A small client of the EC2 instance metadata service (IMDSv2), for what a spot worker needs.

IMDSv2 wants a session token: ``PUT /latest/api/token`` with the token's lifetime in
``X-aws-ec2-metadata-token-ttl-seconds``, then every ``GET`` carries it in
``X-aws-ec2-metadata-token``. A path that does not exist answers 404, which is how the service
says "no notice": ``spot/instance-action`` and ``events/recommendations/rebalance`` appear only
once EC2 has something to say. The standard library's HTTP client is enough and keeps this
importable from every process that loads the worker's signal handlers.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone

from retain.errors import RetainError

TOKEN_TTL_SECONDS = 21600  # the longest IMDS allows: one token for six hours of polling
INSTANCE_ACTION = "meta-data/spot/instance-action"
REBALANCE = "meta-data/events/recommendations/rebalance"
INSTANCE_ID = "meta-data/instance-id"
# Never through an HTTP proxy from the environment: the service answers only on the instance itself.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class MetadataUnavailable(RetainError):
    """The instance metadata service did not answer, or answered something unexpected."""


@dataclass(frozen=True)
class InstanceAction:
    """A spot interruption notice: EC2 will ``action`` (terminate, stop, hibernate) the instance at ``time``."""

    action: str
    time: float  # epoch seconds


@dataclass(frozen=True)
class Rebalance:
    """A rebalance recommendation: the instance is at elevated risk of interruption, no deadline yet."""

    notice_time: float  # epoch seconds


def parse_time(value: str) -> float:
    """``2026-01-05T18:02:00Z`` → epoch seconds (IMDS times are UTC)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


class Imds:
    """IMDSv2 at ``base_url`` (``http://169.254.169.254`` on EC2)."""

    def __init__(self, base_url: str, timeout: float = 2.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._token: str | None = None
        self._token_expires = 0.0

    def _open(self, request: urllib.request.Request) -> tuple[int, bytes]:
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise MetadataUnavailable(f"instance metadata service at {self.base_url}: {exc}") from exc

    def token(self, refresh: bool = False) -> str:
        """A session token, fetched again a minute before the current one expires."""
        if refresh or self._token is None or time.monotonic() >= self._token_expires:
            request = urllib.request.Request(
                f"{self.base_url}/latest/api/token", method="PUT",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)})
            status, body = self._open(request)
            if status != 200 or not body.strip():
                raise MetadataUnavailable(f"instance metadata service at {self.base_url} refused a token "
                                          f"(HTTP {status})")
            self._token = body.decode().strip()
            self._token_expires = time.monotonic() + TOKEN_TTL_SECONDS - 60
        return self._token

    def get(self, path: str) -> str | None:
        """The text at ``/latest/<path>``, or None where the service has nothing (404)."""
        for attempt in range(2):
            request = urllib.request.Request(f"{self.base_url}/latest/{path}",
                                             headers={"X-aws-ec2-metadata-token": self.token(refresh=attempt > 0)})
            status, body = self._open(request)
            if status == 200:
                return body.decode()
            if status == 404:
                return None
            if status != 401:  # 401: the token expired or the service restarted; one retry with a new one
                break
        raise MetadataUnavailable(f"instance metadata service at {self.base_url}: GET /latest/{path} "
                                  f"answered HTTP {status}")

    def _document(self, path: str) -> dict | None:
        text = self.get(path)
        if text is None:
            return None
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise MetadataUnavailable(f"/latest/{path} is not JSON: {text[:200]!r}") from exc
        if not isinstance(document, dict):
            raise MetadataUnavailable(f"/latest/{path} is not a JSON object: {text[:200]!r}")
        return document

    def instance_action(self) -> InstanceAction | None:
        """The pending spot interruption, if any."""
        document = self._document(INSTANCE_ACTION)
        if document is None:
            return None
        try:
            return InstanceAction(str(document["action"]), parse_time(str(document["time"])))
        except (KeyError, ValueError) as exc:
            raise MetadataUnavailable(f"unexpected spot instance-action document {document!r}") from exc

    def rebalance(self) -> Rebalance | None:
        """The rebalance recommendation, if EC2 has made one."""
        document = self._document(REBALANCE)
        if document is None:
            return None
        try:
            return Rebalance(parse_time(str(document["noticeTime"])))
        except (KeyError, ValueError) as exc:
            raise MetadataUnavailable(f"unexpected rebalance recommendation document {document!r}") from exc

    def instance_id(self) -> str:
        value = self.get(INSTANCE_ID)
        if not value or not value.strip():
            raise MetadataUnavailable(f"instance metadata service at {self.base_url} has no instance id")
        return value.strip()
