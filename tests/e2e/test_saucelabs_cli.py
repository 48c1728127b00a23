"""End to end: the installed ``archiver`` command against the Sauce Labs simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archiver_sim.faults import FaultPlan
from archiver_sim.saucelabs import REAL_DEVICES, SauceLabsSimulator
from tests.support.cli import VENDOR_TOKENS, Deployment, archiver_env, run_archiver, write_config
from tests.support.secrets import SecretScan
from tests.support.simulators import SimFactory

SauceLabsFactory = SimFactory[SauceLabsSimulator]
ACCESS_KEY = VENDOR_TOKENS["SAUCE_ACCESS_KEY"]
FAULTY_HTTP = {"read_timeout": 2.0, "api_timeout": 20.0, "attempts": 8}


def deploy(
    tmp_path: Path, sim: SauceLabsSimulator, http: dict[str, Any] | None = None, **saucelabs: Any
) -> Deployment:
    values = {
        "base_url": sim.api_url,
        "username": sim.config.username,
        "backfill_days": 12,
        **saucelabs,
    }
    return write_config(tmp_path, perfecto_url=None, http=http, sources={"saucelabs": values})


def assert_matches_simulator(deployment: Deployment, sim: SauceLabsSimulator) -> None:
    """One manifest per finished job, each listing exactly the job's files, byte for byte."""
    manifests = deployment.manifests("saucelabs")
    assert set(manifests) == sim.done()
    for job_id, manifest in manifests.items():
        deployment.verify_manifest(manifest)
        assert manifest["session"] == sim.record(job_id)
        downloaded = {
            (entry["size"], entry["sha256"])
            for entry in manifest["artifacts"]
            if entry["source_url"]
        }
        assert downloaded == {(file.size, file.digest()) for file in sim.files(job_id)}


def credentials_stayed_on_the_api(sim: SauceLabsSimulator) -> None:
    files = sim.requests("files")
    assert files, "no file came from the files origin"
    assert not any(r.header("Authorization") or r.carries(ACCESS_KEY) for r in files)


def test_both_clouds_archived_over_pages_with_their_files(
    saucelabs_sim_factory: SauceLabsFactory, tmp_path: Path
) -> None:
    sim = saucelabs_sim_factory(access_key=ACCESS_KEY, jobs=30, unfinished=2, unlisted_assets=2)
    deployment = deploy(tmp_path, sim, limit=4)

    result = run_archiver("run", "--once", config=deployment.config)

    assert result.returncode == 0, result.stderr
    assert_matches_simulator(deployment, sim)
    assert len(sim.done()) == 26
    rdc = [r.query.get("offset") for r in sim.requests("api") if r.path == "/v1/rdc/jobs"]
    assert rdc == [None, "5", "9", "13"]  # fifteen real-device jobs, four a page
    vdc = [r.query["skip"] for r in sim.requests("api") if r.path == sim.vdc_jobs_path]
    assert vdc == ["0", "4", "8", "12"]
    credentials_stayed_on_the_api(sim)
    manifests = deployment.manifests("saucelabs")
    real = [m for m in manifests.values() if m["session"].get("device_type") == "real_device"]
    assert any("network capture was not enabled" in n for m in real for n in m["not_archived"])
    virtual = [m for m in manifests.values() if "device_type" not in m["session"]]
    assert any("recordLogs capability false" in n for m in virtual for n in m["not_archived"])


def test_unfinished_jobs_wait_and_a_third_pass_downloads_nothing(
    saucelabs_sim_factory: SauceLabsFactory, tmp_path: Path
) -> None:
    sim = saucelabs_sim_factory(access_key=ACCESS_KEY, jobs=12, unfinished=2, unlisted_assets=3)
    deployment = deploy(tmp_path, sim, limit=5)
    waiting = {job.id for job in sim.dataset.jobs[:5]}

    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    assert set(deployment.manifests("saucelabs")) == sim.done()
    assert waiting.isdisjoint(deployment.manifests("saucelabs"))

    sim.finish_all()
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    assert_matches_simulator(deployment, sim)
    assert waiting <= set(deployment.manifests("saucelabs"))

    stored = {path: path.stat().st_mtime_ns for path in deployment.evidence.rglob("*")}
    sim.clear_requests()
    assert run_archiver("run", "--once", config=deployment.config).returncode == 0
    assert sim.requests("files") == []
    assert not any("/assets" in r.path for r in sim.requests("api"))
    assert {path: path.stat().st_mtime_ns for path in deployment.evidence.rglob("*")} == stored


def test_429_and_5xx_are_survived_and_no_secret_leaks(
    saucelabs_sim_factory: SauceLabsFactory, tmp_path: Path
) -> None:
    plan = FaultPlan(
        seed=22,
        rate=0.3,
        kinds={"500", "502", "503", "429", "reset", "short", "html", "malformed"},
        max_in_a_row=2,
        retry_after=0,
    )
    sim = saucelabs_sim_factory(
        faults=plan, access_key=ACCESS_KEY, jobs=14, rate_limit_every=7, retry_after=0
    )
    deployment = deploy(tmp_path, sim, http=FAULTY_HTTP, limit=3)

    result = run_archiver("run", "--once", config=deployment.config)

    assert result.returncode == 0, result.stderr
    assert_matches_simulator(deployment, sim)
    assert len(sim.done()) == 14
    assert "retrying" in result.stderr + result.stdout
    credentials_stayed_on_the_api(sim)
    # The Appium logs echo the access key: kept as evidence, never in output or manifests.
    scan = SecretScan()
    scan.add_result("run", result)
    for manifest in deployment.evidence.rglob("manifest.json"):
        scan.add(str(manifest), manifest.read_bytes())
    scan.assert_clean()
    appium_logs = list(deployment.evidence.rglob("appium-server.log"))
    assert appium_logs and ACCESS_KEY in appium_logs[0].read_text()


def test_user_name_from_the_environment_and_rearchive(
    saucelabs_sim_factory: SauceLabsFactory, tmp_path: Path
) -> None:
    sim = saucelabs_sim_factory(access_key=ACCESS_KEY, jobs=6)
    values = {"base_url": sim.api_url, "backfill_days": 12}
    deployment = write_config(tmp_path, perfecto_url=None, sources={"saucelabs": values})
    env = archiver_env(SAUCE_USERNAME=sim.config.username)

    assert run_archiver("run", "--once", config=deployment.config, env=env).returncode == 0
    assert_matches_simulator(deployment, sim)

    for job in (sim.dataset.of_cloud(REAL_DEVICES)[0], sim.dataset.jobs[1]):
        result = run_archiver(
            "rearchive", "--source", "saucelabs", "--id", job.id, config=deployment.config, env=env
        )
        assert result.returncode == 0, result.stderr
        manifest = deployment.manifests("saucelabs")[job.id]
        assert manifest["previous_manifest"].startswith(f"saucelabs/{job.id}/history/")
        deployment.verify_manifest(manifest)
    missing = run_archiver("run", "--once", config=deployment.config)  # no SAUCE_USERNAME
    assert missing.returncode == 78
    assert "sources.saucelabs.username" in missing.stderr
