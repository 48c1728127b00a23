"""End to end: the installed ``archiver`` command against the BrowserStack simulator."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from archiver_sim.browserstack import BrowserStackSimulator
from archiver_sim.faults import FaultPlan
from tests.support.cli import VENDOR_TOKENS, Deployment, run_archiver, write_config
from tests.support.secrets import SecretScan
from tests.support.simulators import SimFactory

KEY = VENDOR_TOKENS["BROWSERSTACK_ACCESS_KEY"]
Factory = SimFactory[BrowserStackSimulator]


def deploy(tmp_path: Path, sim: BrowserStackSimulator, **browserstack: object) -> Deployment:
    values = {
        "base_url": sim.api_url,
        "token_env": "BROWSERSTACK_ACCESS_KEY",
        "username": sim.config.username,
        **browserstack,
    }
    return write_config(tmp_path, perfecto_url=None, sources={"browserstack": values})


def assert_matches_simulator(
    deployment: Deployment, sim: BrowserStackSimulator, manifests: dict[str, dict[str, Any]]
) -> None:
    """Every manifest lists the record as served, every captured file byte for byte, and
    names every file the session did not capture."""
    for session_id, manifest in manifests.items():
        deployment.verify_manifest(manifest)
        assert manifest["session"] == sim.record(session_id)
        files = sim.files(session_id)
        downloaded = {
            (entry["size"], entry["sha256"])
            for entry in manifest["artifacts"]
            if entry["source_url"]
        }
        assert downloaded == {(body.size, body.sha256()) for body in files.values()}
        missing = {note.split("(")[1].split(")")[0] for note in manifest["not_archived"]}
        linked = {
            name
            for name in sim.record(session_id)
            if name.endswith("_url") and name not in ("browser_url", "public_url")
        } | {"logs"}
        assert missing == linked - set(files), session_id


def credentials_stayed_home(sim: BrowserStackSimulator) -> None:
    videos = sim.requests("files")
    assert videos, "no video was fetched"
    assert not any(r.header("Authorization") or r.carries(KEY) for r in videos)
    assert all(r.header("Authorization") for r in sim.requests("api"))


def test_sessions_and_their_files_archived_over_pages(
    browserstack_sim_factory: Factory, tmp_path: Path
) -> None:
    sim = browserstack_sim_factory(
        access_key=KEY, sessions_per_product=14, sessions_per_build=3, unfinished=2
    )
    deployment = deploy(tmp_path, sim, limit=2)

    result = run_archiver("run", "--once", config=deployment.config)

    assert result.returncode == 0, result.stderr
    manifests = deployment.manifests("browserstack")
    assert set(manifests) == sim.session_ids(finished_only=True)
    assert_matches_simulator(deployment, sim, manifests)
    notes = [note for m in manifests.values() for note in m["not_archived"]]
    assert any("browserstack.networkLogs" in note for note in notes)
    for product in ("app-automate", "automate"):
        offsets = [
            r.query["offset"] for r in sim.requests("api") if r.path == f"/{product}/builds.json"
        ]
        assert offsets == ["0", "2", "4"]  # 5 builds, 2 a page
    session_pages = [r.query["offset"] for r in sim.requests("api") if "/sessions.json" in r.path]
    assert "2" in session_pages  # builds of 3 sessions take two pages
    credentials_stayed_home(sim)
    assert KEY not in result.stdout + result.stderr


def test_unfinished_and_late_sessions_then_a_quiet_pass(
    browserstack_sim_factory: Factory, tmp_path: Path
) -> None:
    sim = browserstack_sim_factory(access_key=KEY, sessions_per_product=10, unfinished=2)
    deployment = deploy(tmp_path, sim, limit=2)
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    assert set(deployment.manifests("browserstack")) == sim.session_ids(finished_only=True)

    # Runs that reuse the name of the oldest build (last page of the listing) add sessions.
    oldest = sim.dataset.builds["app-automate"][-1].hashed_id
    late = sim.add_session(oldest)
    late_running = sim.add_session(oldest, unfinished=True)
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    archived = set(deployment.manifests("browserstack"))
    assert late.hashed_id in archived and late_running.hashed_id not in archived

    sim.finish_all()
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    manifests = deployment.manifests("browserstack")
    assert set(manifests) == sim.session_ids()
    assert_matches_simulator(deployment, sim, manifests)

    stored = {path: path.stat().st_mtime_ns for path in deployment.evidence.rglob("*")}
    sim.clear_requests()
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    assert sim.requests("files") == []
    assert not [r for r in sim.requests("api") if "/sessions/" in r.path and "/builds/" in r.path]
    assert {path: path.stat().st_mtime_ns for path in deployment.evidence.rglob("*")} == stored


def test_rate_limits_and_server_errors_are_survived(
    browserstack_sim_factory: Factory, tmp_path: Path
) -> None:
    plan = FaultPlan(
        seed=22,
        rate=0.3,
        kinds={"429", "500", "502", "503", "reset"},
        max_in_a_row=2,
        retry_after=0,
    )
    sim = browserstack_sim_factory(
        faults=plan, access_key=KEY, sessions_per_product=8, rate_limit_every=7
    )
    deployment = deploy(tmp_path, sim, limit=3)

    basic = base64.b64encode(f"{sim.config.username}:{KEY}".encode()).decode()
    scan = SecretScan(basic)
    for number in range(3):
        result = run_archiver("run", "--once", config=deployment.config)
        scan.add_result(f"pass {number}", result)
        if result.returncode == 0:
            break
    assert result.returncode == 0, result.stderr[-3000:]
    manifests = deployment.manifests("browserstack")
    assert set(manifests) == sim.session_ids()
    assert_matches_simulator(deployment, sim, manifests)
    assert {"429", "500", "502", "503"} <= set(plan.counts())
    scan.add_tree(deployment.root)
    scan.assert_clean()  # output, evidence, manifests and state: no key, no basic header
    credentials_stayed_home(sim)


def test_rearchive_browserstack_session(browserstack_sim_factory: Factory, tmp_path: Path) -> None:
    sim = browserstack_sim_factory(access_key=KEY, sessions_per_product=4)
    deployment = deploy(tmp_path, sim)
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    target = sim.dataset.builds["automate"][0].sessions[0].hashed_id
    first = (deployment.evidence / "browserstack" / target / "manifest.json").read_bytes()
    sim.clear_requests()

    result = run_archiver(
        "rearchive", "--source", "browserstack", "--id", target, config=deployment.config
    )

    assert result.returncode == 0, result.stderr
    manifest = deployment.manifests("browserstack")[target]
    assert (deployment.evidence / manifest["previous_manifest"]).read_bytes() == first
    deployment.verify_manifest(manifest)
    # The state's locator names the product: no detour through App Automate.
    assert not [r for r in sim.requests("api") if r.path.startswith("/app-automate/")]
