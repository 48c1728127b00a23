"""Fixtures: the S3 servers the S3 tests run against, each over real HTTP.

moto's standalone server always runs (started here, for the whole test session). Real S3
implementations join when their endpoint is in the environment, as the scripts in
``../shared/tools/`` export it (``make test-s3`` starts them):

* ``localstack``: LocalStack's own S3 (``LOCALSTACK_S3_ENDPOINT``);
* ``ceph`` and ``ceph-tls``: Ceph's RADOS Gateway over http and https
  (``CEPH_RGW_ENDPOINT``, ``CEPH_RGW_TLS_ENDPOINT``, ``CEPH_RGW_CA_BUNDLE``).

Every test that uses ``s3_endpoint`` (or ``s3_client``, ``s3_bucket``) runs once per server,
is marked ``s3``, and carries the server's name in its id.
"""

from __future__ import annotations

import contextlib
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
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config

from archiver.store.s3errors import BOTO_ERRORS

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

# Credentials for the whole test session, set before any boto3 client exists. moto and
# LocalStack take any; Ceph's gateway only its own, so they are used when it is there.
# Real credentials already in the environment are left alone otherwise.
if os.environ.get("CEPH_RGW_ACCESS_KEY") and os.environ.get("CEPH_RGW_SECRET_KEY"):
    os.environ["AWS_ACCESS_KEY_ID"] = os.environ["CEPH_RGW_ACCESS_KEY"]
    os.environ["AWS_SECRET_ACCESS_KEY"] = os.environ["CEPH_RGW_SECRET_KEY"]
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing-access-key")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
if os.environ.get("CEPH_RGW_CA_BUNDLE"):  # the gateway's self-signed certificate, for https
    os.environ["AWS_CA_BUNDLE"] = os.environ["CEPH_RGW_CA_BUNDLE"]

STARTUP_SECONDS = 30.0
START_ATTEMPTS = 3
REAL_SERVERS = {
    "localstack": "LOCALSTACK_S3_ENDPOINT",
    "ceph": "CEPH_RGW_ENDPOINT",
    "ceph-tls": "CEPH_RGW_TLS_ENDPOINT",
}
SERVERS = ["moto", *(name for name, variable in REAL_SERVERS.items() if os.environ.get(variable))]


@dataclass(frozen=True, slots=True)
class S3Server:
    """One S3 implementation under test, and what the tests need to know of it."""

    name: str
    endpoint: str

    @property
    def tls(self) -> bool:
        return self.endpoint.startswith("https:")

    @property
    def is_ceph(self) -> bool:
        return self.name.startswith("ceph")

    # What each implementation does, as measured here (docs/s3.md's compatibility table).

    @property
    def applies_encryption(self) -> bool:
        """SSE-S3 and SSE-KMS are applied (Ceph RGW 16: refused over http, and over https
        answered 200 with the object stored unencrypted)."""
        return not self.is_ceph

    @property
    def has_storage_classes(self) -> bool:
        """Classes beyond STANDARD (a Ceph gateway offers those it was set up with)."""
        return not self.is_ceph

    @property
    def stores_checksums(self) -> bool:
        """``x-amz-checksum-*`` values are kept and returned (not by Ceph RGW 16)."""
        return not self.is_ceph

    @property
    def conditional_writes_on_versioned_buckets(self) -> bool:
        """``If-None-Match: *`` is honoured on a versioned bucket (not by Ceph RGW 16)."""
        return not self.is_ceph


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a moto S3 server running in a subprocess for the whole test session."""
    with running_server(tmp_path_factory.mktemp("moto") / "server.log") as endpoint:
        yield endpoint


@pytest.fixture(scope="session", params=SERVERS)
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    return server_named(request.param, request)


def server_named(name: str, request: pytest.FixtureRequest) -> S3Server:
    if name == "moto":
        return S3Server(name, request.getfixturevalue("moto_endpoint"))
    return S3Server(name, os.environ[REAL_SERVERS[name]])


def new_bucket(endpoint: str) -> str:
    """A new, empty, uniquely named bucket on the server at ``endpoint``."""
    name = f"test-{uuid.uuid4().hex}"
    client = plain_client(endpoint)
    try:
        client.create_bucket(Bucket=name)
    finally:
        client.close()
    return name


@pytest.fixture(scope="session")
def s3_endpoint(s3_server: S3Server) -> str:
    return s3_server.endpoint


@pytest.fixture
def s3_http_endpoint(s3_server: S3Server) -> str:
    """The endpoint, for tests that put the plain-http fault proxy in front of it."""
    if s3_server.tls:
        pytest.skip("the fault proxy forwards plain http only")
    return s3_server.endpoint


def plain_client(endpoint: str) -> S3Client:
    """A boto3 client without botocore's default checksums, which some servers refuse (Ceph
    RGW over https answers 411 to their aws-chunked bodies)."""
    config = Config(
        request_checksum_calculation="when_required", response_checksum_validation="when_required"
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)


@pytest.fixture(scope="session")
def s3_client(s3_endpoint: str) -> Iterator[S3Client]:
    """A plain boto3 client on the test server, to look at what a store left there."""
    client = plain_client(s3_endpoint)
    yield client
    client.close()


@pytest.fixture
def s3_bucket(s3_client: S3Client) -> Iterator[str]:
    """A new, empty, uniquely named bucket on the test server, removed afterwards."""
    name = f"test-{uuid.uuid4().hex}"
    s3_client.create_bucket(Bucket=name)
    yield name
    remove_bucket(s3_client, name)


@pytest.fixture
def lock_bucket(s3_client: S3Client) -> Iterator[str]:
    """A bucket created with Object Lock (which turns versioning on with it)."""
    name = f"lock-{uuid.uuid4().hex}"
    s3_client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    yield name
    remove_bucket(s3_client, name)


def remove_bucket(client: S3Client, name: str) -> None:
    """Empty and delete a test bucket, as far as its locks allow (GOVERNANCE retention is
    bypassed, legal holds lifted): a long-lived server (Ceph's gateway allows a user 1,000
    buckets) outlives many test runs."""
    with contextlib.suppress(*BOTO_ERRORS):
        pages = client.get_paginator("list_object_versions").paginate(Bucket=name)
        for page in pages:
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                _remove_version(client, name, item["Key"], item["VersionId"])
        uploads = client.list_multipart_uploads(Bucket=name).get("Uploads", [])
        for upload in uploads:
            client.abort_multipart_upload(
                Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        client.delete_bucket(Bucket=name)


def _remove_version(client: S3Client, bucket: str, key: str, version: str) -> None:
    try:
        client.delete_object(
            Bucket=bucket, Key=key, VersionId=version, BypassGovernanceRetention=True
        )
    except BOTO_ERRORS:
        with contextlib.suppress(*BOTO_ERRORS):
            client.put_object_legal_hold(
                Bucket=bucket, Key=key, VersionId=version, LegalHold={"Status": "OFF"}
            )
            client.delete_object(
                Bucket=bucket, Key=key, VersionId=version, BypassGovernanceRetention=True
            )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        on_s3 = str(params.get("store", "")).startswith("s3-")
        if on_s3 or "s3_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.s3)


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
