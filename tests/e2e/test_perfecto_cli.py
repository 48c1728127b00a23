"""End to end: the installed ``archiver`` command against the Perfecto simulator."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from archiver_sim.perfecto import PerfectoSimulator
from tests.support.cli import (
    ARCHIVER,
    TOKEN,
    Deployment,
    archiver_env,
    run_archiver,
    write_config,
)
from tests.support.simulators import PerfectoFactory

KIB = 1024


def small_sim(factory: PerfectoFactory, **overrides: Any) -> PerfectoSimulator:
    return factory(token=TOKEN, video_size=48 * KIB, artifact_size=8 * KIB, **overrides)


def assert_matches_simulator(sim: PerfectoSimulator, manifest: dict[str, Any]) -> None:
    """Each downloaded artifact has exactly the size and SHA-256 the simulator served."""
    session_id = manifest["session_id"]
    downloaded = {}
    for entry in manifest["artifacts"]:
        if entry["source_url"] is None:
            continue
        url = sim.pdf_url(session_id) if entry["kind"] == "pdf_report" else entry["source_url"]
        assert (entry["size"], entry["sha256"]) == sim.expected_digest(url), entry["key"]
        downloaded[entry["source_url"]] = entry
    expected = {(file.size, file.digest()) for file in sim.files(session_id)}
    assert expected <= {(entry["size"], entry["sha256"]) for entry in downloaded.values()}


def test_run_once_archives_every_artifact(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    sim = small_sim(perfecto_sim_factory, executions=10)
    deployment = write_config(tmp_path, perfecto_url=sim.api_url)

    result = run_archiver("run", "--once", config=deployment.config)

    assert result.returncode == 0, result.stderr
    manifests = deployment.manifests()
    assert sorted(manifests) == sorted(execution.id for execution in sim.executions)
    for session_id, manifest in manifests.items():
        assert manifest["source"] == "perfecto"
        assert manifest["session"] == sim.resource(session_id)
        kinds = {entry["kind"] for entry in manifest["artifacts"]}
        assert {"execution_record", "commands_report", "video", "pdf_report"} <= kinds
        deployment.verify_manifest(manifest)
        assert_matches_simulator(sim, manifest)
    events = [
        line
        for line in result.stdout.splitlines() + result.stderr.splitlines()
        if '"session_archived"' in line
    ]
    assert len(events) == 10
    assert TOKEN not in result.stdout + result.stderr


def test_second_pass_downloads_nothing(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    sim = small_sim(perfecto_sim_factory, executions=6)
    deployment = write_config(tmp_path, perfecto_url=sim.api_url)
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    stored = {path: path.stat().st_mtime_ns for path in deployment.evidence.rglob("*")}
    sim.clear_requests()

    result = run_archiver("run", "--once", config=deployment.config)

    assert result.returncode == 0, result.stderr
    assert sim.requests("files") == []
    assert all(
        "/commands" not in request.path and "/pdf" not in request.path
        for request in sim.requests("api")
    )
    assert {path: path.stat().st_mtime_ns for path in deployment.evidence.rglob("*")} == stored


def test_processing_executions_wait_until_complete(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    sim = small_sim(perfecto_sim_factory, executions=8, unfinished=3)
    processing = [execution.id for execution in sim.executions[:3]]
    deployment = write_config(tmp_path, perfecto_url=sim.api_url)

    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    assert set(deployment.manifests()) == {e.id for e in sim.executions} - set(processing)

    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    assert not set(processing) & set(deployment.manifests())

    for execution_id in processing:
        sim.finish(execution_id)
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    manifests = deployment.manifests()
    assert set(manifests) == {execution.id for execution in sim.executions}
    for execution_id in processing:
        assert manifests[execution_id]["session"] == sim.resource(execution_id)
        assert_matches_simulator(sim, manifests[execution_id])


@pytest.mark.slow
def test_more_than_a_thousand_executions_across_pages(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    sim = perfecto_sim_factory(
        token=TOKEN,
        executions=1203,
        span=timedelta(hours=6),
        video_size=512,
        artifact_size=256,
        screenshot_size=128,
    )
    deployment = write_config(
        tmp_path,
        perfecto_url=sim.api_url,
        engine={"download_concurrency": 16},
        # One listing window holds them all, so the run has to page through 500 + 500 + 203.
        perfecto={"pdf_report": False, "session_concurrency": 16, "backfill_days": 0.5},
    )

    result = run_archiver("run", "--once", config=deployment.config, timeout=600)

    assert result.returncode == 0, result.stderr[-2000:]
    manifests = deployment.manifests()
    assert len(manifests) == 1203
    assert set(manifests) == {execution.id for execution in sim.executions}
    pages = {
        request.query.get("_page")
        for request in sim.requests("api")
        if request.path.endswith("/test-executions") and "_page" in request.query
    }
    assert {"1", "2", "3"} <= pages
    for manifest in list(manifests.values())[::100]:
        deployment.verify_manifest(manifest)


def test_rearchive_keeps_earlier_manifest(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    sim = small_sim(perfecto_sim_factory, executions=3)
    deployment = write_config(tmp_path, perfecto_url=sim.api_url)
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    target = sim.executions[0].id
    manifest_path = deployment.evidence / "perfecto" / target / "manifest.json"
    first = manifest_path.read_bytes()

    result = run_archiver(
        "rearchive", "--source", "perfecto", "--id", target, config=deployment.config
    )

    assert result.returncode == 0, result.stderr
    new = deployment.manifests()[target]
    assert new["previous_manifest"].startswith(f"perfecto/{target}/history/")
    assert (deployment.evidence / new["previous_manifest"]).read_bytes() == first
    deployment.verify_manifest(new)
    import json

    deployment.verify_manifest(json.loads(first))  # the earlier evidence is untouched
    assert all("/rearchived/" in entry["key"] for entry in new["artifacts"])


def test_rearchive_unknown_id_exits_1(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    sim = small_sim(perfecto_sim_factory, executions=2)
    deployment = write_config(tmp_path, perfecto_url=sim.api_url)
    result = run_archiver(
        "rearchive", "--source", "perfecto", "--id", "no-such-id", config=deployment.config
    )
    assert result.returncode == 1
    assert "no-such-id" in result.stdout + result.stderr


def test_sigterm_mid_pass_leaves_no_partial_manifest(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    sim = perfecto_sim_factory(token=TOKEN, executions=12, video_size=24 * 1024 * KIB)
    deployment = write_config(
        tmp_path,
        perfecto_url=sim.api_url,
        engine={"shutdown_grace_seconds": 0.2, "download_concurrency": 2},
    )
    process = subprocess.Popen(
        [str(ARCHIVER), "--config", str(deployment.config), "run", "--once"],
        env=archiver_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not sim.requests("files") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode in (0, 1), stderr

    interrupted = deployment.manifests()
    assert len(interrupted) < 12
    for manifest in interrupted.values():
        deployment.verify_manifest(manifest)
    assert not list((deployment.evidence / ".incoming").glob("*"))

    result = run_archiver("run", "--once", config=deployment.config, timeout=300)
    assert result.returncode == 0, result.stderr
    manifests = deployment.manifests()
    assert len(manifests) == 12
    for manifest in manifests.values():
        deployment.verify_manifest(manifest)


def test_token_never_reaches_the_artifact_origin(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    sim = small_sim(perfecto_sim_factory, executions=4)
    deployment = write_config(tmp_path, perfecto_url=sim.api_url)
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    file_requests = sim.requests("files")
    api_requests = sim.requests("api")
    assert file_requests and api_requests
    assert not any(request.carries(TOKEN) for request in file_requests)
    assert all(request.carries(TOKEN) for request in api_requests)
    manifests_text = "".join(p.read_text() for p in deployment.evidence.rglob("manifest.json"))
    assert TOKEN not in manifests_text
    assert "X-Amz-Signature" not in manifests_text.split('"artifacts"')[-1]


def test_visual_check_images_are_archived_and_the_token_stays_home(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    """Each IMAGE_KEY of expectedData/resultData is kept once, named by command and role."""
    sim = small_sim(perfecto_sim_factory, executions=4)
    deployment = write_config(tmp_path, perfecto_url=sim.api_url)

    result = run_archiver("run", "--once", config=deployment.config)

    assert result.returncode == 0, result.stderr
    manifests = deployment.manifests()
    linked_twice = 0
    for execution in sim.executions:
        manifest = manifests[execution.id]
        deployment.verify_manifest(manifest)
        images: dict[str, tuple[str, str]] = {}  # url -> (key, kind), first link wins
        commands = sim.commands(execution.id)["resources"][0]["commands"]
        for number, command in enumerate(commands):
            for field, role in (("expectedData", "expected"), ("resultData", "result")):
                for index, entry in enumerate(command.get(field, [])):
                    if entry["type"] != "IMAGE_KEY":
                        continue
                    name = entry["value"].split("?")[0].rsplit("/", 1)[-1]
                    key = f"perfecto/{execution.id}/visual/{number:04d}-{role}-{index:02d}-{name}"
                    linked_twice += entry["value"] in images
                    images.setdefault(entry["value"], (key, f"{role}_image"))
        assert images
        listed = {
            entry["key"]: entry
            for entry in manifest["artifacts"]
            if entry["kind"] in ("expected_image", "result_image")
        }
        assert sorted(listed) == sorted(key for key, _ in images.values())
        for url, (key, kind) in images.items():
            entry = listed[key]
            assert entry["kind"] == kind
            assert entry["source_url"] == url.split("?")[0]
            assert (entry["size"], entry["sha256"]) == sim.expected_digest(url)
    assert linked_twice  # the dataset links one baseline twice: stored once all the same

    visual_files = [r for r in sim.requests("files") if "/visual/" in r.path]
    visual_api = [r for r in sim.requests("api") if "/visual/" in r.path]
    assert visual_files and visual_api  # result images off the API origin, baselines on it
    assert not any(request.carries(TOKEN) for request in visual_files)
    assert all(request.carries(TOKEN) for request in visual_api)
    # TEXT entries holding a link are values, never fetched.
    assert not [r for r in sim.requests() if r.path.startswith("/links/")]


def test_underscore_auth_header_is_configurable(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    sim = small_sim(perfecto_sim_factory, executions=2)
    deployment = write_config(
        tmp_path, perfecto_url=sim.api_url, perfecto={"auth_header": "PERFECTO_AUTHORIZATION"}
    )
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    assert len(deployment.manifests()) == 2


def test_wrong_token_fails_the_pass_with_a_clear_error(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    sim = small_sim(perfecto_sim_factory, executions=2)
    deployment = write_config(tmp_path, perfecto_url=sim.api_url)
    result = run_archiver(
        "run",
        "--once",
        config=deployment.config,
        env=archiver_env(PERFECTO_TOKEN="wrong-token-value"),
    )
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Perfecto answered HTTP 401" in output
    assert "wrong-token-value" not in output
    assert deployment.manifests() == {}


def test_s3_store_end_to_end(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    sim = small_sim(perfecto_sim_factory, executions=3)
    deployment = write_config(
        tmp_path,
        perfecto_url=sim.api_url,
        store={
            "url": f"s3://{s3_bucket}/evidence",
            "endpoint_url": s3_endpoint,
            "region": "us-east-1",
        },
    )
    result = run_archiver("run", "--once", config=deployment.config)
    assert result.returncode == 0, result.stderr
    import hashlib
    import json

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for execution in sim.executions:
        key = f"evidence/perfecto/{execution.id}/manifest.json"
        manifest = json.loads(s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read())
        for entry in manifest["artifacts"]:
            body = s3.get_object(Bucket=s3_bucket, Key=f"evidence/{entry['key']}")["Body"].read()
            assert hashlib.sha256(body).hexdigest() == entry["sha256"]
        assert_matches_simulator(sim, manifest)
    s3.close()


def test_daemon_runs_passes_and_stops_on_sigterm(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    sim = small_sim(perfecto_sim_factory, executions=4, unfinished=1)
    deployment = write_config(tmp_path, perfecto_url=sim.api_url, engine={"interval_seconds": 1})
    daemon = subprocess.Popen(
        [str(ARCHIVER), "--config", str(deployment.config), "run"],
        env=archiver_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: len(deployment.manifests()) == 3)
        second = run_archiver("run", "--once", config=deployment.config)
        assert second.returncode == 75  # EX_TEMPFAIL: a supervisor may try again later
        assert "in use by another archiver process" in second.stderr
        sim.finish_all()
        wait_for(lambda: len(deployment.manifests()) == 4)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, stderr
    assert "daemon_stopped" in stderr


def wait_for(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("config_text", "expected"),
    [
        ('[store]\nurl = "ftp://x"\n[state]\nurl = "sqlite:///s.db"\n', "'store.url'"),
        ("[store\n", "not valid TOML"),
        (
            '[store]\nurl = "file:///tmp/x"\n[state]\nurl = "sqlite:///s.db"\n'
            '[sources.perfecto]\nbase_url = "https://x.app.perfectomobile.com"\n'
            'token_env = "UNSET_TOKEN_VARIABLE"\n',
            "'sources.perfecto.token_env'",
        ),
        (
            '[store]\nurl = "file:///tmp/x"\n[state]\nurl = "sqlite:///s.db"\n'
            '[engine]\ndownload_concurrency = "8"\n',
            "'engine.download_concurrency'",
        ),
    ],
)
def test_config_errors_exit_78_with_one_clear_line(
    tmp_path: Path, config_text: str, expected: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(config_text)
    result = run_archiver("run", "--once", config=path)
    assert result.returncode == 78  # EX_CONFIG
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0] and str(path) in lines[0]
    assert "Traceback" not in result.stderr


def test_installed_command_has_help() -> None:
    result = run_archiver("--help")
    assert result.returncode == 0
    assert all(word in result.stdout for word in ("run", "rearchive", "demo"))


def test_demo_command(tmp_path: Path) -> None:
    result = run_archiver("demo", "--dir", str(tmp_path / "demo"), "--executions", "6")
    assert result.returncode == 0, result.stderr
    assert "perfecto 6" in result.stdout
    assert "nothing new" in result.stdout
    total = next(line for line in result.stdout.splitlines() if "total:" in line)
    assert "ledger" not in total  # the ledger folder is not a source
    sessions = int(total.split("total:")[1].split()[0])
    assert f"ledger:   {sessions} manifests recorded in " in result.stdout
    deployment = Deployment(root=tmp_path / "demo", config=tmp_path / "unused")
    manifests = deployment.manifests()
    assert len(manifests) == 6
    devrev_manifests = deployment.manifests("devrev")
    assert devrev_manifests
    for manifest in [*manifests.values(), *devrev_manifests.values()]:
        deployment.verify_manifest(manifest)
