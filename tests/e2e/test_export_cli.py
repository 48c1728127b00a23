"""End to end: `archiver export` writes BagIt bags that the Library of Congress's `bagit`
validator accepts, `archiver verify --bag` re-checks them, and a store that no longer holds
the evidence stops the export with nothing left behind. From a folder and from S3."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bagit
import pytest

from archiver_sim.perfecto import PerfectoSimulator
from tests.support.cli import (
    ARCHIVER,
    TOKEN,
    Deployment,
    archiver_env,
    run_archiver,
    toml_table,
    write_config,
)
from tests.support.simulators import PerfectoFactory

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

KIB = 1024
ORGANIZATION = "Example Corp, Quality Assurance"
EXPORT_TABLE = toml_table("export", {"source_organization": ORGANIZATION})


def small_sim(factory: PerfectoFactory, executions: int) -> PerfectoSimulator:
    return factory(token=TOKEN, executions=executions, video_size=48 * KIB, artifact_size=8 * KIB)


def archived(deployment: Deployment) -> list[str]:
    result = run_archiver("run", "--once", config=deployment.config)
    assert result.returncode == 0, result.stderr
    return sorted(deployment.manifests())


def export(deployment: Deployment, *args: str) -> Any:
    return run_archiver("export", *args, config=deployment.config)


def valid_per_bagit(path: Path) -> bagit.Bag:
    bag = bagit.Bag(str(path))
    bag.validate()  # raises BagValidationError, naming what is wrong
    return bag


def bag_info(path: Path) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for line in (path / "bag-info.txt").read_text().splitlines():
        label, _, value = line.partition(": ")
        fields.setdefault(label, []).append(value)
    return fields


def ledger_head(deployment: Deployment) -> str:
    report = json.loads(run_archiver("verify", "--json", config=deployment.config).stdout)
    return f"{report['ledger']['head_seq']}:{report['ledger']['head_sha256']}"


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".partial"))


@pytest.fixture
def folder_deployment(perfecto_sim_factory: PerfectoFactory, tmp_path: Path) -> Deployment:
    sim = small_sim(perfecto_sim_factory, executions=4)
    return write_config(
        tmp_path / "archive",
        perfecto_url=sim.api_url,
        store={"url": f"file://{tmp_path}/archive/evidence", "evidence_page": True},
        extra=EXPORT_TABLE,
    )


def test_a_bag_of_chosen_sessions_validates_and_carries_the_ledger(
    folder_deployment: Deployment, tmp_path: Path
) -> None:
    deployment = folder_deployment
    ids = archived(deployment)
    # The evidence page is stored beside each manifest, listed in it: verify finds nothing amiss.
    for session_id in ids:
        page = deployment.evidence / "perfecto" / session_id / "index.html"
        assert page.is_file()
        listed = [item["key"] for item in deployment.manifests()[session_id]["artifacts"]]
        assert f"perfecto/{session_id}/index.html" in listed
    verified = run_archiver("verify", config=deployment.config)
    assert verified.returncode == 0, verified.stdout

    out = tmp_path / "bag"
    result = export(
        deployment, "--source", "perfecto", "--id", ids[0], "--id", ids[2], "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "exported 2 sessions" in result.stdout

    bag = valid_per_bagit(out)
    assert bag.version_info == (1, 0)
    info = bag_info(out)
    assert info["Source-Organization"] == [ORGANIZATION]
    assert info["External-Identifier"] == [f"perfecto/{ids[0]}", f"perfecto/{ids[2]}"]
    assert info["Bag-Software-Agent"][0].startswith("archiver ")
    assert info["Bagging-Date"] == [datetime.now(UTC).date().isoformat()]
    assert info["Archiver-Ledger-Head"] == [ledger_head(deployment)]
    for session_id, reference in zip((ids[0], ids[2]), info["Archiver-Manifest"], strict=True):
        shown = json.loads(
            run_archiver(
                "show",
                "--json",
                "--source",
                "perfecto",
                "--id",
                session_id,
                config=deployment.config,
            ).stdout
        )
        seq, sha256, key = reference.split(" ")
        assert (int(seq), sha256, key) == (
            shown["ledger_entry"]["seq"],
            shown["manifest_sha256"],
            shown["manifest_key"],
        )
    # The payload mirrors the store's keys, byte for byte.
    for session_id in (ids[0], ids[2]):
        manifest = deployment.manifests()[session_id]
        for key in [f"perfecto/{session_id}/manifest.json"] + [
            item["key"] for item in manifest["artifacts"]
        ]:
            assert (out / "data" / key).read_bytes() == (deployment.evidence / key).read_bytes()
    assert not (out / "data" / "perfecto" / ids[1]).exists()
    assert leftovers(tmp_path) == []

    alone = run_archiver("verify", "--bag", str(out))
    assert alone.returncode == 0, alone.stdout
    against_store = run_archiver("verify", "--bag", str(out), config=deployment.config)
    assert against_store.returncode == 0, against_store.stdout
    assert "against file://" in against_store.stdout

    # An existing destination is never written over.
    again = export(deployment, "--source", "perfecto", "--id", ids[0], "--out", str(out))
    assert again.returncode == 1 and "already exists" in again.stderr


@pytest.mark.parametrize("damaged", ["payload", "bag-info.txt"])
def test_one_changed_byte_fails_validation(
    folder_deployment: Deployment, tmp_path: Path, damaged: str
) -> None:
    deployment = folder_deployment
    ids = archived(deployment)
    out = tmp_path / "bag"
    assert (
        export(deployment, "--source", "perfecto", "--id", ids[1], "--out", str(out)).returncode
        == 0
    )
    valid_per_bagit(out)
    if damaged == "payload":
        target = sorted((out / "data" / "perfecto" / ids[1] / "videos").iterdir())[0]
    else:
        target = out / "bag-info.txt"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))

    with pytest.raises(bagit.BagValidationError):
        valid_per_bagit(out)
    result = run_archiver("verify", "--bag", str(out))
    assert result.returncode == 1
    assert f"{target.relative_to(out).as_posix()}: SHA-256" in result.stdout
    assert "FAILED" in result.stdout


@pytest.mark.parametrize("as_zip", [False, True])
def test_a_store_that_differs_from_its_manifest_stops_the_export(
    folder_deployment: Deployment, tmp_path: Path, as_zip: bool
) -> None:
    deployment = folder_deployment
    ids = archived(deployment)
    manifest = deployment.manifests()[ids[3]]
    key = next(item["key"] for item in manifest["artifacts"] if item["kind"] == "video")
    stored = deployment.evidence / key
    data = bytearray(stored.read_bytes())
    data[100] ^= 0xFF
    stored.write_bytes(bytes(data))

    out = tmp_path / ("bag.zip" if as_zip else "bag")
    result = export(deployment, "--since", "2000-01-01", "--zip" if as_zip else "--out", str(out))
    assert result.returncode == 1
    assert key in result.stderr and "nothing was exported" in result.stderr
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_a_zip_of_sessions_since_a_date_unzips_to_a_valid_bag(
    folder_deployment: Deployment, tmp_path: Path
) -> None:
    deployment = folder_deployment
    ids = archived(deployment)
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    out = tmp_path / "evidence-2026.zip"
    result = export(deployment, "--since", since, "--until", until, "--zip", str(out))
    assert result.returncode == 0, result.stderr
    assert f"exported {len(ids)} sessions" in result.stdout
    with zipfile.ZipFile(out) as archive:
        assert archive.testzip() is None
        assert {name.split("/")[0] for name in archive.namelist()} == {"evidence-2026"}
        archive.extractall(tmp_path / "unzipped")
    bag = tmp_path / "unzipped" / "evidence-2026"
    valid_per_bagit(bag)
    assert bag_info(bag)["External-Identifier"] == [f"perfecto/{i}" for i in ids]
    assert run_archiver("verify", "--bag", str(bag), config=deployment.config).returncode == 0

    # Nothing archived in the window: an error, and no file.
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    empty = export(deployment, "--since", future, "--zip", str(tmp_path / "none.zip"))
    assert empty.returncode == 1 and "no archived session matches" in empty.stderr
    assert not (tmp_path / "none.zip").exists() and leftovers(tmp_path) == []


def test_a_bag_from_s3_validates_and_checks_against_the_bucket(
    perfecto_sim_factory: PerfectoFactory,
    tmp_path: Path,
    s3_endpoint: str,
    s3_client: S3Client,
    s3_bucket: str,
) -> None:
    sim = small_sim(perfecto_sim_factory, executions=3)
    deployment = write_config(
        tmp_path / "archive",
        perfecto_url=sim.api_url,
        store={
            "url": f"s3://{s3_bucket}/evidence",
            "endpoint_url": s3_endpoint,
            "region": "us-east-1",
            "evidence_page": True,
        },
        extra=EXPORT_TABLE,
    )
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    listed = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="evidence/perfecto/")["Contents"]
    ids = sorted({item["Key"].split("/")[2] for item in listed})
    assert len(ids) == 3

    out = tmp_path / "bag.zip"
    result = export(
        deployment, "--source", "perfecto", "--id", ids[0], "--id", ids[1], "--zip", str(out)
    )
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(out) as archive:
        archive.extractall(tmp_path)
    bag = tmp_path / "bag"
    valid_per_bagit(bag)
    manifest_key = f"evidence/perfecto/{ids[0]}/manifest.json"
    manifest = json.loads(s3_client.get_object(Bucket=s3_bucket, Key=manifest_key)["Body"].read())
    for item in manifest["artifacts"]:
        body = s3_client.get_object(Bucket=s3_bucket, Key=f"evidence/{item['key']}")["Body"].read()
        assert (bag / "data" / item["key"]).read_bytes() == body
    checked = run_archiver("verify", "--bag", str(bag), config=deployment.config)
    assert checked.returncode == 0, checked.stdout
    assert f"against s3://{s3_bucket}/evidence" in checked.stdout

    # The bucket's copy changed after archiving: the export stops, naming the key.
    video = next(item["key"] for item in manifest["artifacts"] if item["kind"] == "video")
    s3_client.put_object(Bucket=s3_bucket, Key=f"evidence/{video}", Body=b"not the video")
    stopped = export(
        deployment, "--source", "perfecto", "--id", ids[0], "--out", str(tmp_path / "b2")
    )
    assert stopped.returncode == 1 and video in stopped.stderr
    assert not (tmp_path / "b2").exists() and leftovers(tmp_path) == []


def test_verify_bag_finds_a_rewritten_ledger(folder_deployment: Deployment, tmp_path: Path) -> None:
    deployment = folder_deployment
    ids = archived(deployment)
    out = tmp_path / "bag"
    assert (
        export(deployment, "--source", "perfecto", "--id", ids[0], "--out", str(out)).returncode
        == 0
    )
    head = bag_info(out)["Archiver-Ledger-Head"][0]
    seq = int(head.split(":")[0])
    entry = deployment.evidence / "ledger" / f"{seq:012d}.json"
    entry.write_bytes(entry.read_bytes().replace(b'"seq"', b'"seq" ', 1))
    result = run_archiver("verify", "--bag", str(out), config=deployment.config)
    assert result.returncode == 1
    assert "the ledger was rewritten since the export" in result.stdout
    # On its own the bag is still whole: the change is the store's.
    assert run_archiver("verify", "--bag", str(out)).returncode == 0


def test_a_rearchived_session_brings_its_earlier_archive(
    folder_deployment: Deployment, tmp_path: Path
) -> None:
    deployment = folder_deployment
    ids = archived(deployment)
    first = deployment.manifests()[ids[0]]
    rearchived = run_archiver(
        "rearchive", "--source", "perfecto", "--id", ids[0], config=deployment.config
    )
    assert rearchived.returncode == 0, rearchived.stderr
    current = deployment.manifests()[ids[0]]
    history_key = current["previous_manifest"]
    assert history_key and history_key.startswith(f"perfecto/{ids[0]}/history/")
    # The re-archive's page is in its own folder, listed by the new manifest.
    page_keys = [item["key"] for item in current["artifacts"] if item["kind"] == "evidence_page"]
    assert len(page_keys) == 1 and "/rearchived/" in page_keys[0]
    assert run_archiver("verify", config=deployment.config).returncode == 0

    out = tmp_path / "bag"
    assert (
        export(deployment, "--source", "perfecto", "--id", ids[0], "--out", str(out)).returncode
        == 0
    )
    valid_per_bagit(out)
    assert (out / "data" / history_key).read_bytes() == (
        deployment.evidence / history_key
    ).read_bytes()
    for item in first["artifacts"] + current["artifacts"]:
        assert (out / "data" / item["key"]).is_file(), item["key"]
    references = bag_info(out)["Archiver-Manifest"]
    assert [reference.split(" ")[2] for reference in references] == [
        f"perfecto/{ids[0]}/manifest.json",
        history_key,
    ]
    assert int(references[0].split(" ")[0]) > int(references[1].split(" ")[0])
    assert "earlier archive of" in (out / "index.html").read_text()
    checked = run_archiver("verify", "--bag", str(out), config=deployment.config)
    assert checked.returncode == 0, checked.stdout


def export_to_stdout(deployment: Deployment, *args: str) -> subprocess.CompletedProcess[bytes]:
    command = [str(ARCHIVER), "--config", str(deployment.config), "export", *args, "--zip", "-"]
    return subprocess.run(
        command, env=archiver_env(), capture_output=True, timeout=180, check=False
    )


def test_a_zip_streamed_to_standard_output(folder_deployment: Deployment, tmp_path: Path) -> None:
    deployment = folder_deployment
    ids = archived(deployment)
    streamed = export_to_stdout(deployment, "--source", "perfecto", "--id", ids[0])
    assert streamed.returncode == 0, streamed.stderr
    assert b"to standard output" in streamed.stderr
    with zipfile.ZipFile(io.BytesIO(streamed.stdout)) as archive:
        archive.extractall(tmp_path / "unzipped")
    (bag,) = (tmp_path / "unzipped").iterdir()
    assert bag.name.startswith("archiver-export-")
    valid_per_bagit(bag)

    # A stream cannot be taken back: a failed export leaves it without a central directory.
    key = next(item["key"] for item in deployment.manifests()[ids[0]]["artifacts"])
    (deployment.evidence / key).write_bytes(b"changed")
    failed = export_to_stdout(deployment, "--source", "perfecto", "--id", ids[0])
    assert failed.returncode == 1 and key.encode() in failed.stderr
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(failed.stdout))
