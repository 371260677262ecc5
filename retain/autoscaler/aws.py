"""What the cloud fleets share: boto3 clients built from the settings, and AWS failures as RetainError.

Clients reach ``RETAIN_AWS_ENDPOINT_URL`` when it is set (a moto server in tests, never AWS there)
and AWS itself otherwise, in ``RETAIN_AWS_REGION``, with credentials found the usual boto3 way
(instance role, environment, profile). Retries are bounded and timeouts short: a look of the
autoscaler should fail within seconds rather than hang on an unreachable endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from retain.autoscaler.fleet import FleetError
from retain.config import Settings

_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=20)


class AwsError(FleetError):
    """An AWS call failed (throttled, denied, unreachable) or a fleet is in no state to be resized."""


def client(settings: Settings, service: str) -> Any:
    """A boto3 client of ``service`` ("ec2", "autoscaling") for these settings."""
    return boto3.client(service, region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url or None,
                        config=_CONFIG)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def calling(what: str) -> Iterator[None]:
    """Turn a boto3 failure inside the block into an AwsError that says ``what`` was being done."""
    try:
        yield
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        raise AwsError(f"{what}: {error_code(exc) or 'error'}: {message}") from exc
    except BotoCoreError as exc:
        raise AwsError(f"{what}: {exc}") from exc
