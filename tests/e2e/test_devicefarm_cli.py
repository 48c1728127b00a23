"""End to end: the installed ``archiver`` command against the Device Farm simulator, with
AWS credentials from the environment (boto3's default chain) or a profile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from archiver_sim.devicefarm import DeviceFarmSimulator
from tests.support.cli import DEVICEFARM_AWS, Deployment, archiver_env, run_archiver, write_config
from tests.support.secrets import SecretScan
from tests.support.simulators import SimFactory

Factory = SimFactory[DeviceFarmSimulator]
KEY_ID = DEVICEFARM_AWS["AWS_ACCESS_KEY_ID"]
SECRET = DEVICEFARM_AWS["AWS_SECRET_ACCESS_KEY"]


def aws_env() -> dict[str, str]:
    return archiver_env(**DEVICEFARM_AWS)


def simulator(factory: Factory, **config: Any) -> DeviceFarmSimulator:
    return factory(access_key_id=KEY_ID, secret_access_key=SECRET, **config)


def deploy(tmp_path: Path, sim: DeviceFarmSimulator, **devicefarm: object) -> Deployment:
    values = {"endpoint_url": sim.api_url, "region": sim.config.region, **devicefarm}
    return write_config(tmp_path, perfecto_url=None, sources={"devicefarm": values})


def run_id(arn: str) -> str:
    return arn.rsplit("/", 1)[1]


def complete(sim: DeviceFarmSimulator) -> set[str]:
    return {run_id(run.arn) for run in sim.complete_runs()}


def downloads(manifest: dict[str, Any]) -> set[tuple[int, str]]:
    return {(e["size"], e["sha256"]) for e in manifest["artifacts"] if e["source_url"]}


def expected_downloads(sim: DeviceFarmSimulator, session_id: str) -> set[tuple[int, str]]:
    run = next(run for run in sim.data.runs if run_id(run.arn) == session_id)
    return {
        (artifact.size, artifact.digest())
        for job in run.jobs
        for suite in job.suites
        for test in suite.tests
        for artifact in test.artifacts
    }


def test_complete_runs_archived_across_pages_with_every_artifact(
    devicefarm_sim_factory: Factory, tmp_path: Path
) -> None:
    sim = simulator(devicefarm_sim_factory, projects=2, runs=7, unfinished=2, page_size=2)
    deployment = deploy(tmp_path, sim)

    result = run_archiver("run", "--once", config=deployment.config, env=aws_env())

    assert result.returncode == 0, result.stderr
    manifests = deployment.manifests("devicefarm")
    assert set(manifests) == complete(sim)
    for session_id, manifest in manifests.items():
        deployment.verify_manifest(manifest)
        assert manifest["session"]["status"] == "COMPLETED"
        assert downloads(manifest) == expected_downloads(sim, session_id)
        kinds = {entry["kind"] for entry in manifest["artifacts"]}
        assert {"run_record", "job_record", "suites", "tests", "artifact_list"} <= kinds
        assert {"video", "device_log", "message_log", "screenshot", "customer_artifact"} <= kinds
        assert all("?" not in (e["source_url"] or "") for e in manifest["artifacts"])
        assert any("network" in note for note in manifest["not_archived"])
    video_off = [
        m for m in manifests.values() if any("videoCapture" in n for n in m["not_archived"])
    ]
    assert video_off  # every third job ran without video
    tokens = [r.body.get("nextToken") for r in sim.requests("api") if r.body]
    assert any(tokens), "no listing was read past its first page"


def test_running_runs_held_back_then_archived_and_a_third_pass_is_quiet(
    devicefarm_sim_factory: Factory, tmp_path: Path
) -> None:
    sim = simulator(devicefarm_sim_factory, runs=5, unfinished=2)
    deployment = deploy(tmp_path, sim)
    assert run_archiver("run", "--once", config=deployment.config, env=aws_env()).returncode == 0
    assert set(deployment.manifests("devicefarm")) == complete(sim)
    assert len(complete(sim)) == 3

    sim.finish_all()
    assert run_archiver("run", "--once", config=deployment.config, env=aws_env()).returncode == 0
    assert set(deployment.manifests("devicefarm")) == {run_id(r.arn) for r in sim.data.runs}

    stored = {path: path.stat().st_mtime_ns for path in deployment.evidence.rglob("*")}
    sim.clear_requests()
    assert run_archiver("run", "--once", config=deployment.config, env=aws_env()).returncode == 0
    assert not sim.requests("files")
    listed = {(r.header("x-amz-target") or "").rsplit(".", 1)[1] for r in sim.requests("api")}
    assert listed == {"ListProjects", "ListRuns"}
    assert {path: path.stat().st_mtime_ns for path in deployment.evidence.rglob("*")} == stored


def test_throttling_and_server_errors_are_survived(
    devicefarm_sim_factory: Factory, tmp_path: Path
) -> None:
    sim = simulator(devicefarm_sim_factory, runs=3, throttle_every=6)
    sim.fail_next(1, 503)
    sim.fail_next(1, 500)
    deployment = deploy(tmp_path, sim)

    result = run_archiver("run", "--once", config=deployment.config, env=aws_env())

    assert result.returncode == 0, result.stderr
    assert set(deployment.manifests("devicefarm")) == complete(sim)
    for manifest in deployment.manifests("devicefarm").values():
        deployment.verify_manifest(manifest)
    api = sim.requests("api")
    distinct = {(r.header("x-amz-target"), json.dumps(r.body, sort_keys=True)) for r in api}
    assert len(api) > len(distinct)  # botocore asked again after each refusal


def test_expired_urls_are_fetched_again_through_list_artifacts(
    devicefarm_sim_factory: Factory, tmp_path: Path
) -> None:
    sim = simulator(devicefarm_sim_factory, runs=2, jobs_per_run=1, expired_issues=1)
    deployment = deploy(tmp_path, sim)

    result = run_archiver("run", "--once", config=deployment.config, env=aws_env())

    assert result.returncode == 0, result.stderr
    manifests = deployment.manifests("devicefarm")
    assert set(manifests) == complete(sim)
    for session_id, manifest in manifests.items():
        deployment.verify_manifest(manifest)
        assert downloads(manifest) == expected_downloads(sim, session_id)
    artifacts = [
        a for run in sim.data.runs for s in run.jobs[0].suites for t in s.tests for a in t.artifacts
    ]
    # Listed with a URL already expired, then listed again (a renewal lists the test's
    # artifacts of that category, so its siblings get fresh URLs too).
    assert min(sim.urls_issued(a.arn) for a in artifacts) >= 2
    files = sim.requests("files")
    assert len(files) == 2 * len(artifacts)  # the expired URL, then the fresh one
    assert result.stderr.count("artifact_url_renewed") == len(artifacts)


def test_aws_credentials_go_to_the_api_only(
    devicefarm_sim_factory: Factory, tmp_path: Path
) -> None:
    sim = simulator(devicefarm_sim_factory, runs=2)
    deployment = deploy(tmp_path, sim)

    result = run_archiver("run", "--once", config=deployment.config, env=aws_env())

    assert result.returncode == 0, result.stderr
    api, files = sim.requests("api"), sim.requests("files")
    assert api and files
    assert all(KEY_ID in (r.header("authorization") or "") for r in api)
    for request in files:
        assert not request.header("authorization")
        assert not any(name.startswith("x-amz-") for name in request.headers)
        assert not request.carries(KEY_ID) and not request.carries(SECRET)
    assert not any(r.carries(SECRET) for r in api)  # SigV4 signs with it, never sends it
    scan = SecretScan(SECRET)
    scan.add_result("run", result)
    scan.add_tree(deployment.root)
    scan.assert_clean()


def test_a_profile_beside_other_aws_variables(
    devicefarm_sim_factory: Factory, tmp_path: Path
) -> None:
    """The store's AWS_* variables may be another account's: a profile keeps them apart."""
    sim = simulator(devicefarm_sim_factory, runs=2)
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(
        f"[devicefarm-e2e]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"
    )
    deployment = deploy(tmp_path / "run", sim, profile="devicefarm-e2e")
    env = archiver_env(
        AWS_ACCESS_KEY_ID="AKIASTORESACCOUNT001",
        AWS_SECRET_ACCESS_KEY="the-stores-secret",
        AWS_SHARED_CREDENTIALS_FILE=str(credentials),
    )

    result = run_archiver("run", "--once", config=deployment.config, env=env)

    assert result.returncode == 0, result.stderr
    assert set(deployment.manifests("devicefarm")) == complete(sim)


def test_wrong_credentials_fail_the_pass_naming_the_vendor(
    devicefarm_sim_factory: Factory, tmp_path: Path
) -> None:
    sim = simulator(devicefarm_sim_factory, runs=1)
    deployment = deploy(tmp_path, sim)
    env = archiver_env(AWS_ACCESS_KEY_ID="AKIANOTTHESIMULATORS", AWS_SECRET_ACCESS_KEY="x" * 20)

    result = run_archiver("run", "--once", config=deployment.config, env=env)

    assert result.returncode == 1
    assert "AWS Device Farm answered HTTP 400 UnrecognizedClientException" in result.stderr
    assert not deployment.manifests("devicefarm")


def test_rearchive_devicefarm_run(devicefarm_sim_factory: Factory, tmp_path: Path) -> None:
    sim = simulator(devicefarm_sim_factory, runs=3)
    deployment = deploy(tmp_path, sim)
    assert run_archiver("run", "--once", config=deployment.config, env=aws_env()).returncode == 0
    target = sorted(complete(sim))[0]
    first = (deployment.evidence / "devicefarm" / target / "manifest.json").read_bytes()

    result = run_archiver(
        "rearchive",
        "--source",
        "devicefarm",
        "--id",
        target,
        config=deployment.config,
        env=aws_env(),
    )

    assert result.returncode == 0, result.stderr
    manifest = deployment.manifests("devicefarm")[target]
    assert (deployment.evidence / manifest["previous_manifest"]).read_bytes() == first
    deployment.verify_manifest(manifest)
    assert downloads(manifest) == expected_downloads(sim, target)
