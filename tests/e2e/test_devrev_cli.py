"""End to end: the installed ``archiver`` command against the DevRev simulator."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from archiver_sim.devrev import DevRevSimulator
from tests.support.cli import DEVREV_TOKEN, TOKEN, archiver_env, run_archiver, write_config
from tests.support.simulators import DevRevFactory, PerfectoFactory

APP = "com.example.shop"


def mobile_sessions(sim: DevRevSimulator) -> set[str]:
    return {
        session.session_id
        for session in sim.sessions
        if session.version_key == APP and session.type == "mobile"
    }


def assert_matches_simulator(sim: DevRevSimulator, manifest: dict[str, Any]) -> None:
    session_id = manifest["session_id"]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for entry in manifest["artifacts"]:
        by_kind.setdefault(entry["kind"], []).append(entry)
    assert manifest["session"] == sim.record(session_id)
    recordings = by_kind["recording"]
    assert len(recordings) == len(sim.recording_ids(session_id))
    for entry, recording_id in zip(recordings, sim.recording_ids(session_id), strict=True):
        assert recording_id in entry["key"]
    for entry in by_kind.get("recording_media", []):
        assert (entry["size"], entry["sha256"]) == sim.expected_digest(entry["source_url"])
    assert len(by_kind.get("recording_media", [])) == len(sim.media_files(session_id))


def verify_recording_json(
    deployment_root: Path, sim: DevRevSimulator, manifest: dict[str, Any]
) -> None:
    for entry in manifest["artifacts"]:
        if entry["kind"] == "recording":
            stored = json.loads((deployment_root / "evidence" / entry["key"]).read_bytes())
            assert stored == sim.recording(manifest["session_id"], stored_recording_id(stored))


def stored_recording_id(document: dict[str, Any]) -> str:
    return str(document.get("recording_id") or document.get("tab_id"))


def test_sessions_over_several_pages_all_archived(
    devrev_sim_factory: DevRevFactory, tmp_path: Path
) -> None:
    sim = devrev_sim_factory(token=DEVREV_TOKEN, sessions=60)
    deployment = write_config(
        tmp_path, perfecto_url=None, devrev_url=sim.api_url, devrev={"limit": 4, "scope": "beta"}
    )

    result = run_archiver("run", "--once", config=deployment.config)

    assert result.returncode == 0, result.stderr
    assert all(r.header("X-Devrev-Scope") == "beta" for r in sim.requests("api"))
    manifests = deployment.manifests("devrev")
    assert set(manifests) == mobile_sessions(sim)
    for manifest in manifests.values():
        deployment.verify_manifest(manifest)
        assert_matches_simulator(sim, manifest)
        verify_recording_json(deployment.root, sim, manifest)
    listing = [r for r in sim.requests("api") if r.path.endswith("sessions.list")]
    assert len(listing) > 3
    assert "next_cursor" not in (listing[-1].body or {})


def test_rate_limit_storm_is_waited_out(devrev_sim_factory: DevRevFactory, tmp_path: Path) -> None:
    sim = devrev_sim_factory(
        token=DEVREV_TOKEN,
        sessions=20,
        rate_limit_every=3,
        retry_after_header=0,
        retry_after_body=1,
        fail_every=7,
    )
    deployment = write_config(
        tmp_path, perfecto_url=None, devrev_url=sim.api_url, devrev={"limit": 5}
    )

    result = run_archiver("run", "--once", config=deployment.config)

    assert result.returncode == 0, result.stderr
    assert set(deployment.manifests("devrev")) == mobile_sessions(sim)
    assert "reference_id" in result.stdout + result.stderr


def test_second_pass_downloads_nothing(devrev_sim_factory: DevRevFactory, tmp_path: Path) -> None:
    sim = devrev_sim_factory(token=DEVREV_TOKEN, sessions=12)
    deployment = write_config(tmp_path, perfecto_url=None, devrev_url=sim.api_url)
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    stored = {path: path.stat().st_mtime_ns for path in deployment.evidence.rglob("*")}
    sim.clear_requests()

    assert run_archiver("run", "--once", config=deployment.config).returncode == 0

    assert sim.requests("files") == []
    assert all(r.path.endswith("sessions.list") for r in sim.requests("api"))
    assert {path: path.stat().st_mtime_ns for path in deployment.evidence.rglob("*")} == stored


def test_sessions_still_recording_wait_until_ended(
    devrev_sim_factory: DevRevFactory, tmp_path: Path
) -> None:
    sim = devrev_sim_factory(token=DEVREV_TOKEN, sessions=16, unfinished=4)
    recording = {s.session_id for s in sim.sessions if sim.is_unfinished(s.session_id)}
    deployment = write_config(tmp_path, perfecto_url=None, devrev_url=sim.api_url)

    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    assert set(deployment.manifests("devrev")) == mobile_sessions(sim) - recording

    sim.finish_all()
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    manifests = deployment.manifests("devrev")
    assert set(manifests) == mobile_sessions(sim)
    for session_id in recording & mobile_sessions(sim):
        assert manifests[session_id]["session"]["session_duration_ms"] > 0
        assert_matches_simulator(sim, manifests[session_id])


def test_perfecto_and_devrev_in_one_pass(
    devrev_sim_factory: DevRevFactory, perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    devrev = devrev_sim_factory(token=DEVREV_TOKEN, sessions=10)
    perfecto = perfecto_sim_factory(token=TOKEN, executions=5, video_size=4096)
    deployment = write_config(tmp_path, perfecto_url=perfecto.api_url, devrev_url=devrev.api_url)

    result = run_archiver("run", "--once", config=deployment.config)

    assert result.returncode == 0, result.stderr
    assert set(deployment.manifests("devrev")) == mobile_sessions(devrev)
    assert set(deployment.manifests("perfecto")) == {e.id for e in perfecto.executions}


def test_devrev_token_never_reaches_another_origin(
    devrev_sim_factory: DevRevFactory, perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    devrev = devrev_sim_factory(token=DEVREV_TOKEN, sessions=10, media_every=1)
    perfecto = perfecto_sim_factory(token=TOKEN, executions=3, video_size=4096)
    deployment = write_config(tmp_path, perfecto_url=perfecto.api_url, devrev_url=devrev.api_url)
    result = run_archiver("run", "--once", config=deployment.config)
    assert result.returncode == 0, result.stderr

    assert devrev.requests("files"), "media downloads expected"
    assert not any(r.carries(DEVREV_TOKEN) for r in devrev.requests("files"))
    assert all(r.carries(DEVREV_TOKEN) for r in devrev.requests("api"))
    assert not any(r.carries(DEVREV_TOKEN) for r in perfecto.requests())
    assert not any(r.carries(TOKEN) for r in devrev.requests())
    assert DEVREV_TOKEN not in result.stdout + result.stderr


def test_forbidden_fails_devrev_but_not_perfecto(
    devrev_sim_factory: DevRevFactory, perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    devrev = devrev_sim_factory(token=DEVREV_TOKEN, sessions=4, forbidden=True)
    perfecto = perfecto_sim_factory(token=TOKEN, executions=3, video_size=4096)
    deployment = write_config(tmp_path, perfecto_url=perfecto.api_url, devrev_url=devrev.api_url)

    result = run_archiver("run", "--once", config=deployment.config)

    assert result.returncode == 1
    assert "DevRev answered HTTP 403" in result.stdout + result.stderr
    assert len(deployment.manifests("perfecto")) == 3
    assert deployment.manifests("devrev") == {}


def test_tight_rate_budget_is_paced(devrev_sim_factory: DevRevFactory, tmp_path: Path) -> None:
    sim = devrev_sim_factory(token=DEVREV_TOKEN, sessions=12, rate_limit=6, rate_window_seconds=1)
    deployment = write_config(
        tmp_path, perfecto_url=None, devrev_url=sim.api_url, devrev={"limit": 2}
    )
    result = run_archiver("run", "--once", config=deployment.config)
    assert result.returncode == 0, result.stderr
    assert set(deployment.manifests("devrev")) == mobile_sessions(sim)


def test_rearchive_devrev_session(devrev_sim_factory: DevRevFactory, tmp_path: Path) -> None:
    sim = devrev_sim_factory(token=DEVREV_TOKEN, sessions=8)
    deployment = write_config(tmp_path, perfecto_url=None, devrev_url=sim.api_url)
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    target = sorted(mobile_sessions(sim))[0]
    first = (deployment.evidence / "devrev" / target / "manifest.json").read_bytes()

    result = run_archiver(
        "rearchive",
        "--source",
        "devrev",
        "--id",
        target,
        config=deployment.config,
        env=archiver_env(),
    )

    assert result.returncode == 0, result.stderr
    manifest = deployment.manifests("devrev")[target]
    assert (deployment.evidence / manifest["previous_manifest"]).read_bytes() == first
    deployment.verify_manifest(manifest)
    assert (
        hashlib.sha256(first).hexdigest()
        != hashlib.sha256(
            (deployment.evidence / "devrev" / target / "manifest.json").read_bytes()
        ).hexdigest()
    )


def test_a_session_without_recordings_says_so_in_its_manifest(
    devrev_sim_factory: DevRevFactory, tmp_path: Path
) -> None:
    sim = devrev_sim_factory(token=DEVREV_TOKEN, sessions=12, without_recordings_every=3)
    deployment = write_config(tmp_path, perfecto_url=None, devrev_url=sim.api_url)

    result = run_archiver("run", "--once", config=deployment.config)

    assert result.returncode == 0, result.stderr
    manifests = deployment.manifests("devrev")
    assert set(manifests) == mobile_sessions(sim)
    bare = {sid for sid in manifests if not sim.session(sid).recording_ids}
    assert bare and bare != set(manifests)
    for session_id, manifest in manifests.items():
        deployment.verify_manifest(manifest)
        notes = [note for note in manifest["not_archived"] if note.startswith("recordings:")]
        if session_id in bare:
            assert [a["kind"] for a in manifest["artifacts"]] == ["session_record"]
            assert len(notes) == 1 and "recording_ids is empty" in notes[0]
        else:
            assert notes == []
