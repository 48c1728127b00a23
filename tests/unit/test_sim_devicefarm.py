"""The Device Farm simulator through a real boto3 client: AWS JSON 1.1, paging, artifacts,
pre-signed URLs that expire, throttling."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from archiver_sim.devicefarm import CATEGORIES, DeviceFarmSimulator
from tests.support.simulators import SimFactory

if TYPE_CHECKING:  # the stubs are a development dependency
    from mypy_boto3_devicefarm import DeviceFarmClient

Factory = SimFactory[DeviceFarmSimulator]


def client(
    sim: DeviceFarmSimulator, *, attempts: int = 1, key: str | None = None
) -> DeviceFarmClient:
    return boto3.session.Session().client(
        "devicefarm",
        endpoint_url=sim.api_url,
        region_name=sim.config.region,
        aws_access_key_id=key or sim.config.access_key_id,
        aws_secret_access_key=sim.config.secret_access_key,
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
    )


def every(api: DeviceFarmClient, operation: str, key: str, **params: Any) -> list[dict[str, Any]]:
    paginator = api.get_paginator(operation)  # type: ignore[call-overload]
    return [item for page in paginator.paginate(**params) for item in page[key]]


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_runs_page_behind_next_token_newest_first(devicefarm_sim_factory: Factory) -> None:
    sim = devicefarm_sim_factory(projects=1, runs=5, page_size=2)
    api = client(sim)
    project = api.list_projects()["projects"][0]

    first = api.list_runs(arn=project["arn"])
    second = api.list_runs(arn=project["arn"], nextToken=first["nextToken"])
    third = api.list_runs(arn=project["arn"], nextToken=second["nextToken"])

    assert [len(page["runs"]) for page in (first, second, third)] == [2, 2, 1]
    assert "nextToken" not in third
    runs = every(api, "list_runs", "runs", arn=project["arn"])
    assert [run["arn"] for run in runs] == [run.arn for run in sim.data.runs]
    created = [run["created"] for run in runs]
    assert created == sorted(created, reverse=True)
    with pytest.raises(ClientError) as error:
        api.list_runs(arn=project["arn"], nextToken="bm90LWEtdG9rZW4=")
    assert error.value.response["Error"]["Code"] == "ArgumentException"


def test_run_job_suite_test_records_follow_the_service_model(
    devicefarm_sim_factory: Factory,
) -> None:
    sim = devicefarm_sim_factory(runs=2, jobs_per_run=2, tests_per_job=3, page_size=2)
    api = client(sim)
    run = api.get_run(arn=sim.data.runs[0].arn)["run"]

    assert run["status"] == "COMPLETED" and run["result"] == "PASSED"
    assert run["totalJobs"] == run["completedJobs"] == 2
    assert run["stopped"] > run["started"] > run["created"]
    jobs = every(api, "list_jobs", "jobs", arn=run["arn"])
    assert {job["device"]["platform"] for job in jobs} <= {"ANDROID", "IOS"}
    assert all(isinstance(job["videoCapture"], bool) for job in jobs)
    suites = every(api, "list_suites", "suites", arn=jobs[0]["arn"])
    assert [suite["name"] for suite in suites] == ["Setup Suite", "Tests Suite", "Teardown Suite"]
    tests = every(api, "list_tests", "tests", arn=suites[1]["arn"])
    assert len(tests) == 3 and all(test["name"].startswith("Tests.") for test in tests)
    assert all(
        test["arn"].startswith(suites[1]["arn"].replace(":suite:", ":test:")) for test in tests
    )


def test_artifacts_by_category_download_with_their_bytes(devicefarm_sim_factory: Factory) -> None:
    sim = devicefarm_sim_factory(runs=1, jobs_per_run=3, video_disabled_every=3, page_size=2)
    api = client(sim)
    run = sim.data.runs[0]
    kinds: dict[str, set[str]] = {}
    for job in run.jobs:
        test = job.suites[1].tests[0]
        for category in CATEGORIES:
            listed = every(api, "list_artifacts", "artifacts", arn=test.arn, type=category)
            kinds.setdefault(category, set()).update(item["type"] for item in listed)
            for item in listed:
                simulated = sim.data.by_arn[item["arn"]]
                status, body = fetch(item["url"])
                assert status == 200
                assert hashlib.sha256(body).hexdigest() == simulated.digest()
        videos = every(api, "list_artifacts", "artifacts", arn=test.arn, type="FILE")
        assert any(item["type"] == "VIDEO" for item in videos) is job.video_capture

    assert kinds == {
        "FILE": {"DEVICE_LOG", "TESTSPEC_OUTPUT", "VIDEO"},
        "LOG": {"MESSAGE_LOG"},
        "SCREENSHOT": {"SCREENSHOT"},
    }
    assert [job.video_capture for job in run.jobs] == [True, True, False]
    # A run's ARN lists every test's artifacts of that category.
    on_run = every(api, "list_artifacts", "artifacts", arn=run.arn, type="SCREENSHOT")
    assert len(on_run) == 3 * sim.config.tests_per_job * sim.config.screenshots_per_test
    assert all(not request.header("authorization") for request in sim.requests("files"))


def test_presigned_urls_expire_and_fresh_ones_work(devicefarm_sim_factory: Factory) -> None:
    sim = devicefarm_sim_factory(runs=1, expired_issues=1)
    api = client(sim)
    test = sim.data.runs[0].jobs[0].suites[1].tests[0]

    born_expired = api.list_artifacts(arn=test.arn, type="LOG")["artifacts"][0]["url"]
    fresh = api.list_artifacts(arn=test.arn, type="LOG")["artifacts"][0]["url"]
    status, body = fetch(born_expired)
    assert status == 403 and b"AccessDenied" in body
    assert fetch(fresh)[0] == 200

    assert sim.expire_urls() == 2
    assert fetch(fresh)[0] == 403
    assert fetch(api.list_artifacts(arn=test.arn, type="LOG")["artifacts"][0]["url"])[0] == 200
    tampered = fresh[:-4] + ("0000" if not fresh.endswith("0000") else "1111")
    assert b"SignatureDoesNotMatch" in fetch(tampered)[1]
    assert "X-Amz-Credential=AKIADEVICEFARMSERVICE" in fresh
    assert sim.config.access_key_id not in fresh


def test_unfinished_runs_are_running_until_finished(devicefarm_sim_factory: Factory) -> None:
    sim = devicefarm_sim_factory(projects=1, runs=4, unfinished=2)
    api = client(sim)
    project = sim.data.projects[0].arn

    statuses = [run["status"] for run in every(api, "list_runs", "runs", arn=project)]
    assert statuses == ["RUNNING", "RUNNING", "COMPLETED", "COMPLETED"]
    running = api.get_run(arn=sim.data.runs[0].arn)["run"]
    assert running["result"] == "PENDING" and "stopped" not in running
    assert running["completedJobs"] < running["totalJobs"]

    assert sim.finish_all() == sorted(run.arn for run in sim.data.runs[:2])
    statuses = [run["status"] for run in every(api, "list_runs", "runs", arn=project)]
    assert statuses == ["COMPLETED"] * 4


def test_throttling_is_a_400_botocore_retries(devicefarm_sim_factory: Factory) -> None:
    sim = devicefarm_sim_factory(runs=1)
    sim.fail_next(2, 400)
    with pytest.raises(ClientError) as error:
        client(sim, attempts=1).list_projects()
    assert error.value.response["Error"]["Code"] == "ThrottlingException"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    sim.clear_requests()
    sim.fail_next(1, 400)
    sim.fail_next(1, 503)
    assert len(client(sim, attempts=4).list_projects()["projects"]) == 2
    targets = [request.header("x-amz-target") for request in sim.requests("api")]
    assert targets == ["DeviceFarm_20150623.ListProjects"] * 4  # 1 left over, 400, 503, ok


def test_requests_must_be_signed_with_the_simulators_key(devicefarm_sim_factory: Factory) -> None:
    sim = devicefarm_sim_factory(runs=1)
    with pytest.raises(ClientError) as error:
        client(sim, key="AKIASOMEONEELSE00000").list_projects()
    assert error.value.response["Error"]["Code"] == "UnrecognizedClientException"

    unsigned = urllib.request.Request(
        sim.api_url + "/",
        data=b"{}",
        method="POST",
        headers={
            "X-Amz-Target": "DeviceFarm_20150623.ListProjects",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(unsigned)
    assert refused.value.code == 400
    assert json.loads(refused.value.read())["__type"] == "MissingAuthenticationTokenException"
    api = client(sim)
    request = sim.requests("api")[-1]
    assert request.header("content-type") == "application/x-amz-json-1.1"
    with pytest.raises(ClientError) as missing:
        api.get_run(arn=sim.data.runs[0].arn + "0")
    assert missing.value.response["Error"]["Code"] == "NotFoundException"
