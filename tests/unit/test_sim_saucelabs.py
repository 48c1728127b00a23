"""The Sauce Labs simulator over real HTTP: both job listings, details, asset lists and files."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from archiver_sim.saucelabs import (
    REAL_DEVICES,
    VIRTUAL,
    SauceLabsDataset,
    SauceLabsSimConfig,
    SauceLabsSimulator,
)
from tests.support.simulators import AsyncSimFactory

AsyncSauceLabsFactory = AsyncSimFactory[SauceLabsSimulator]
NEWEST = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
# The fields of the documented samples ("Real Device API Methods", "Jobs API Methods").
RDC_LISTING_KEYS = {
    "assigned_tunnel_id", "device_type", "owner_sauce", "consolidated_status", "end_time", "id",
    "name", "os", "os_version", "device_name", "start_time", "status", "creation_time",
    "automation_backend", "automated",
}  # fmt: skip
RDC_DETAIL_KEYS = RDC_LISTING_KEYS | {
    "application_summary", "base_config", "build", "collects_automator_log", "device_descriptor",
    "error", "framework_log_url", "device_log_url", "requests_url", "test_cases_url", "manual",
    "modification_time", "passed", "proxied", "record_screenshots", "screenshots",
    "record_video", "tags", "video_url", "remote_app_file_url", "appium_session_id",
    "device_session_id", "network_log_url", "crash_log_url", "testfairy_log_url",
    "junit_log_url",
}  # fmt: skip
VDC_JOB_KEYS = {
    "browser_short_version", "video_url", "creation_time", "custom-data", "browser_version",
    "owner", "automation_backend", "id", "record_screenshots", "record_video", "build", "passed",
    "public", "assigned_tunnel_id", "status", "log_url", "start_time", "proxied",
    "modification_time", "tags", "name", "commands_not_successful", "consolidated_status",
    "manual", "end_time", "error", "os", "breakpointed", "browser", "base_config",
    "deletion_time",
}  # fmt: skip


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def auth(sim: SauceLabsSimulator) -> dict[str, str]:
    pair = f"{sim.config.username}:{sim.config.access_key}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


async def get_json(
    http: aiohttp.ClientSession, sim: SauceLabsSimulator, path: str, **query: Any
) -> Any:
    async with http.get(sim.api_url + path, params=query, headers=auth(sim)) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def status_of(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> int:
    async with http.get(url, headers=headers or {}, allow_redirects=False) as response:
        return response.status


async def download(
    http: aiohttp.ClientSession, sim: SauceLabsSimulator, path: str
) -> tuple[bytes, str | None]:
    """What the API serves at ``path``, following a redirect without the credentials;
    also says on which origin the bytes came from."""
    async with http.get(sim.api_url + path, headers=auth(sim), allow_redirects=False) as answer:
        if answer.status != 302:
            assert answer.status == 200, await answer.text()
            return await answer.read(), "api"
        location = answer.headers["Location"]
    assert location.startswith(sim.files_url)
    async with http.get(location) as redirected:
        assert redirected.status == 200
        return await redirected.read(), "files"


def rdc_jobs(sim: SauceLabsSimulator) -> list[str]:
    return [job.id for job in sim.dataset.of_cloud(REAL_DEVICES)]


def vdc_jobs(sim: SauceLabsSimulator) -> list[str]:
    return [job.id for job in sim.dataset.of_cloud(VIRTUAL)]


async def test_credentials_are_checked_and_other_users_are_not_found(
    saucelabs_sim_async: SauceLabsSimulator, http: aiohttp.ClientSession
) -> None:
    sim = saucelabs_sim_async
    assert await status_of(http, sim.api_url + "/v1/rdc/jobs") == 401
    wrong = {"Authorization": "Basic " + base64.b64encode(b"sim.user:nope").decode()}
    assert await status_of(http, sim.api_url + "/v1/rdc/jobs", wrong) == 401
    assert await status_of(http, sim.api_url + "/rest/v1/someone/jobs", auth(sim)) == 404
    assert await status_of(http, sim.api_url + "/v1/rdc/jobs?limit=x", auth(sim)) == 400


async def test_real_device_listing_is_one_based_and_misses_nothing(
    saucelabs_sim_async_factory: AsyncSauceLabsFactory, http: aiohttp.ClientSession
) -> None:
    sim = await saucelabs_sim_async_factory(jobs=23, newest_start=NEWEST)
    seen: list[str] = []
    offset, more = 1, True
    while more:
        page = await get_json(http, sim, "/v1/rdc/jobs", limit=5, offset=offset)
        assert page["metaData"]["offset"] == offset
        assert page["metaData"]["sortDirection"] == "DESCENDING"
        assert all(set(entity) == RDC_LISTING_KEYS for entity in page["entities"])
        seen += [entity["id"] for entity in page["entities"]]
        offset += len(page["entities"])
        more = page["metaData"]["moreAvailable"]
    assert seen == rdc_jobs(sim)
    first = await get_json(http, sim, "/v1/rdc/jobs", limit=5)  # offset 1 by default
    assert [e["id"] for e in first["entities"]] == seen[:5]
    starts = [entity["start_time"] for entity in first["entities"]]
    assert starts == sorted(starts, reverse=True)


async def test_jobs_wait_while_running_then_while_their_assets_upload(
    saucelabs_sim_async_factory: AsyncSauceLabsFactory, http: aiohttp.ClientSession
) -> None:
    sim = await saucelabs_sim_async_factory(
        jobs=8, unfinished=2, unlisted_assets=2, clouds=(REAL_DEVICES,)
    )
    running, _, uploading, _, done = rdc_jobs(sim)[:5]
    details = {job: await get_json(http, sim, f"/v1/rdc/jobs/{job}") for job in rdc_jobs(sim)}
    assert all(set(d) == RDC_DETAIL_KEYS for d in details.values())

    assert (details[running]["end_time"], details[running]["status"]) == (None, "in progress")
    assert details[uploading]["end_time"] is not None
    assert details[uploading]["record_video"] is True
    assert details[uploading]["video_url"] is None
    assert details[done]["video_url"] == f"{sim.api_url}/v1/rdc/jobs/{done}/video.mp4"
    assert (
        await status_of(http, f"{sim.api_url}/v1/rdc/jobs/{uploading}/deviceLogs", auth(sim)) == 404
    )

    sim.finish(uploading)
    assert (await get_json(http, sim, f"/v1/rdc/jobs/{uploading}"))["video_url"]
    assert sim.state(running) == "running"
    sim.finish_all()
    assert sim.done() == set(rdc_jobs(sim))


async def test_real_device_files_match_their_digests_and_big_ones_redirect(
    saucelabs_sim_async_factory: AsyncSauceLabsFactory, http: aiohttp.ClientSession
) -> None:
    sim = await saucelabs_sim_async_factory(jobs=12, clouds=(REAL_DEVICES,))
    for job_id in rdc_jobs(sim):
        details = await get_json(http, sim, f"/v1/rdc/jobs/{job_id}")
        urls = [
            details[field]
            for field in ("video_url", "device_log_url", "framework_log_url", "network_log_url")
            if details[field]
        ]
        if details["screenshots"]:
            urls.append(f"{sim.api_url}/v1/rdc/jobs/{job_id}/screenshots.zip")
        served = {}
        for url in urls:
            body, origin = await download(http, sim, url.removeprefix(sim.api_url))
            served[hashlib.sha256(body).hexdigest()] = origin
        expected = {file.digest(): file for file in sim.files(job_id)}
        assert set(served) == set(expected)
        for digest, origin in served.items():
            assert origin == ("files" if expected[digest].delivery == "redirect" else "api")
    kinds = {(j.automation_backend, j.network_capture) for j in sim.dataset.of_cloud(REAL_DEVICES)}
    assert {backend for backend, _ in kinds} >= {"APPIUM", "ESPRESSO"}
    assert {network for _, network in kinds} == {True, False}


async def test_the_files_origin_refuses_credentials_and_unsigned_urls(
    saucelabs_sim_async: SauceLabsSimulator, http: aiohttp.ClientSession
) -> None:
    sim = saucelabs_sim_async
    job = next(j for j in sim.dataset.jobs if j.record_video)
    signed = sim.signed_url(job.id, "video.mp4")
    assert await status_of(http, signed) == 200
    assert await status_of(http, signed, auth(sim)) == 400
    assert await status_of(http, signed.split("?")[0]) == 403
    assert await status_of(http, signed.replace("video.mp4", "nothing.mp4")) == 404


async def test_virtual_listing_by_window_skip_and_full(
    saucelabs_sim_async_factory: AsyncSauceLabsFactory, http: aiohttp.ClientSession
) -> None:
    sim = await saucelabs_sim_async_factory(jobs=20, newest_start=NEWEST)
    path = sim.vdc_jobs_path
    everything = await get_json(http, sim, path, full="true")
    assert [job["id"] for job in everything] == vdc_jobs(sim)
    assert all(set(job) == VDC_JOB_KEYS for job in everything)
    assert await get_json(http, sim, path, limit=2) == [{"id": i} for i in vdc_jobs(sim)[:2]]

    pages = [await get_json(http, sim, path, limit=3, skip=skip) for skip in (0, 3, 6, 9)]
    assert [job["id"] for page in pages for job in page] == vdc_jobs(sim)
    assert len(pages[-1]) == 1

    middle = everything[4]["start_time"]
    window = await get_json(http, sim, path, full="true", to=middle, **{"from": middle - 86400})
    assert window and all(middle - 86400 <= job["start_time"] <= middle for job in window)
    assert everything[4] in window


async def test_virtual_assets_follow_the_capabilities(
    saucelabs_sim_async_factory: AsyncSauceLabsFactory, http: aiohttp.ClientSession
) -> None:
    sim = await saucelabs_sim_async_factory(jobs=24, clouds=(VIRTUAL,))
    lists = {}
    for job in sim.dataset.jobs:
        listed = await get_json(http, sim, f"{sim.vdc_jobs_path}/{job.id}/assets")
        record = await get_json(http, sim, f"{sim.vdc_jobs_path}/{job.id}")
        capabilities = record["base_config"]
        lists[job.id] = listed
        assert ("video" in listed) == (capabilities.get("recordVideo") is not False)
        assert ("sauce-log" in listed) == (capabilities.get("recordLogs") is not False)
        assert ("network.har" in listed) == (capabilities.get("extendedDebugging") is True)
        assert bool(listed["screenshots"]) == (capabilities.get("recordScreenshots") is not False)
        assert listed["selenium-log"] == "selenium-server.log"
    assert any("sauce-log" not in listed for listed in lists.values())
    assert any(not listed["screenshots"] for listed in lists.values())

    job = next(j for j in sim.dataset.jobs if j.record_video and j.screenshots)
    served = {}
    for name in ("video.mp4", "selenium-server.log", *job.screenshots):
        body, origin = await download(http, sim, f"{sim.vdc_jobs_path}/{job.id}/assets/{name}")
        served[name] = (hashlib.sha256(body).hexdigest(), origin)
    files = {file.filename: file.digest() for file in sim.files(job.id)}
    assert {name: digest for name, (digest, _) in served.items()} == {
        name: files[name] for name in served
    }
    assert served["video.mp4"][1] == "files" and served["selenium-server.log"][1] == "api"


async def test_a_virtual_job_lists_no_assets_until_done(
    saucelabs_sim_async_factory: AsyncSauceLabsFactory, http: aiohttp.ClientSession
) -> None:
    sim = await saucelabs_sim_async_factory(
        jobs=6, unfinished=1, unlisted_assets=1, clouds=(VIRTUAL,)
    )
    running, uploading = vdc_jobs(sim)[:2]
    listing = await get_json(http, sim, sim.vdc_jobs_path, full="true")
    assert (listing[0]["status"], listing[0]["end_time"]) == ("in progress", None)
    assert (listing[1]["status"], listing[1]["end_time"] is not None) == ("complete", True)
    for job in (running, uploading):
        url = f"{sim.api_url}{sim.vdc_jobs_path}/{job}/assets"
        assert await status_of(http, url, auth(sim)) == 404
    sim.finish_all()
    assert await get_json(http, sim, f"{sim.vdc_jobs_path}/{uploading}/assets")


async def test_appium_logs_echo_the_access_key(
    saucelabs_sim_async: SauceLabsSimulator, http: aiohttp.ClientSession
) -> None:
    sim = saucelabs_sim_async
    job = next(j for j in sim.dataset.jobs if j.automation_backend == "APPIUM")
    body, origin = await download(http, sim, f"/v1/rdc/jobs/{job.id}/appiumLogs")
    assert origin == "api"
    assert f'"accessKey": "{sim.config.access_key}"' in body.decode()


async def test_every_nth_request_is_429_with_retry_after(
    saucelabs_sim_async_factory: AsyncSauceLabsFactory, http: aiohttp.ClientSession
) -> None:
    sim = await saucelabs_sim_async_factory(rate_limit_every=3, retry_after=4)
    answers = []
    for _ in range(6):
        async with http.get(sim.api_url + "/v1/rdc/jobs", headers=auth(sim)) as response:
            answers.append((response.status, response.headers.get("Retry-After")))
    assert answers[2] == (429, "4") and answers[5] == (429, "4")
    assert [status for status, _ in answers].count(200) == 4


def test_the_dataset_is_built_once_from_the_config() -> None:
    config = SauceLabsSimConfig(jobs=40, newest_start=NEWEST)
    first = SauceLabsDataset.build(config, int(NEWEST.timestamp()))
    again = SauceLabsSimulator(config).dataset
    assert first == again
    assert [job.start for job in first.jobs] == sorted((j.start for j in first.jobs), reverse=True)
    assert {job.cloud for job in first.jobs} == {REAL_DEVICES, VIRTUAL}
    with pytest.raises(ValueError, match="clouds"):
        SauceLabsSimConfig(clouds=("elsewhere",))
