"""The Perfecto simulator over real HTTP: the API as documented, and the bytes it serves."""

from __future__ import annotations

import gc
import hashlib
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from archiver_sim import content
from archiver_sim.perfecto import (
    EXECUTIONS_PATH,
    SMALL_BODY_BYTES,
    WINDOW_REFUSED,
    PerfectoSimConfig,
    PerfectoSimulator,
)
from archiver_sim.runner import SimulatorThread
from tests.support.simulators import AsyncPerfectoFactory

DAY_MS = 24 * 3600 * 1000


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def auth(sim: PerfectoSimulator, header: str = "PERFECTO-AUTHORIZATION") -> dict[str, str]:
    return {header: sim.config.token}


async def list_page(
    http: aiohttp.ClientSession, sim: PerfectoSimulator, **params: str
) -> dict[str, Any]:
    url = sim.api_url + EXECUTIONS_PATH
    async with http.get(url, params=params, headers=auth(sim)) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def fetch(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, int | None, str, str]:
    """(status, Content-Length, content type, sha256) of ``url``, read in chunks."""
    sha = hashlib.sha256()
    async with http.get(url, headers=headers or {}, allow_redirects=False) as response:
        async for chunk in response.content.iter_chunked(1 << 16):
            sha.update(chunk)
        return response.status, response.content_length, response.content_type, sha.hexdigest()


def window(start: int, end: int) -> dict[str, str]:
    return {"startExecutionTime[0]": str(start), "endExecutionTime[0]": str(end)}


# -- auth ------------------------------------------------------------------------------------


async def test_api_refuses_missing_or_wrong_token(
    perfecto_sim_async: PerfectoSimulator, http: aiohttp.ClientSession
) -> None:
    url = perfecto_sim_async.api_url + EXECUTIONS_PATH
    for headers in ({}, {"PERFECTO-AUTHORIZATION": "wrong"}, {"Authorization": "Bearer x"}):
        async with http.get(url, headers=headers) as response:
            assert response.status == 401
            assert "userMessage" in await response.json()


@pytest.mark.parametrize(
    "header", ["PERFECTO-AUTHORIZATION", "PERFECTO_AUTHORIZATION", "Perfecto-Authorization"]
)
async def test_api_accepts_both_header_spellings(
    perfecto_sim_async: PerfectoSimulator, http: aiohttp.ClientSession, header: str
) -> None:
    sim = perfecto_sim_async
    async with http.get(sim.api_url + EXECUTIONS_PATH, headers=auth(sim, header)) as response:
        assert response.status == 200
        assert len((await response.json())["resources"]) == sim.config.executions


# -- listing ---------------------------------------------------------------------------------


async def test_resources_carry_every_documented_field(
    perfecto_sim_async: PerfectoSimulator, http: aiohttp.ClientSession
) -> None:
    body = await list_page(http, perfecto_sim_async)
    metadata = body["metadata"]
    assert metadata["apiVersion"] == "v1"
    assert isinstance(metadata["createdAt"], int)
    assert metadata["processingStatus"] == "PROCESSING_COMPLETE"
    assert (metadata["page"], metadata["truncated"]) == (1, False)
    resources = body["resources"]
    starts = [resource["startTime"] for resource in resources]
    assert starts == sorted(starts, reverse=True)
    for resource in resources:
        assert {"id", "externalId", "name", "owner", "startTime", "endTime", "uxDuration",
                "status", "platforms", "videos", "tags", "executionEngine", "artifacts",
                "reportURL"} <= resource.keys()  # fmt: skip
        platform = resource["platforms"][0]
        assert ("mobileInfo" in platform) != ("browserInfo" in platform)
        assert {"deviceId", "os", "osVersion", "selectionCriteria", "customFields"} <= set(platform)
        assert 1 <= len(resource["videos"]) <= 2
        video = resource["videos"][0]
        assert video["downloadUrl"].startswith(perfecto_sim_async.files_url)
        assert {"startTime", "endTime", "format", "streamingUrl", "screen"} <= set(video)
    names = [resource["name"] for resource in resources]
    for awkward in (":", "/", " ", ".."):
        assert any(awkward in name for name in names), awkward
    assert any(not name.isascii() for name in names)
    kinds = {artifact["type"] for resource in resources for artifact in resource["artifacts"]}
    assert {"DEVICE_LOGS", "NETWORK", "VITALS", "APP_CRASH_REPORT", "HAR_CAPTURE"} <= kinds
    assert any("job" in resource for resource in resources)
    assert any("project" in resource for resource in resources)
    external_ids = [resource["externalId"] for resource in resources]
    assert len(set(external_ids)) < len(external_ids)  # one driver session, several tests


async def test_paging_covers_a_window_without_gaps(
    perfecto_sim_async_factory: AsyncPerfectoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await perfecto_sim_async_factory(executions=1203)
    params = window(sim.executions[-1].start_ms, sim.executions[0].start_ms)
    seen: list[str] = []
    flags = []
    for page in (1, 2, 3, 4):
        body = await list_page(http, sim, **params, _page=str(page))
        assert body["metadata"]["page"] == page
        flags.append(body["metadata"]["truncated"])
        seen += [resource["id"] for resource in body["resources"]]
    assert flags == [True, True, False, False]
    assert seen == [execution.id for execution in sim.executions]


async def test_window_bounds_are_inclusive_and_page_size_is_configurable(
    perfecto_sim_async_factory: AsyncPerfectoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await perfecto_sim_async_factory(executions=40, page_size=7)
    inside = sim.executions[5:25]
    params = window(inside[-1].start_ms, inside[0].start_ms)
    ids: list[str] = []
    page = 1
    while True:
        body = await list_page(http, sim, **params, _page=str(page))
        assert len(body["resources"]) <= 7
        ids += [resource["id"] for resource in body["resources"]]
        if not body["metadata"]["truncated"]:
            break
        page += 1
    assert ids == [execution.id for execution in inside]
    assert page == 3


async def test_end_time_alone_is_ignored(
    perfecto_sim_async: PerfectoSimulator, http: aiohttp.ClientSession
) -> None:
    body = await list_page(http, perfecto_sim_async, **{"endExecutionTime[0]": "1"})
    assert len(body["resources"]) == perfecto_sim_async.config.executions


async def test_too_wide_a_window_is_refused(
    perfecto_sim_async: PerfectoSimulator, http: aiohttp.ClientSession
) -> None:
    sim = perfecto_sim_async
    end = sim.executions[0].start_ms
    async with http.get(
        sim.api_url + EXECUTIONS_PATH, params=window(end - 32 * DAY_MS, end), headers=auth(sim)
    ) as response:
        assert response.status == 400
        assert await response.json() == {"userMessage": WINDOW_REFUSED}
    body = await list_page(http, sim, **window(end - 31 * DAY_MS, end))
    assert len(body["resources"]) == sim.config.executions


async def test_filters_by_external_id_tag_and_job(
    perfecto_sim_async_factory: AsyncPerfectoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await perfecto_sim_async_factory(executions=30)
    shared = next(
        ex.external_id
        for ex in sim.executions
        if sum(other.external_id == ex.external_id for other in sim.executions) > 1
    )
    body = await list_page(http, sim, **{"externalId[0]": shared})
    expected = [ex.id for ex in sim.executions if ex.external_id == shared]
    assert [resource["id"] for resource in body["resources"]] == expected
    assert len(expected) > 1

    tagged = await list_page(http, sim, **{"tags[0]": "smoke"})
    assert [r["id"] for r in tagged["resources"]] == [
        ex.id for ex in sim.executions if "smoke" in ex.tags
    ]
    job = next(ex.job for ex in sim.executions if ex.job)
    assert job is not None
    by_job = await list_page(http, sim, **{"jobName[0]": job[0], "jobNumber[0]": str(job[1])})
    assert [r["id"] for r in by_job["resources"]] == [
        ex.id for ex in sim.executions if ex.job == job
    ]


# -- processing ------------------------------------------------------------------------------


async def test_processing_status_is_per_response_until_finished(
    perfecto_sim_async_factory: AsyncPerfectoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await perfecto_sim_async_factory(unfinished=1)
    busy, done = sim.executions[0], sim.executions[-1]
    assert sim.is_unfinished(busy.id) and not sim.is_unfinished(done.id)

    everything = await list_page(http, sim)
    assert everything["metadata"]["processingStatus"] == "PROCESSING"
    first = everything["resources"][0]
    assert first["id"] == busy.id
    assert (first["videos"], first["artifacts"]) == ([], [])

    alone = await list_page(http, sim, **window(done.start_ms, done.start_ms))
    assert [r["id"] for r in alone["resources"]] == [done.id]
    assert alone["metadata"]["processingStatus"] == "PROCESSING_COMPLETE"

    sim.finish(busy.id)
    again = await list_page(http, sim, **window(busy.start_ms, busy.start_ms))
    assert again["metadata"]["processingStatus"] == "PROCESSING_COMPLETE"
    assert again["resources"][0]["videos"] and again["resources"][0]["artifacts"]

    sim.set_unfinished(done.id)
    assert (await list_page(http, sim))["metadata"]["processingStatus"] == "PROCESSING"


class SimClock:
    """Stands in for a simulator module's ``time``: the monotonic clock moves only when the
    test moves it; the wall clock is the real one."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.time = time.time

    def monotonic(self) -> float:
        return self.now


async def test_processing_ends_after_processing_seconds(
    perfecto_sim_async_factory: AsyncPerfectoFactory,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = SimClock()
    monkeypatch.setattr("archiver_sim.perfecto.time", clock)
    sim = await perfecto_sim_async_factory(processing_seconds=30)

    async def status() -> str:
        body = await list_page(http, sim)
        value: str = body["metadata"]["processingStatus"]
        return value

    assert await status() == "PROCESSING"
    clock.now += 29
    assert await status() == "PROCESSING"
    clock.now += 1
    assert await status() == "PROCESSING_COMPLETE"


# -- commands and PDF ------------------------------------------------------------------------


async def test_commands_link_screenshots_on_the_artifact_origin(
    perfecto_sim_async: PerfectoSimulator, http: aiohttp.ClientSession
) -> None:
    sim = perfecto_sim_async
    execution = sim.executions[1]
    url = f"{sim.api_url}{EXECUTIONS_PATH}/{execution.id}/commands"
    async with http.get(url, headers=auth(sim)) as response:
        assert response.status == 200
        body = await response.json()
    assert isinstance(body["metadata"]["createdAt"], str)
    (resource,) = body["resources"]
    assert resource["testExecutionId"] == execution.id
    commands = resource["commands"]
    assert all({"name", "status", "startTime", "endTime", "uxDuration"} <= set(c) for c in commands)
    assert commands[-1]["status"] == "FAILURE" and commands[-1]["message"]  # a FAILED test
    shots = [shot for command in commands for shot in command.get("screenshots", [])]
    assert shots
    for shot in shots:
        assert shot.startswith(sim.files_url + "/files/") and "X-Amz-Signature=" in shot
        status, length, content_type, digest = await fetch(http, shot)
        assert status == 200
        assert content_type in ("image/png", "image/jpeg")
        assert (length, digest) == sim.expected_digest(shot)


async def test_commands_of_an_unknown_execution_are_404(
    perfecto_sim_async: PerfectoSimulator, http: aiohttp.ClientSession
) -> None:
    sim = perfecto_sim_async
    url = f"{sim.api_url}{EXECUTIONS_PATH}/nope/commands"
    async with http.get(url, headers=auth(sim)) as response:
        assert response.status == 404
        assert "userMessage" in await response.json()


async def test_pdf_is_204_until_ready(
    perfecto_sim_async_factory: AsyncPerfectoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await perfecto_sim_async_factory(pdf_not_ready_requests=2)
    url = sim.pdf_url(sim.executions[0].id)
    for _ in range(2):
        async with http.get(url, headers=auth(sim)) as response:
            assert response.status == 204
            assert await response.read() == b""
    status, length, content_type, digest = await fetch(http, url, auth(sim))
    assert (status, content_type) == (200, "application/pdf")
    assert (length, digest) == sim.expected_digest(url)
    assert sim.pdf_requests(sim.executions[0].id) == 3


# -- artifacts -------------------------------------------------------------------------------


async def test_every_file_matches_its_expected_digest(
    perfecto_sim_async: PerfectoSimulator, http: aiohttp.ClientSession
) -> None:
    sim = perfecto_sim_async
    for execution in sim.executions[:4]:
        for file in sim.files(execution.id):
            url = sim.url(file)
            headers = auth(sim) if url.startswith(sim.api_url) else {}
            status, length, content_type, digest = await fetch(http, url, headers)
            if file.delivery == "redirect":
                assert status == 302
                continue
            assert status == 200
            assert content_type == file.content_type
            assert (length, digest) == sim.expected_digest(url) == (file.size, file.digest())


async def test_secure_artifacts_need_the_token(
    perfecto_sim_async: PerfectoSimulator, http: aiohttp.ClientSession
) -> None:
    sim = perfecto_sim_async
    logs = next(f for f in sim.files(sim.executions[0].id) if f.kind == "DEVICE_LOGS")
    assert sim.url(logs).startswith(sim.api_url + "/export/api/v1/artifacts/")
    assert (await fetch(http, sim.url(logs)))[0] == 401
    assert (await fetch(http, sim.url(logs), auth(sim)))[0] == 200


async def test_redirect_leaves_the_api_origin_for_the_artifact_origin(
    perfecto_sim_async: PerfectoSimulator, http: aiohttp.ClientSession
) -> None:
    sim = perfecto_sim_async
    vitals = next(f for f in sim.files(sim.executions[0].id) if f.kind == "VITALS")
    url = sim.url(vitals)
    async with http.get(url, headers=auth(sim), allow_redirects=False) as response:
        assert response.status == 302
        location = response.headers["Location"]
    assert location.startswith(sim.files_url + "/files/")
    status, length, _, digest = await fetch(http, location)
    assert status == 200
    assert (length, digest) == sim.expected_digest(url) == sim.expected_digest(location)
    files_requests = sim.requests("files")
    assert files_requests and not any(r.carries(sim.config.token) for r in files_requests)


async def test_artifact_origin_checks_signatures(
    perfecto_sim_async: PerfectoSimulator, http: aiohttp.ClientSession
) -> None:
    sim = perfecto_sim_async
    video = sim.files(sim.executions[0].id)[0]
    tampered = sim.url(video).replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert (await fetch(http, tampered))[0] == 403
    assert (await fetch(http, sim.url(video).split("?")[0]))[0] == 403


async def test_large_video_is_streamed_with_its_length(
    perfecto_sim_async_factory: AsyncPerfectoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await perfecto_sim_async_factory(executions=1, video_size=48 * 1024 * 1024 + 13)
    video = sim.files(sim.executions[0].id)[0]
    status, length, content_type, digest = await fetch(http, sim.url(video))
    assert (status, content_type, length) == (200, "video/mp4", video.size)
    assert digest == video.digest()


@pytest.mark.parametrize("size", [20_000, SMALL_BODY_BYTES + 1, 3 * 1024 * 1024 + 5])
async def test_bodies_from_body_dir_match_the_streamed_ones(
    perfecto_sim_async_factory: AsyncPerfectoFactory,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    size: int,
) -> None:
    """Small bodies are read into the answer, larger ones sent from their file."""
    sim = await perfecto_sim_async_factory(
        executions=1, video_size=size, artifact_size=size, body_dir=str(tmp_path)
    )
    served = 0
    for file in sim.files(sim.executions[0].id):
        url = sim.url(file)
        headers = auth(sim) if url.startswith(sim.api_url) else {}
        async with http.get(url, headers=headers) as response:
            if response.status == 302:
                continue
            assert response.status == 200
            assert response.content_type == file.content_type
            body = await response.read()
        assert (len(body), hashlib.sha256(body).hexdigest()) == (file.size, file.digest())
        served += 1
    assert served >= 2
    assert list(tmp_path.iterdir())  # the bodies went to files


# -- request log, determinism, thread variant ------------------------------------------------


async def test_request_log_records_headers(
    perfecto_sim_async: PerfectoSimulator, http: aiohttp.ClientSession
) -> None:
    sim = perfecto_sim_async
    sim.clear_requests()
    await list_page(http, sim, **{"_page": "1"})
    (entry,) = sim.requests("api")
    assert (entry.method, entry.path, dict(entry.query)) == ("GET", EXECUTIONS_PATH, {"_page": "1"})
    assert entry.header("Perfecto-Authorization") == sim.config.token
    async with http.get(sim.api_url + "/_sim/requests") as response:
        assert (await response.json())[0]["headers"]["perfecto-authorization"] == sim.config.token
    assert len(sim.requests()) == 1  # the admin route is not logged


def test_same_config_gives_same_dataset() -> None:
    config = PerfectoSimConfig(executions=50, newest_start_ms=1_700_000_000_000)
    first, second = PerfectoSimulator(config), PerfectoSimulator(config)
    assert first.executions == second.executions
    third = PerfectoSimulator(PerfectoSimConfig(executions=50, seed=8))
    assert {ex.id for ex in first.executions}.isdisjoint(ex.id for ex in third.executions)
    bind = {"api": "http://127.0.0.1:1", "files": "http://127.0.0.1:2"}
    first.bind(bind)
    second.bind(bind)
    execution_id = first.executions[3].id
    assert [first.url(f) for f in first.files(execution_id)] == [
        second.url(f) for f in second.files(execution_id)
    ]


def test_content_is_independent_of_chunk_size() -> None:
    size = 3 * content.BLOCK_SIZE + 17
    whole = content.content_bytes("x", size, magic=b"%PDF")
    assert whole.startswith(b"%PDF")
    assert b"".join(content.iter_chunks("x", size, 1000, magic=b"%PDF")) == whole
    assert content.digest("x", size, magic=b"%PDF") == hashlib.sha256(whole).hexdigest()
    assert content.content_bytes("y", size) != content.content_bytes("x", size)


def test_content_generates_a_gib_quickly() -> None:
    started = time.monotonic()
    total = sum(len(chunk) for chunk in content.iter_chunks("big", 1 << 30, 1 << 20))
    assert total == 1 << 30
    assert time.monotonic() - started < 5


def test_thread_variant_serves_a_synchronous_test(perfecto_sim: PerfectoSimulator) -> None:
    sim = perfecto_sim
    sim.set_unfinished(sim.executions[0].id)
    request = urllib.request.Request(
        sim.api_url + EXECUTIONS_PATH, headers={"PERFECTO_AUTHORIZATION": sim.config.token}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        assert json.load(response)["metadata"]["processingStatus"] == "PROCESSING"
    sim.finish(sim.executions[0].id)
    with opener.open(request, timeout=10) as response:
        assert json.load(response)["metadata"]["processingStatus"] == "PROCESSING_COMPLETE"


def test_stopping_under_a_stalled_download_releases_the_socket() -> None:
    config = PerfectoSimConfig(executions=1, video_size=2 << 30)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with SimulatorThread(PerfectoSimulator(config)) as sim:
        response = opener.open(sim.url(sim.files(sim.executions[0].id)[0]), timeout=10)
        assert len(response.read(1 << 20)) == 1 << 20
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 5
    response.close()
    gc.collect()  # a leaked server socket would warn here, and warnings are errors
