"""End to end: `archiver verify` and `archiver show` through the installed command.

The evidence is archived from the Perfecto simulator by `archiver run --once`, then damaged
the way someone with write access to the store could: on a folder, and on an S3 bucket with
Object Lock (where a "change" is a new version and a "delete" a delete marker).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archiver_sim.perfecto import PerfectoSimulator
from tests.support.cli import Deployment, archiver_env, run_archiver, write_config
from tests.support.s3server import S3Server
from tests.support.simulators import PerfectoFactory

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

KIB = 1024


def small_sim(factory: PerfectoFactory, executions: int) -> PerfectoSimulator:
    from tests.support.cli import TOKEN

    return factory(token=TOKEN, executions=executions, video_size=48 * KIB, artifact_size=8 * KIB)


def verify_json(deployment: Deployment, *args: str) -> tuple[int, dict[str, Any]]:
    result = run_archiver("verify", "--json", *args, config=deployment.config)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def problem_kinds(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(problem["kind"], problem["key"]) for problem in report["problems"]}


def test_verify_and_show_on_a_folder(perfecto_sim_factory: PerfectoFactory, tmp_path: Path) -> None:
    sim = small_sim(perfecto_sim_factory, executions=6)
    # One session at a time: each manifest gets a ledger entry of its own to damage.
    deployment = write_config(
        tmp_path, perfecto_url=sim.api_url, perfecto={"session_concurrency": 1}
    )
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    ids = sorted(deployment.manifests())

    result = run_archiver("verify", config=deployment.config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 sessions, 6 manifests" in result.stdout
    assert result.stdout.rstrip().endswith("OK: every manifest, every object and the ledger check")
    assert "\r" not in result.stderr  # no progress bar when stderr is not a terminal

    # verify and show only read the store: no vendor token needed.
    env = {key: value for key, value in archiver_env().items() if key != "PERFECTO_TOKEN"}
    shown = run_archiver(
        "show", "--source", "perfecto", "--id", ids[0], config=deployment.config, env=env
    )
    assert shown.returncode == 0, shown.stderr
    manifest = deployment.manifests()[ids[0]]
    assert f"perfecto session {ids[0]}" in shown.stdout
    assert "ledger        entry" in shown.stdout
    for artifact in manifest["artifacts"]:
        assert artifact["sha256"] in shown.stdout
    as_json = json.loads(
        run_archiver(
            "show", "--json", "--source", "perfecto", "--id", ids[0], config=deployment.config
        ).stdout
    )
    assert as_json["ledger_entry"]["manifest_sha256"] == as_json["manifest_sha256"]
    assert as_json["total_bytes"] == sum(item["size"] for item in manifest["artifacts"])
    missing = run_archiver("show", "--source", "perfecto", "--id", "nope", config=deployment.config)
    assert missing.returncode == 1 and "no archived perfecto session 'nope'" in missing.stderr

    # Damage one thing per session.
    evidence = deployment.evidence
    artifacts = {sid: deployment.manifests()[sid]["artifacts"] for sid in ids}
    altered = evidence / artifacts[ids[0]][-1]["key"]
    altered.write_bytes(altered.read_bytes()[:-1] + b"!")
    (evidence / artifacts[ids[1]][-1]["key"]).unlink()
    (evidence / "perfecto" / ids[2] / "extra.bin").write_bytes(b"slipped in")
    manifest_path = evidence / "perfecto" / ids[3] / "manifest.json"
    manifest_path.write_text(manifest_path.read_text().replace('"size"', '"size" ', 1))
    ledger = sorted((evidence / "ledger").iterdir())
    assert len(ledger) == 6
    (unrecorded,) = [item["session_id"] for item in json.loads(ledger[1].read_text())["manifests"]]
    ledger[1].unlink()
    ledger[3].write_text(ledger[3].read_text().replace("Z", "Z ", 1))

    code, report = verify_json(deployment)

    assert code == 1 and report["ok"] is False
    found = problem_kinds(report)
    assert ("altered", artifacts[ids[0]][-1]["key"]) in found
    assert ("missing", artifacts[ids[1]][-1]["key"]) in found
    assert ("unlisted", f"perfecto/{ids[2]}/extra.bin") in found
    assert ("manifest_altered", f"perfecto/{ids[3]}/manifest.json") in found
    assert ("ledger_entry_missing", "ledger/000000000001.json") in found
    assert ("ledger_entry_altered", "ledger/000000000003.json") in found
    human = run_archiver("verify", config=deployment.config)
    assert human.returncode == 1 and "FAILED:" in human.stdout

    # Narrowed to one untouched session, it checks (the ledger is still checked whole).
    untouched = ids[5] if unrecorded != ids[5] else ids[4]
    code, report = verify_json(deployment, "--source", "perfecto", "--id", untouched)
    assert report["sessions"] == 1
    assert {kind for kind, _ in problem_kinds(report)} == {
        "ledger_entry_missing",
        "ledger_entry_altered",
    }


def test_verify_needs_a_source_for_ids(tmp_path: Path) -> None:
    deployment = write_config(tmp_path, perfecto_url=None)
    result = run_archiver("verify", "--id", "x", config=deployment.config)
    assert result.returncode == 2 and "--id needs --source" in result.stderr


def s3_deployment(
    tmp_path: Path, sim: PerfectoSimulator, endpoint: str, bucket: str, **store: Any
) -> Deployment:
    return write_config(
        tmp_path,
        perfecto_url=sim.api_url,
        store={
            "url": f"s3://{bucket}/evidence",
            "endpoint_url": endpoint,
            "region": "us-east-1",
            **store,
        },
    )


RETENTION = {
    "object_lock_mode": "GOVERNANCE",
    "object_lock_days": 7,
    "legal_hold": True,
    "sse": "AES256",
    "storage_class": "STANDARD_IA",
}


def retention_on(server: S3Server) -> dict[str, Any]:
    """RETENTION, less the encryption and storage class a server does not offer (the
    contract tests check that the store refuses to start with them there)."""
    return {
        key: value
        for key, value in RETENTION.items()
        if not (key == "sse" and not server.applies_encryption)
        and not (key == "storage_class" and not server.has_storage_classes)
    }


def test_s3_retention_rearchive_and_verify(
    perfecto_sim_factory: PerfectoFactory,
    tmp_path: Path,
    s3_server: S3Server,
    s3_endpoint: str,
    s3_client: S3Client,
    lock_bucket: str,
) -> None:
    sim = small_sim(perfecto_sim_factory, executions=3)
    retention = retention_on(s3_server)
    deployment = s3_deployment(tmp_path, sim, s3_endpoint, lock_bucket, **retention)
    result = run_archiver("run", "--once", config=deployment.config)
    assert result.returncode == 0, result.stderr

    listed = s3_client.list_objects_v2(Bucket=lock_bucket, Prefix="evidence/")["Contents"]
    keys = [item["Key"] for item in listed]
    ledger = [key for key in keys if key.startswith("evidence/ledger/")]
    recorded = [
        record
        for key in ledger
        for record in json.loads(s3_client.get_object(Bucket=lock_bucket, Key=key)["Body"].read())[
            "manifests"
        ]
    ]
    assert len(recorded) == 3 and 1 <= len(ledger) <= 3  # manifests stored together may share
    for key in keys:  # artifacts, manifests and ledger entries alike
        head = s3_client.head_object(Bucket=lock_bucket, Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE", key
        assert head["ObjectLockLegalHoldStatus"] == "ON", key
        assert head.get("ServerSideEncryption") == retention.get("sse"), key
        assert head.get("StorageClass", "STANDARD") == retention.get("storage_class", "STANDARD")

    session_id = sim.executions[0].id
    manifest_key = f"evidence/perfecto/{session_id}/manifest.json"
    result = run_archiver(
        "rearchive", "--source", "perfecto", "--id", session_id, config=deployment.config
    )
    assert result.returncode == 0, result.stderr

    # New keys and a new manifest version; the first version is still there, still locked.
    versions = s3_client.list_object_versions(Bucket=lock_bucket, Prefix=manifest_key)["Versions"]
    assert len(versions) == 2
    manifest = json.loads(s3_client.get_object(Bucket=lock_bucket, Key=manifest_key)["Body"].read())
    assert all("/rearchived/" in artifact["key"] for artifact in manifest["artifacts"])
    entries = [
        json.loads(s3_client.get_object(Bucket=lock_bucket, Key=item["Key"])["Body"].read())
        for item in s3_client.list_objects_v2(Bucket=lock_bucket, Prefix="evidence/ledger/")[
            "Contents"
        ]
    ]
    records = [record for entry in entries for record in entry["manifests"]]
    for_session = [record for record in records if record["session_id"] == session_id]
    assert len(for_session) == 2
    assert for_session[1]["previous_manifest_key"] == manifest["previous_manifest"]

    code, report = verify_json(deployment)
    assert code == 0, report["problems"]
    assert report["sessions"] == 3 and report["manifests"] == 4
    assert report["ledger"]["entries"] == len(entries)

    shown = json.loads(
        run_archiver(
            "show", "--json", "--source", "perfecto", "--id", session_id, config=deployment.config
        ).stdout
    )
    assert shown["ledger_entry"]["seq"] == len(entries) - 1  # the re-archive came last
    assert shown["store_reports"]["object_lock_mode"] == "GOVERNANCE"
    assert shown["store_reports"]["legal_hold"] == "ON"
    assert shown["store_reports"].get("server_side_encryption") == retention.get("sse")
    assert all(
        item["store_reports"]["storage_class"] == retention.get("storage_class", "STANDARD")
        for item in shown["artifacts"]
    )

    # Object Lock keeps every version, but the current one is what a reader gets: a new
    # version or a delete marker is exactly what verify must catch.
    target = manifest["artifacts"][0]["key"]
    s3_client.put_object(
        Bucket=lock_bucket,
        Key=f"evidence/{target}",
        Body=b"replaced",
        # Object Lock wants a digest; a trailing checksum is refused by Ceph RGW over https.
        ContentMD5=base64.b64encode(
            hashlib.md5(b"replaced", usedforsecurity=False).digest()
        ).decode(),
    )
    gone = manifest["artifacts"][1]["key"]
    s3_client.delete_object(Bucket=lock_bucket, Key=f"evidence/{gone}")
    s3_client.delete_object(Bucket=lock_bucket, Key="evidence/ledger/000000000001.json")

    code, report = verify_json(deployment)
    assert code == 1
    found = problem_kinds(report)
    assert ("altered", target) in found
    assert ("missing", gone) in found
    assert ("ledger_entry_missing", "ledger/000000000001.json") in found


def test_s3_tampering_found_without_object_lock(
    perfecto_sim_factory: PerfectoFactory,
    tmp_path: Path,
    s3_endpoint: str,
    s3_client: S3Client,
    s3_bucket: str,
) -> None:
    sim = small_sim(perfecto_sim_factory, executions=2)
    deployment = s3_deployment(tmp_path, sim, s3_endpoint, s3_bucket)
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    assert verify_json(deployment)[0] == 0

    first, second = (execution.id for execution in sim.executions)
    s3_client.put_object(
        Bucket=s3_bucket, Key=f"evidence/perfecto/{first}/manifest.json", Body=b'{"artifacts": []}'
    )
    s3_client.put_object(Bucket=s3_bucket, Key=f"evidence/perfecto/{second}/extra", Body=b"x")
    entry_key = "evidence/ledger/000000000000.json"
    entry = json.loads(s3_client.get_object(Bucket=s3_bucket, Key=entry_key)["Body"].read())
    entry["session_id"] = "someone-else"
    s3_client.put_object(Bucket=s3_bucket, Key=entry_key, Body=json.dumps(entry).encode())

    code, report = verify_json(deployment)
    assert code == 1
    found = problem_kinds(report)
    assert ("manifest_altered", f"perfecto/{first}/manifest.json") in found
    assert ("unlisted", f"perfecto/{second}/extra") in found
    assert ("ledger_entry_altered", "ledger/000000000000.json") in found


def test_s3_retention_without_object_lock_stops_at_start_up(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    sim = small_sim(perfecto_sim_factory, executions=1)
    deployment = s3_deployment(tmp_path, sim, s3_endpoint, s3_bucket, **RETENTION)

    for command in (["run", "--once"], ["verify"]):
        result = run_archiver(*command, config=deployment.config)
        assert result.returncode == 75, result.stderr  # cannot start now
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert s3_bucket in lines[0] and "versioning" in lines[0]
    assert sim.requests("api") == []
