"""End to end: S3 errors and dropped connections during single and multipart uploads.

The archiver's S3 endpoint is a fault-injecting proxy (:mod:`tests.support.s3proxy`) in front
of the real test S3 API server: 500 InternalError, 503 SlowDown, connections closed before
the request reaches S3 and after S3 did the work, on PutObject, CreateMultipartUpload,
UploadPart and CompleteMultipartUpload. A few passes archive every session once, every
stored byte matches its SHA-256, and no incomplete multipart upload survives the next start.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.test_faults_cli import archived_events, state_rows
from tests.e2e.test_perfecto_cli import assert_matches_simulator
from tests.support.cli import TOKEN, archiver_env, run_archiver, write_config
from tests.support.s3proxy import KINDS, OPERATIONS, S3FaultProxy
from tests.support.s3server import S3Server
from tests.support.secrets import SecretScan
from tests.support.simulators import PerfectoFactory

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

MIB = 1024 * 1024
KIB = 1024
MAX_PASSES = 6
# Credentials only this test hands out, so a leak of them is unmistakable (a server that
# checks them, Ceph's gateway, gets its own, which must not leak either).
AWS = {
    "AWS_ACCESS_KEY_ID": "AKIAS3FAULTTEST0001",
    "AWS_SECRET_ACCESS_KEY": "s3-fault-secret-Zq8wX2",
    "AWS_SESSION_TOKEN": "s3-fault-session-token-Hk3v",
}


def credentials_for(server: S3Server) -> dict[str, str]:
    if not server.is_ceph:
        return AWS
    return {name: os.environ[name] for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}


def bucket_keys(s3_client: S3Client, bucket: str) -> list[str]:
    keys: list[str] = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


@pytest.mark.slow
@pytest.mark.parametrize(
    ("rate", "max_in_a_row"),
    [
        pytest.param(0.25, 2, id="within-boto-retries"),
        # Three in a row outlast botocore's three attempts: sessions fail, later passes heal.
        pytest.param(0.5, 3, id="beyond-boto-retries"),
    ],
)
def test_s3_errors_and_drops_during_uploads_heal(
    rate: float,
    max_in_a_row: int,
    perfecto_sim_factory: PerfectoFactory,
    s3_server: S3Server,
    s3_http_endpoint: str,
    s3_client: S3Client,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    # Videos above the 5 MiB multipart threshold (3 parts each), everything else below it.
    sim = perfecto_sim_factory(
        token=TOKEN,
        executions=3,
        video_size=12 * MIB,
        artifact_size=16 * KIB,
        screenshot_size=4 * KIB,
    )
    aws = credentials_for(s3_server)
    env = archiver_env(**aws)
    scan = SecretScan(*aws.values())
    events: list[tuple[str, str]] = []
    failures: list[str] = []
    with S3FaultProxy(
        s3_http_endpoint,
        seed=31,
        rate=rate,
        max_in_a_row=max_in_a_row,
        cover_all=True,
        outlast_first=max_in_a_row > 2,
    ) as proxy:
        deployment = write_config(
            tmp_path,
            perfecto_url=sim.api_url,
            store={
                "url": f"s3://{s3_bucket}/evidence",
                "endpoint_url": proxy.url,
                "region": "us-east-1",
                "multipart_threshold_mib": 5,
                "multipart_chunksize_mib": 5,
                "spool_dir": str(tmp_path / "spool"),
            },
            engine={"cleanup_incomplete_after_seconds": 0, "max_attempts": 20},
        )
        for number in range(MAX_PASSES):
            result = run_archiver("run", "--once", config=deployment.config, env=env)
            scan.add_result(f"pass {number}", result)
            assert result.returncode in (0, 1), result.stderr[-3000:]
            events += archived_events(result.stdout + result.stderr)
            failures += [line for line in result.stderr.splitlines() if "session_failed" in line]
            # Nothing premature: a manifest in the bucket means all its objects are there.
            for key in bucket_keys(s3_client, s3_bucket):
                if key.endswith("/manifest.json"):
                    verify_manifest(s3_client, s3_bucket, key)
            if result.returncode == 0:
                break
        assert result.returncode == 0, result.stderr[-3000:]
        injected = dict(proxy.injected)
        if number == 0:
            # Each CreateMultipartUpload that S3 did but whose answer was lost left an
            # upload behind (a later pass's start-up would already have removed them).
            orphans = s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
            assert len(orphans) >= injected[("CreateMultipartUpload", "drop_after")] > 0
        # One more start, without faults, cleans up what the drops left behind.
        proxy.rate = 0.0
        final = run_archiver("run", "--once", config=deployment.config, env=env)
        scan.add_result("final", final)
        assert final.returncode == 0, final.stderr[-3000:]
        assert archived_events(final.stdout + final.stderr) == []
        # The archiver's own check: manifests, objects and the ledger agree.
        verified = run_archiver("verify", config=deployment.config, env=env)
        scan.add_result("verify", verified)
        assert verified.returncode == 0, verified.stdout + verified.stderr

    if max_in_a_row > 2:
        assert failures, "no fault outlasted botocore's retries"
    for line in failures:
        error = str(json.loads(line)["error"])
        assert ": S3 " in error and "transient" in error, error
    missing = {(op, kind) for op in OPERATIONS for kind in KINDS} - set(injected)
    assert not missing, f"never injected: {sorted(missing)}; injected: {injected}"
    # A manifest whose PutObject answer was lost is in the bucket all the same: the next
    # pass finds it and records the session without archiving it again (no event then).
    assert len(events) == len(set(events))
    assert set(events) <= {("perfecto", e.id) for e in sim.executions}
    assert set(state_rows(deployment).values()) == {"archived"}
    assert len(state_rows(deployment)) == len(sim.executions)
    keys = bucket_keys(s3_client, s3_bucket)
    manifests = sorted(key for key in keys if key.endswith("manifest.json"))
    assert manifests == sorted(f"evidence/perfecto/{e.id}/manifest.json" for e in sim.executions)
    listed = {"evidence/" + e["key"] for m in manifests for e in _manifest(s3_client, s3_bucket, m)}
    evidence = {key for key in keys if key.startswith("evidence/perfecto/")}
    claims = {key for key in evidence if key.split("/")[3] == "claims"}
    assert {key.rsplit("/", 1)[-1] for key in claims} == {"0000.json"}  # one writer each
    assert listed | set(manifests) >= evidence - claims
    for key in manifests:
        manifest = verify_manifest(s3_client, s3_bucket, key)
        assert_matches_simulator(sim, manifest)
        videos = [entry for entry in manifest["artifacts"] if entry["kind"] == "video"]
        assert videos and all(entry["size"] == 12 * MIB for entry in videos)
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert list((tmp_path / "spool").iterdir()) == []
    scan.add_tree(tmp_path)
    scan.assert_clean()


def _manifest(s3_client: S3Client, bucket: str, key: str) -> list[dict[str, Any]]:
    artifacts: list[dict[str, Any]] = json.loads(
        s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    )["artifacts"]
    return artifacts


def verify_manifest(s3_client: S3Client, bucket: str, key: str) -> dict[str, Any]:
    """Every object the manifest lists is in the bucket with its size and SHA-256."""
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    manifest: dict[str, Any] = json.loads(body)
    prefix = key.split("/", 1)[0] + "/"
    for entry in manifest["artifacts"]:
        data = s3_client.get_object(Bucket=bucket, Key=prefix + entry["key"])["Body"].read()
        assert len(data) == entry["size"], entry["key"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["key"]
    return manifest
