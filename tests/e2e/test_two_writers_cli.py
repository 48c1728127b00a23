"""End to end: two archivers with states of their own on one Object Lock bucket, at once.

Each runs ``archiver run --once`` against the same vendor while the other does. On every S3
server under test, each session is archived once: one writer (the store's session claim),
one manifest, one ledger record. Where the server refuses the loser of a race for a ledger
number, every entry has one version and ``archiver verify`` finds nothing wrong; Ceph RGW
ignores ``If-None-Match`` on such a bucket, the archiver decides by version order, and
``verify`` reports the loser's (locked) version of an entry, and nothing else.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from tests.e2e.test_verify_cli import s3_deployment, verify_json
from tests.support.cli import ARCHIVER, TOKEN, archiver_env
from tests.support.s3server import S3Server
from tests.support.simulators import PerfectoFactory

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

KIB = 1024
EXECUTIONS = 8
LOCK = {"object_lock_mode": "GOVERNANCE", "object_lock_days": 1}


def test_two_archivers_on_one_bucket_archive_each_session_once(
    perfecto_sim_factory: PerfectoFactory,
    tmp_path: Path,
    s3_server: S3Server,
    s3_endpoint: str,
    s3_client: S3Client,
    lock_bucket: str,
) -> None:
    sim = perfecto_sim_factory(
        token=TOKEN,
        executions=EXECUTIONS,
        video_size=48 * KIB,
        artifact_size=8 * KIB,
        latency_seconds=0.05,  # long enough for the two to overlap
    )
    deployments = [
        s3_deployment(tmp_path / name, sim, s3_endpoint, lock_bucket, **LOCK)
        for name in ("one", "two")
    ]
    processes = [
        subprocess.Popen(
            [str(ARCHIVER), "run", "--once", "--config", str(deployment.config)],
            env=archiver_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for deployment in deployments
    ]
    outcomes = [process.communicate(timeout=300) for process in processes]
    for process, (_, stderr) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    archived = [
        json.loads(line)["session_id"]
        for _, stderr in outcomes
        for line in stderr.splitlines()
        if '"session_archived"' in line
    ]
    # Sessions the other archiver held were left to it; a second pass of each finishes.
    for deployment in deployments:
        again = subprocess.run(
            [str(ARCHIVER), "run", "--once", "--config", str(deployment.config)],
            env=archiver_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert again.returncode == 0, again.stderr[-3000:]
        archived += [
            json.loads(line)["session_id"]
            for line in again.stderr.splitlines()
            if '"session_archived"' in line
        ]
    assert sorted(archived) == sorted(execution.id for execution in sim.executions)

    ledger = s3_client.list_object_versions(Bucket=lock_bucket, Prefix="evidence/ledger/")
    versions = [version["Key"] for version in ledger.get("Versions", [])]
    raced = {key for key in versions if versions.count(key) > 1}
    code, report = verify_json(deployments[0])
    assert report["sessions"] == EXECUTIONS and report["manifests"] == EXECUTIONS
    if s3_server.conditional_writes_on_versioned_buckets:
        assert not raced  # the server refused the loser's write: one version each
        assert code == 0, report["problems"]
    else:
        # Ceph RGW lets a race's loser write a version; it is locked like every write, so
        # it stays, the winner's bytes go back on top, and verify says so, and only that.
        problems = {(problem["kind"], problem["key"]) for problem in report["problems"]}
        assert problems == {
            ("ledger_entry_versions", key.removeprefix("evidence/")) for key in raced
        }
        for key in raced:
            oldest = [v for v in ledger["Versions"] if v["Key"] == key][-1]["VersionId"]
            first = s3_client.get_object(Bucket=lock_bucket, Key=key, VersionId=oldest)
            newest = s3_client.get_object(Bucket=lock_bucket, Key=key)
            assert first["Body"].read() == newest["Body"].read()
    recorded = [
        record
        for key in sorted(set(versions))
        for record in json.loads(
            s3_client.get_object(
                Bucket=lock_bucket,
                Key=key,
                VersionId=[v for v in ledger["Versions"] if v["Key"] == key][-1]["VersionId"],
            )["Body"].read()
        )["manifests"]
    ]
    assert sorted(record["session_id"] for record in recorded) == sorted(
        execution.id for execution in sim.executions
    )
