"""End to end: the installed ``archiver`` command against the TestObject simulator."""

from __future__ import annotations

import json
from pathlib import Path

from archiver_sim.testobject import TestObjectSimulator
from tests.support.cli import VENDOR_TOKENS, Deployment, run_archiver, write_config
from tests.support.simulators import TestObjectFactory

API_KEY = VENDOR_TOKENS["TESTOBJECT_API_KEY"]


def deploy(tmp_path: Path, sim: TestObjectSimulator, **testobject: object) -> Deployment:
    values = {
        "base_url": sim.api_url,
        "token_env": "TESTOBJECT_API_KEY",
        "username": sim.config.username,
        **testobject,
    }
    return write_config(tmp_path, perfecto_url=None, sources={"testobject": values})


def finished(sim: TestObjectSimulator) -> set[str]:
    return {s.id for s in sim.reports if not sim.is_unfinished(s.id)}


def test_reports_and_their_files_archived_over_pages(
    testobject_sim_factory: TestObjectFactory, tmp_path: Path
) -> None:
    sim = testobject_sim_factory(api_key=API_KEY, sessions=30, unfinished=2)
    deployment = deploy(tmp_path, sim, limit=7)

    result = run_archiver("run", "--once", config=deployment.config)

    assert result.returncode == 0, result.stderr
    manifests = deployment.manifests("testobject")
    assert set(manifests) == finished(sim)
    for session_id, manifest in manifests.items():
        deployment.verify_manifest(manifest)
        assert manifest["session"] == sim.entity(session_id)
        assert any("read them as UTC" in note for note in manifest["not_archived"])
        downloaded = {
            (entry["size"], entry["sha256"])
            for entry in manifest["artifacts"]
            if entry["source_url"]
        }
        assert downloaded == {(file.size, file.digest()) for file in sim.files(session_id)}
        reports = [e for e in manifest["artifacts"] if e["kind"] == "test_report"]
        assert len(reports) == len(sim.session(session_id).report_ids)
        if not reports:
            assert any("no test reports" in note for note in manifest["not_archived"])
    offsets = [r.query.get("offset") for r in sim.requests("api") if r.path == sim.list_path]
    assert offsets[:3] == ["1", "8", "15"]
    assert not any(r.carries(API_KEY) for r in sim.requests("files"))


def test_more_available_listing_and_running_sessions(
    testobject_sim_factory: TestObjectFactory, tmp_path: Path
) -> None:
    sim = testobject_sim_factory(
        api_key=API_KEY, sessions=12, unfinished=3, more_available_instead_of_count=True
    )
    deployment = deploy(tmp_path, sim, limit=5)
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    assert set(deployment.manifests("testobject")) == finished(sim)

    sim.finish_all()
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    assert set(deployment.manifests("testobject")) == {s.id for s in sim.reports}

    stored = {path: path.stat().st_mtime_ns for path in deployment.evidence.rglob("*")}
    sim.clear_requests()
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    assert sim.requests("files") == []
    assert {path: path.stat().st_mtime_ns for path in deployment.evidence.rglob("*")} == stored


def test_api_key_echoed_in_appium_log_is_stored_but_never_logged(
    testobject_sim_factory: TestObjectFactory, tmp_path: Path
) -> None:
    sim = testobject_sim_factory(api_key=API_KEY, sessions=6, rate_limit_every=5, retry_after=0)
    deployment = deploy(tmp_path, sim)
    result = run_archiver("run", "--once", config=deployment.config)
    assert result.returncode == 0, result.stderr
    assert API_KEY not in result.stdout + result.stderr
    manifests_text = "".join(
        path.read_text() for path in deployment.evidence.rglob("manifest.json")
    )
    assert API_KEY not in manifests_text
    assert json.dumps(API_KEY) not in manifests_text


def test_rearchive_testobject_session(
    testobject_sim_factory: TestObjectFactory, tmp_path: Path
) -> None:
    sim = testobject_sim_factory(api_key=API_KEY, sessions=5)
    deployment = deploy(tmp_path, sim)
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    target = sim.reports[0].id
    result = run_archiver(
        "rearchive", "--source", "testobject", "--id", target, config=deployment.config
    )
    assert result.returncode == 0, result.stderr
    manifest = deployment.manifests("testobject")[target]
    assert manifest["previous_manifest"].startswith(f"testobject/{target}/history/")
    deployment.verify_manifest(manifest)
