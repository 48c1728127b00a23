"""Fixture: a real S3 API server (moto standalone) over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

import boto3
import pytest

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

# Dummy credentials for the whole test session, set before any boto3 client exists. The
# server is local; real credentials already in the environment are left alone.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing-access-key")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

STARTUP_SECONDS = 30.0
START_ATTEMPTS = 3


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a moto S3 server running in a subprocess for the whole test session."""
    with running_server(tmp_path_factory.mktemp("moto") / "server.log") as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def s3_client(s3_endpoint: str) -> Iterator[S3Client]:
    """A plain boto3 client on the test server, to look at what a store left there."""
    client = boto3.session.Session().client("s3", endpoint_url=s3_endpoint)
    yield client
    client.close()


@pytest.fixture
def s3_bucket(s3_client: S3Client) -> str:
    """A new, empty, uniquely named bucket on the test server."""
    name = f"test-{uuid.uuid4().hex}"
    s3_client.create_bucket(Bucket=name)
    return name


@contextmanager
def running_server(log_path: Path) -> Iterator[str]:
    """A moto S3 server in a subprocess while the block runs; yields its endpoint URL."""
    with log_path.open("ab") as log:
        process, endpoint = start_server(log, log_path)
        try:
            yield endpoint
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start_server(log: IO[bytes], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    # The free port is only free until someone else takes it: retry on an early exit.
    for _ in range(START_ATTEMPTS):
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        endpoint = f"http://127.0.0.1:{port}"
        if _wait_until_answering(process, endpoint):
            return process, endpoint
        process.kill()
        process.wait()
    output = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"moto server did not start; see {log_path}:\n{output}")


def _wait_until_answering(process: subprocess.Popen[bytes], endpoint: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with opener.open(endpoint + "/", timeout=1):
                return True
        except urllib.error.HTTPError as answer:
            answer.close()
            return True  # any HTTP answer means the server is up
        except OSError:
            time.sleep(0.05)
    return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
