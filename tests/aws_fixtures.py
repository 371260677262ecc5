"""AWS fixtures: a real moto server on loopback (S3, Kinesis, EC2, Auto Scaling).

The server is a child process on 127.0.0.1 and a free port, shared by the session. Clients reach
it only through the endpoint URL these fixtures hand out, so nothing can talk to real AWS. The
dummy credentials are set with ``setdefault`` because boto3 refuses to sign without some, and code
under test must find credentials the normal boto3 way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest
import requests

from tests.harness import free_port, poll

REGION = "us-east-1"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_DEFAULT_REGION": REGION}


def _moto_command(port: int) -> list[str]:
    script = Path(sys.executable).parent / "moto_server"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]
    return [*base, "-H", "127.0.0.1", "-p", str(port)]


def _wait_until_up(proc: subprocess.Popen, url: str, log_path: Path, timeout: float) -> None:
    def answers() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"moto_server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        requests.get(f"{url}/moto-api/", timeout=1)
        return True

    poll(answers, timeout, f"moto_server answers at {url} (log: {log_path})", interval=0.1)


def aws_client(service: str, endpoint: str):
    """A boto3 client of ``service`` on the moto server, with the dummy credentials."""
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory):
    """The URL of a moto server running for the whole session."""
    for name, value in DUMMY_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(_moto_command(port), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        _wait_until_up(proc, url, log_path, timeout=60.0)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)


@pytest.fixture
def s3_bucket(moto_endpoint: str):
    """A fresh, empty bucket on the moto server; its name."""
    client = aws_client("s3", moto_endpoint)
    name = f"retain-test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    yield name
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
        if keys:
            client.delete_objects(Bucket=name, Delete={"Objects": keys})
    client.delete_bucket(Bucket=name)
