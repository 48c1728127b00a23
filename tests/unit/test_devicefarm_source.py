"""The Device Farm source against its simulator over real HTTP (boto3 underneath): runs
paged across projects, the artifact tree, fresh pre-signed URLs, errors named."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from archiver.config import HttpSettings, Secret
from archiver.errors import VendorError, VendorUnavailable
from archiver.model import Artifact, Session
from archiver.observe import NullObserver
from archiver.sources.devicefarm import AwsKeys, DeviceFarmSettings, DeviceFarmSource
from archiver_sim.devicefarm import DeviceFarmDataset, DeviceFarmSimConfig, DeviceFarmSimulator
from archiver_sim.requestlog import SimRequest
from tests.support.simulators import AsyncSimFactory

FAST = HttpSettings(attempts=2, backoff_initial=0.01, backoff_max=0.02)
EVER = datetime(2000, 1, 1, tzinfo=UTC)

Start = Callable[..., Awaitable[tuple[DeviceFarmSimulator, DeviceFarmSource]]]


@pytest.fixture
async def start(
    devicefarm_sim_async_factory: AsyncSimFactory[DeviceFarmSimulator],
) -> AsyncIterator[Start]:
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())

        async def started(
            settings: dict[str, Any] | None = None, http_settings: HttpSettings = FAST, **sim: Any
        ) -> tuple[DeviceFarmSimulator, DeviceFarmSource]:
            simulator = await devicefarm_sim_async_factory(**sim)
            chosen = settings_for(simulator, **(settings or {}))
            source = DeviceFarmSource.create(http, chosen, http_settings)
            stack.callback(source.api.close)
            return simulator, source

        yield started


def settings_for(sim: DeviceFarmSimulator, **overrides: Any) -> DeviceFarmSettings:
    settings = DeviceFarmSettings(
        endpoint_url=sim.api_url,
        region=sim.config.region,
        keys=AwsKeys(sim.config.access_key_id, Secret(sim.config.secret_access_key)),
    )
    return replace(settings, **overrides)


def target(request: SimRequest) -> str:
    return (request.header("x-amz-target") or "").rsplit(".", 1)[-1]


async def every_session(source: DeviceFarmSource, since: datetime = EVER) -> list[Session]:
    return [s async for s in source.sessions(since, datetime.now(UTC) + timedelta(hours=1))]


async def test_runs_of_every_project_across_pages_complete_or_held_back(start: Start) -> None:
    sim, source = await start(projects=2, runs=9, unfinished=3, page_size=2)

    sessions = await every_session(source)

    assert {s.locator for s in sessions} == {run.arn for run in sim.data.runs}
    assert {s.session_id for s in sessions} == {run.arn.rsplit("/", 1)[1] for run in sim.data.runs}
    held_back = {s.locator for s in sessions if not s.complete}
    assert held_back == {run.arn for run in sim.data.runs[:3]}
    record = next(s for s in sessions if s.locator == sim.data.runs[5].arn).record
    assert record["status"] == "COMPLETED" and record["created"].endswith("Z")
    json.dumps(record)  # plain JSON: boto3's datetimes are RFC 3339 strings
    listings = [r for r in sim.requests("api") if target(r) == "ListRuns"]
    assert any("nextToken" in (r.body or {}) for r in listings)


async def test_window_and_project_filter(start: Start) -> None:
    only = DeviceFarmDataset.build(DeviceFarmSimConfig(projects=2), 0).projects[1].arn
    sim, source = await start({"project_arns": (only,)}, projects=2, runs=6, run_spacing_s=3600)
    newest = sim.data.runs[0].created
    since = datetime.fromtimestamp(newest - 3 * 3600 - 1, UTC)

    sessions = await every_session(source, since)

    expected = [run.arn for run in sim.data.runs[:4] if run.project_arn == only]
    assert [s.locator for s in sessions] == expected
    assert "ListProjects" not in {target(r) for r in sim.requests("api")}


async def test_artifacts_are_the_whole_tree_with_renewable_urls(start: Start) -> None:
    sim, source = await start(runs=1, jobs_per_run=3, tests_per_job=2, page_size=2)
    run = sim.data.runs[0]
    session = (await every_session(source))[0]

    artifacts = await source.artifacts(session)

    by_name = {artifact.name: artifact for artifact in artifacts}
    assert json.loads(by_name["run.json"].content or b"") == session.record
    assert len(json.loads(by_name["jobs.json"].content or b"")) == 3
    downloads = [a for a in artifacts if a.url is not None]
    simulated = [
        artifact
        for job in run.jobs
        for suite in job.suites
        for test in suite.tests
        for artifact in test.artifacts
    ]
    assert len(downloads) == len(simulated)
    assert {a.kind for a in downloads} == {
        "device_log",
        "testspec_output",
        "message_log",
        "video",
        "screenshot",
        "customer_artifact",
    }
    video = next(a for a in downloads if a.kind == "video")
    assert video.name == "jobs/00000/00001/00000/file/02-Video.mp4"
    screenshot = next(a for a in downloads if a.kind == "screenshot")
    assert screenshot.name == "jobs/00000/00001/00000/screenshot/00-screen-01.png"
    listing = json.loads(by_name["jobs/00000/00001/00000/artifacts.json"].content or b"")
    assert {item["category"] for item in listing} == {"FILE", "LOG", "SCREENSHOT"}
    assert all("X-Amz-Signature" not in item["url"] for item in listing)
    # The third job ran without video: no VIDEO artifact, and the manifest says why.
    assert not any(a.name.startswith("jobs/00002/") and a.kind == "video" for a in downloads)
    notes = source.not_offered(session)
    assert any("job 00002" in note and "video capture disabled" in note for note in notes)
    assert any("network" in note for note in notes)

    assert await renewed_url_works(sim, video)


async def renewed_url_works(sim: DeviceFarmSimulator, artifact: Artifact) -> bool:
    assert artifact.renew_url is not None and artifact.url is not None
    sim.expire_urls()
    async with aiohttp.ClientSession() as http:
        async with http.get(artifact.url) as expired:
            assert expired.status == 403
        fresh = await artifact.renew_url()
        assert fresh != artifact.url
        async with http.get(fresh) as response:
            return response.status == 200


async def test_get_session_by_id_arn_or_locator(start: Start) -> None:
    sim, source = await start(projects=3, runs=6, unfinished=1)
    run = sim.data.runs[4]
    run_id = run.arn.rsplit("/", 1)[1]

    by_id = await source.get_session(run_id)
    by_arn = await source.get_session(run.arn)
    by_locator = await source.get_session(run_id, locator=run.arn)

    assert by_id.session_id == by_arn.session_id == by_locator.session_id == run_id
    assert by_id.record == by_arn.record and by_id.complete
    assert not (await source.get_session(sim.data.runs[0].arn)).complete
    with pytest.raises(VendorError, match="not a run of any project"):
        await source.get_session("00000000-0000-0000-0000-000000000000")


async def test_throttling_past_the_attempts_is_transient_and_named(start: Start) -> None:
    sim, source = await start(runs=2)
    sim.fail_next(5, 400)

    with pytest.raises(VendorUnavailable) as error:
        await every_session(source)

    assert "AWS Device Farm answered HTTP 400 ThrottlingException for list_projects" in str(
        error.value
    )
    assert len(sim.requests("api")) == FAST.attempts  # botocore's attempts, no more


async def test_throttling_and_5xx_within_the_attempts_are_survived(start: Start) -> None:
    sim, source = await start(runs=4, page_size=1, http_settings=replace(FAST, attempts=3))
    sim.fail_next(1, 400)
    sim.fail_next(1, 503)

    assert len(await every_session(source)) == 4


async def test_unknown_run_is_a_vendor_error_naming_it(start: Start) -> None:
    sim, source = await start(runs=1)
    missing = sim.data.runs[0].arn[:-4] + "ffff"

    with pytest.raises(VendorError) as error:
        await source.get_session(missing)

    assert error.value.status == 400
    assert f"NotFoundException for get_run of {missing}" in str(error.value)
    assert not isinstance(error.value, VendorUnavailable)


def test_settings_never_show_the_keys() -> None:
    settings = DeviceFarmSettings(keys=AwsKeys("AKIAEXAMPLE", Secret("very-secret-key")))
    assert "very-secret-key" not in repr(settings) and "AKIAEXAMPLE" not in repr(settings)
    assert settings.base_url == "https://devicefarm.us-west-2.amazonaws.com"
    assert DeviceFarmSettings(endpoint_url="http://127.0.0.1:9/").base_url == "http://127.0.0.1:9"


class Requests(NullObserver):
    def __init__(self) -> None:
        self.seen: list[tuple[str, int | None]] = []

    def vendor_request(self, vendor: str, *, status: int | None) -> None:
        self.seen.append((vendor, status))


async def test_every_api_attempt_is_reported_under_the_source_name(start: Start) -> None:
    sim, source = await start(projects=1, runs=2, page_size=1)
    observer = Requests()
    source.client.observer = observer
    sim.fail_next(1, 400)

    await every_session(source)
    await asyncio.sleep(0)  # the last report is handed to the loop from boto3's thread

    assert observer.seen == [("devicefarm", 400), *[("devicefarm", 200)] * 3]
    assert len(sim.requests("api")) == 4  # ListProjects twice, ListRuns over two pages
