"""End to end: the installed ``archiver`` command against the Testmo simulator."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from archiver_sim.testmo import TestmoSimulator
from tests.support.cli import VENDOR_TOKENS, Deployment, run_archiver, write_config
from tests.support.simulators import TestmoFactory

TOKEN = VENDOR_TOKENS["TESTMO_TOKEN"]


def deploy(tmp_path: Path, sim: TestmoSimulator, **testmo: object) -> Deployment:
    values = {"base_url": sim.api_url, "token_env": "TESTMO_TOKEN", "project_ids": [1, 5], **testmo}
    return write_config(tmp_path, perfecto_url=None, sources={"testmo": values})


def closed(sim: TestmoSimulator) -> set[str]:
    return {str(session.id) for session in sim.sessions if not sim.is_unfinished(session.id)}


def test_closed_sessions_archived_over_several_pages(
    testmo_sim_factory: TestmoFactory, tmp_path: Path
) -> None:
    sim = testmo_sim_factory(token=TOKEN, sessions=70, unfinished=5)
    deployment = deploy(tmp_path, sim, per_page=15)

    result = run_archiver("run", "--once", config=deployment.config)

    assert result.returncode == 0, result.stderr
    manifests = deployment.manifests("testmo")
    assert set(manifests) == closed(sim)
    for session_id, manifest in manifests.items():
        deployment.verify_manifest(manifest)
        assert manifest["session"] == sim.record(int(session_id))
        full = next(a for a in manifest["artifacts"] if a["kind"] == "session_full_record")
        stored = json.loads((deployment.evidence / full["key"]).read_bytes())
        assert stored["result"] == sim.full_record(int(session_id))["result"]
        assert "users" in stored["expands"]
        assert any("no file downloads" in note for note in manifest["not_archived"])
    pages = {r.query.get("page") for r in sim.requests() if r.path.endswith("/sessions")}
    assert {"1", "2", "3"} <= pages
    assert all(r.carries(TOKEN) for r in sim.requests())


def test_open_sessions_archived_once_closed_and_second_pass_is_quiet(
    testmo_sim_factory: TestmoFactory, tmp_path: Path
) -> None:
    sim = testmo_sim_factory(token=TOKEN, sessions=20, unfinished=4)
    deployment = deploy(tmp_path, sim)
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    assert set(deployment.manifests("testmo")) == closed(sim)

    sim.finish_all()
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    assert set(deployment.manifests("testmo")) == {str(s.id) for s in sim.sessions}

    stored = {path: path.stat().st_mtime_ns for path in deployment.evidence.rglob("*")}
    sim.clear_requests()
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    assert not any("/api/v1/sessions/" in r.path for r in sim.requests())
    assert {path: path.stat().st_mtime_ns for path in deployment.evidence.rglob("*")} == stored


def test_rate_limited_and_forbidden_project(
    testmo_sim_factory: TestmoFactory, tmp_path: Path
) -> None:
    sim = testmo_sim_factory(
        token=TOKEN, sessions=16, rate_limit_every=4, retry_after=0, forbidden_project_ids=(5,)
    )
    deployment = deploy(tmp_path, sim)

    result = run_archiver("run", "--once", config=deployment.config)

    assert result.returncode == 1
    assert "Testmo answered HTTP 403" in result.stdout + result.stderr
    project_one = {str(s.id) for s in sim.project_sessions(1) if not sim.is_unfinished(s.id)}
    assert set(deployment.manifests("testmo")) >= project_one
    assert TOKEN not in result.stdout + result.stderr


def test_rearchive_testmo_session(testmo_sim_factory: TestmoFactory, tmp_path: Path) -> None:
    sim = testmo_sim_factory(token=TOKEN, sessions=6)
    deployment = deploy(tmp_path, sim)
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    target = sorted(closed(sim))[0]
    first = (deployment.evidence / "testmo" / target / "manifest.json").read_bytes()
    result = run_archiver(
        "rearchive", "--source", "testmo", "--id", target, config=deployment.config
    )
    assert result.returncode == 0, result.stderr
    manifest = deployment.manifests("testmo")[target]
    assert (deployment.evidence / manifest["previous_manifest"]).read_bytes() == first
    deployment.verify_manifest(manifest)


def test_a_session_created_before_the_watermark_and_closed_after_it_is_archived(
    testmo_sim_factory: TestmoFactory, tmp_path: Path
) -> None:
    sim = testmo_sim_factory(token=TOKEN, sessions=12, span=timedelta(days=7))
    oldest = sim.sessions[-1].id  # created about a week ago, before the one-day backfill
    sim.set_unfinished(oldest)
    deployment = deploy(tmp_path, sim, backfill_days=1)
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    assert str(oldest) not in deployment.manifests("testmo")

    sim.finish(oldest)
    result = run_archiver("run", "--once", config=deployment.config)

    assert result.returncode == 0, result.stderr
    manifest = deployment.manifests("testmo")[str(oldest)]
    assert manifest["session"] == sim.record(oldest)
    assert manifest["session"]["is_closed"] is True
