"""The TestObject simulator over real HTTP: session reports, legacy test reports, their files."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.request
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from archiver_sim.testobject import TestObjectSimConfig, TestObjectSimulator
from tests.support.simulators import AsyncTestObjectFactory

DATE_KEYS = [
    "second",
    "hour",
    "minute",
    "nano",
    "dayOfYear",
    "dayOfWeek",
    "month",
    "dayOfMonth",
    "year",
    "monthValue",
    "chronology",
]
ENTITY_KEYS = [
    "id",
    "projectId",
    "userId",
    "deviceDescriptorId",
    "usage",
    "appId",
    "frameworkAppId",
    "testFrameworkType",
    "testFrameworkVersion",
    "testReportIds",
    "testIds",
    "batchId",
    "startDateTime",
    "endDateTime",
    "durationInSeconds",
]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def auth(sim: TestObjectSimulator) -> dict[str, str]:
    return basic(sim.config.username, sim.config.api_key)


async def get(
    http: aiohttp.ClientSession,
    sim: TestObjectSimulator,
    path: str,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> tuple[int, Any, Mapping[str, str]]:
    url = sim.api_url + path
    query = {name: str(value) for name, value in params.items()}
    async with http.get(url, params=query, headers=auth(sim) if headers is None else headers) as r:
        return r.status, await r.json(), r.headers


async def page(http: aiohttp.ClientSession, sim: TestObjectSimulator, **params: Any) -> Any:
    status, body, _ = await get(http, sim, sim.list_path, **params)
    assert status == 200, body
    return body


async def list_all(
    http: aiohttp.ClientSession, sim: TestObjectSimulator, **params: Any
) -> tuple[list[str], int]:
    """Every session id, walking 1-based offsets the way the documentation shows."""
    ids: list[str] = []
    offset, pages = 1, 0
    while True:
        body = await page(http, sim, offset=offset, **params)
        pages += 1
        entities = body["entities"]
        ids += [entity["id"] for entity in entities]
        offset += len(entities)
        meta = body["metaData"]
        more = meta["moreAvailable"] if "moreAvailable" in meta else offset - 1 < meta["count"]
        if not entities or not more:
            return ids, pages


async def fetch(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, int | None, str, bytes]:
    async with http.get(url, headers=headers or {}) as response:
        body = await response.read()
        return response.status, response.content_length, hashlib.sha256(body).hexdigest(), body


# -- auth ------------------------------------------------------------------------------------


async def test_missing_or_wrong_credentials_are_401(
    testobject_sim_async: TestObjectSimulator, http: aiohttp.ClientSession
) -> None:
    sim = testobject_sim_async
    report_id = next(s.report_ids[0] for s in sim.reports if s.report_ids)
    wrong: tuple[dict[str, str], ...] = (
        {},
        basic(sim.config.username, "wrong"),
        basic("someone", sim.config.api_key),
        {"Authorization": f"Bearer {sim.config.api_key}"},
        {"Authorization": "Basic not-base64!"},
    )
    for headers in wrong:
        for path in (sim.list_path, f"/v2/reports/{report_id}"):
            status, error, response_headers = await get(http, sim, path, headers)
            assert status == 401 and error["status"] == 401 and error["message"]
            assert response_headers["WWW-Authenticate"].startswith("Basic")


async def test_another_user_is_403_and_bad_parameters_400(
    testobject_sim_async: TestObjectSimulator, http: aiohttp.ClientSession
) -> None:
    sim = testobject_sim_async
    status, error, _ = await get(http, sim, "/rest/v1/users/other/session/reports")
    assert (status, error["status"]) == (403, 403)
    refused = ({"offset": 0}, {"limit": 0}, {"lastDays": 0}, {"lastDays": 31}, {"offset": "one"})
    for params in refused:
        status, error, _ = await get(http, sim, sim.list_path, **params)
        assert status == 400 and error["message"], params


# -- the listing -----------------------------------------------------------------------------


async def test_entities_carry_every_field_of_the_sample(
    testobject_sim_async: TestObjectSimulator, http: aiohttp.ClientSession
) -> None:
    sim = testobject_sim_async
    body = await page(http, sim)
    assert list(body) == ["entities", "metaData"]
    assert body["metaData"] == {
        "offset": 1,
        "limit": 50,
        "searchTerm": None,
        "sortDirection": "DESCENDING",
        "count": sim.config.sessions,
    }
    usages = set()
    for entity in body["entities"]:
        assert list(entity) == ENTITY_KEYS
        assert entity == sim.entity(entity["id"])
        assert entity["userId"] == sim.config.username
        usages.add(entity["usage"])
        for key in ("startDateTime", "endDateTime"):
            moment = entity[key]
            assert list(moment) == DATE_KEYS
            assert moment["chronology"] == {"calendarType": "iso8601", "id": "ISO"}
            parsed = datetime(
                moment["year"],
                moment["monthValue"],
                moment["dayOfMonth"],
                moment["hour"],
                moment["minute"],
                moment["second"],
            )
            assert moment["month"] == f"{parsed:%B}".upper()
            assert moment["dayOfWeek"] == f"{parsed:%A}".upper()
            assert moment["dayOfYear"] == parsed.timetuple().tm_yday
        start, end = (sim.session(entity["id"]).start, sim.session(entity["id"]).end)
        assert entity["durationInSeconds"] == (end - start).total_seconds() > 0
        if entity["usage"] == "MANUAL":
            assert entity["testReportIds"] == [] and entity["testIds"] == []
        else:
            assert entity["testReportIds"] and len(entity["testIds"]) == len(
                entity["testReportIds"]
            )
        if entity["usage"] == "APPIUM":
            assert entity["testIds"] == [-1] and entity["batchId"] == -1
    assert usages == {"APPIUM", "ESPRESSO", "XCUITEST", "MANUAL"}
    starts = [sim.session(entity["id"]).start for entity in body["entities"]]
    assert starts == sorted(starts, reverse=True)


async def test_offset_is_one_based_and_paging_misses_nothing(
    testobject_sim_async_factory: AsyncTestObjectFactory, http: aiohttp.ClientSession
) -> None:
    sim = await testobject_sim_async_factory(sessions=53)
    expected = [s.id for s in sim.reports]
    first = await page(http, sim, offset=1, limit=1)
    assert [e["id"] for e in first["entities"]] == expected[:1]
    second = await page(http, sim, offset=2, limit=3)
    assert [e["id"] for e in second["entities"]] == expected[1:4]
    assert second["metaData"]["offset"] == 2 and second["metaData"]["limit"] == 3
    ids, pages = await list_all(http, sim, limit=10)
    assert ids == expected and pages == 6
    beyond = await page(http, sim, offset=54, limit=10)
    assert beyond["entities"] == [] and beyond["metaData"]["count"] == 53


async def test_more_available_replaces_count(
    testobject_sim_async_factory: AsyncTestObjectFactory, http: aiohttp.ClientSession
) -> None:
    sim = await testobject_sim_async_factory(sessions=25, more_available_instead_of_count=True)
    first = await page(http, sim, offset=1, limit=10)
    assert "count" not in first["metaData"] and first["metaData"]["moreAvailable"] is True
    last = await page(http, sim, offset=21, limit=10)
    assert len(last["entities"]) == 5 and last["metaData"]["moreAvailable"] is False
    exact = await page(http, sim, offset=16, limit=10)
    assert len(exact["entities"]) == 10 and exact["metaData"]["moreAvailable"] is False
    ids, pages = await list_all(http, sim, limit=10)
    assert ids == [s.id for s in sim.reports] and pages == 3


async def test_last_days_keeps_only_recent_sessions(
    testobject_sim_async_factory: AsyncTestObjectFactory, http: aiohttp.ClientSession
) -> None:
    sim = await testobject_sim_async_factory(sessions=60, span=timedelta(days=60))
    now = datetime.now(UTC).replace(tzinfo=None)
    for days in (1, 7, 30):
        recent = [s.id for s in sim.reports if s.start >= now - timedelta(days=days)]
        body = await page(http, sim, lastDays=days, limit=100)
        assert [e["id"] for e in body["entities"]] == recent
        assert body["metaData"]["count"] == len(recent)
    default = await page(http, sim, limit=100)
    assert 20 < default["metaData"]["count"] < 40  # lastDays defaults to 30 of 60 days
    assert max(s.start for s in sim.reports) < now


async def test_still_running_sessions_until_finished(
    testobject_sim_async_factory: AsyncTestObjectFactory, http: aiohttp.ClientSession
) -> None:
    sim = await testobject_sim_async_factory(unfinished=2, usages=("APPIUM",))
    newest, second, third = sim.reports[:3]
    body = await page(http, sim, limit=3)
    by_id = {e["id"]: e for e in body["entities"]}
    for session in (newest, second):
        assert by_id[session.id]["endDateTime"] is None
        assert by_id[session.id]["durationInSeconds"] == 0
        assert sim.is_unfinished(session.id)
    assert by_id[third.id]["endDateTime"] is not None and by_id[third.id]["durationInSeconds"] > 0

    report_id = newest.report_ids[0]
    status, report, _ = await get(http, sim, f"/v2/reports/{report_id}")
    assert status == 200 and report["status"] == "RUNNING" and report["video"] is None
    video = next(f for f in sim.files(newest.id) if f.kind == "video")
    assert (await fetch(http, sim.url(video)))[0] == 404

    sim.finish(newest.id)
    body = await page(http, sim, limit=3)
    by_id = {e["id"]: e for e in body["entities"]}
    assert by_id[newest.id]["durationInSeconds"] == newest.duration_s
    assert by_id[newest.id]["endDateTime"]["second"] == newest.end.second
    assert by_id[second.id]["endDateTime"] is None
    status, report, _ = await get(http, sim, f"/v2/reports/{report_id}")
    assert report["status"] != "RUNNING" and report["video"]["url"] == sim.url(video)
    assert (await fetch(http, sim.url(video)))[0] == 200

    sim.finish_all()
    assert all(e["endDateTime"] for e in (await page(http, sim))["entities"])
    with pytest.raises(KeyError):
        sim.finish("no-such-session")


# -- legacy test reports and their files ---------------------------------------------------


async def test_reports_link_files_that_match_expected_digests(
    testobject_sim_async: TestObjectSimulator, http: aiohttp.ClientSession
) -> None:
    sim = testobject_sim_async
    appium = next(s for s in sim.reports if s.usage == "APPIUM")
    espresso = next(s for s in sim.reports if s.usage == "ESPRESSO")
    for session in (appium, espresso):
        urls: list[str] = []
        for report_id in session.report_ids:
            status, report, _ = await get(http, sim, f"/v2/reports/{report_id}")
            assert status == 200 and report == sim.report(report_id)
            assert list(report) == ["id", "sessionId", "status", "video", "screenshots", "logs"]
            assert report["id"] == report_id and report["sessionId"] == session.id
            assert report["status"] in ("SUCCESS", "FAILURE", "ERROR")
            assert urlsplit(report["video"]["url"]).path == f"/v2/video/{report['video']['id']}.mp4"
            assert len(report["screenshots"]) == sim.config.screenshots_per_report
            for shot in report["screenshots"]:
                assert urlsplit(shot["url"]).path == f"/v2/screenshots/{report_id}/{shot['id']}.png"
            kinds = ["appium", "device", "vitals"] if session.usage == "APPIUM" else ["device"]
            assert list(report["logs"])[: len(kinds)] == kinds
            for kind, url in report["logs"].items():
                assert urlsplit(url).path == f"/v2/logs/{report_id}/{kind}"
            urls += [report["video"]["url"], *(s["url"] for s in report["screenshots"])]
            urls += report["logs"].values()
        assert len(urls) == len(sim.files(session.id))
        for url in urls:
            assert url.startswith(sim.files_url)
            status, length, digest, body = await fetch(http, url)  # no credentials
            assert status == 200 and (length, digest) == sim.expected_digest(url)
            if url.endswith(".mp4"):
                assert body[4:8] == b"ftyp"
            if url.endswith(".png"):
                assert body.startswith(b"\x89PNG")
    assert not any(r.carries(sim.config.api_key) for r in sim.requests("files"))


async def test_appium_logs_echo_the_api_key(
    testobject_sim_async: TestObjectSimulator, http: aiohttp.ClientSession
) -> None:
    sim = testobject_sim_async
    session = next(s for s in sim.reports if s.usage == "APPIUM")
    report = sim.report(session.report_ids[0])
    _, _, _, log = await fetch(http, report["logs"]["appium"])
    assert f'"testobject_api_key": "{sim.config.api_key}"'.encode() in log
    _, _, _, device_log = await fetch(http, report["logs"]["device"])
    assert sim.config.api_key.encode() not in device_log


async def test_unknown_reports_and_files_are_404_and_unsigned_files_403(
    testobject_sim_async: TestObjectSimulator, http: aiohttp.ClientSession
) -> None:
    sim = testobject_sim_async
    for path in ("/v2/reports/999999999", "/v2/reports/abc"):
        status, error, _ = await get(http, sim, path)
        assert (status, error["status"]) == (404, 404)
    session = next(s for s in sim.reports if s.report_ids)
    url = sim.url(sim.files(session.id)[0])
    assert (await fetch(http, url.partition("?")[0]))[0] == 403
    assert (await fetch(http, url + "0"))[0] == 403
    for path in ("/v2/video/1.mp4", "/v2/screenshots/1/1.png", "/v2/logs/1/appium", "/v2/x"):
        assert (await fetch(http, sim.files_url + path + "?sig=x"))[0] == 404
    espresso = next(s for s in sim.reports if s.usage == "ESPRESSO")
    with pytest.raises(KeyError):
        sim.expected_digest(f"{sim.files_url}/v2/logs/{espresso.report_ids[0]}/appium")
    with pytest.raises(KeyError):
        sim.report(12)


# -- rate limit, request log, determinism ----------------------------------------------------


async def test_every_nth_request_is_429_with_retry_after(
    testobject_sim_async_factory: AsyncTestObjectFactory, http: aiohttp.ClientSession
) -> None:
    sim = await testobject_sim_async_factory(rate_limit_every=3, retry_after=2)
    statuses = []
    for _ in range(6):
        status, body, headers = await get(http, sim, sim.list_path)
        statuses.append(status)
        if status == 429:
            assert headers["Retry-After"] == "2" and body["status"] == 429
    assert statuses == [200, 200, 429, 200, 200, 429]


async def test_request_log_records_both_origins(
    testobject_sim_async: TestObjectSimulator, http: aiohttp.ClientSession
) -> None:
    sim = testobject_sim_async
    await page(http, sim, limit=5)
    session = next(s for s in sim.reports if s.report_ids)
    await fetch(http, sim.url(sim.files(session.id)[0]))
    (listing,) = sim.requests("api")
    assert listing.path == sim.list_path and listing.query == {"limit": "5"}
    assert listing.carries(base64.b64encode(b"foobar:testobject-sim-api-key").decode())
    (download,) = sim.requests("files")
    assert download.method == "GET" and "sig" in download.query
    sim.clear_requests()
    assert sim.requests() == []


def test_same_config_gives_same_dataset() -> None:
    start = datetime(2016, 3, 24, 10, 53, 57)
    one = TestObjectSimulator(TestObjectSimConfig(newest_start=start))
    two = TestObjectSimulator(TestObjectSimConfig(newest_start=start))
    assert one.reports == two.reports
    assert [one.entity(s.id) for s in one.reports] == [two.entity(s.id) for s in two.reports]
    assert one.reports[0].start == start
    assert len({s.id for s in one.reports}) == len(one.reports)
    report_ids = [r for s in one.reports for r in s.report_ids]
    assert len(set(report_ids)) == len(report_ids)
    with pytest.raises(ValueError):
        TestObjectSimConfig(usages=("ROBOTIUM",))


def test_large_datasets_build_quickly() -> None:
    sim = TestObjectSimulator(TestObjectSimConfig(sessions=20_000, span=timedelta(days=29)))
    starts = [s.start for s in sim.reports]
    assert starts == sorted(starts, reverse=True) and len(set(starts)) == len(starts)


def test_thread_variant_serves_a_synchronous_test(testobject_sim: TestObjectSimulator) -> None:
    sim = testobject_sim
    request = urllib.request.Request(sim.api_url + sim.list_path + "?limit=2", headers=auth(sim))
    with urllib.request.urlopen(request) as response:
        body = json.load(response)
    assert [e["id"] for e in body["entities"]] == [s.id for s in sim.reports[:2]]
