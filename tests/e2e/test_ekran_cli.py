"""End to end: the installed ``archiver`` command against the Ekran simulator."""

from __future__ import annotations

from pathlib import Path

from archiver_sim.ekran import EkranSimulator
from tests.support.cli import VENDOR_TOKENS, Deployment, run_archiver, write_config
from tests.support.simulators import EkranFactory

TOKEN = VENDOR_TOKENS["EKRAN_TOKEN"]


def deploy(tmp_path: Path, sim: EkranSimulator, **ekran: object) -> Deployment:
    values = {
        "base_url": sim.api_url,
        "token_env": "EKRAN_TOKEN",
        "settle_minutes": 0,
        "backfill_days": 10,
        **ekran,
    }
    return write_config(tmp_path, perfecto_url=None, sources={"ekran": values})


def finished(sim: EkranSimulator) -> set[str]:
    return {s.session_id for s in sim.sessions if not sim.is_unfinished(s.session_id)}


def test_finished_sessions_archived_across_pages_unclipped(
    ekran_sim_factory: EkranFactory, tmp_path: Path
) -> None:
    sim = ekran_sim_factory(token=TOKEN, sessions=40, unfinished=3)
    deployment = deploy(tmp_path, sim, session_count=7, window_hours=24)

    result = run_archiver("run", "--once", config=deployment.config)

    assert result.returncode == 0, result.stderr
    manifests = deployment.manifests("ekran")
    assert set(manifests) == finished(sim)
    for session_id, manifest in manifests.items():
        deployment.verify_manifest(manifest)
        assert manifest["session"] == sim.record(session_id), "clipped at a window edge"
        assert any("screen recordings" in note for note in manifest["not_archived"])
    bodies = [r.body for r in sim.requests() if r.path == "/ekranapi/sessions"]
    assert all(body["start"] and body["end"] for body in bodies)
    assert all(body["sessionCount"] <= 1000 for body in bodies)
    assert any(body["pageIndex"] >= 2 for body in bodies)
    assert all(r.carries(TOKEN) for r in sim.requests())


def test_live_sessions_wait_and_second_pass_is_quiet(
    ekran_sim_factory: EkranFactory, tmp_path: Path
) -> None:
    sim = ekran_sim_factory(token=TOKEN, sessions=12, unfinished=2)
    deployment = deploy(tmp_path, sim)
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    assert set(deployment.manifests("ekran")) == finished(sim)

    sim.finish_all()
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    manifests = deployment.manifests("ekran")
    assert set(manifests) == {s.session_id for s in sim.sessions}

    stored = {path: path.stat().st_mtime_ns for path in deployment.evidence.rglob("*")}
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    assert {path: path.stat().st_mtime_ns for path in deployment.evidence.rglob("*")} == stored


def test_server_errors_are_retried(ekran_sim_factory: EkranFactory, tmp_path: Path) -> None:
    sim = ekran_sim_factory(token=TOKEN, sessions=15, fail_every=3)
    deployment = deploy(tmp_path, sim, session_count=4)
    result = run_archiver("run", "--once", config=deployment.config)
    assert result.returncode == 0, result.stderr
    assert set(deployment.manifests("ekran")) == finished(sim)


def test_wrong_token_names_ekran_and_status(
    ekran_sim_factory: EkranFactory, tmp_path: Path
) -> None:
    sim = ekran_sim_factory(token="another-token-entirely", sessions=3)
    deployment = deploy(tmp_path, sim)
    result = run_archiver("run", "--once", config=deployment.config)
    assert result.returncode == 1
    assert "Ekran answered HTTP 401" in result.stdout + result.stderr
    assert TOKEN not in result.stdout + result.stderr


def test_rearchive_ekran_session(ekran_sim_factory: EkranFactory, tmp_path: Path) -> None:
    sim = ekran_sim_factory(token=TOKEN, sessions=6)
    deployment = deploy(tmp_path, sim)
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    target = sorted(finished(sim))[0]
    result = run_archiver(
        "rearchive", "--source", "ekran", "--id", target, config=deployment.config
    )
    assert result.returncode == 0, result.stderr
    manifest = deployment.manifests("ekran")[target]
    assert manifest["previous_manifest"].startswith(f"ekran/{target}/history/")
    assert manifest["session"] == sim.record(target)
