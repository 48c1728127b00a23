"""The TestObject source against recorded session reports: offsets, end times, test reports."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from archiver.config import HttpSettings, Secret
from archiver.errors import BadVendorResponse, VendorError
from archiver.model import Session
from archiver.sources.records import json_artifact
from archiver.sources.testobject import UTC_NOTE, TestObjectSettings, TestObjectSource
from tests.unit.vendor_replay import (
    Replay,
    Seen,
    has_recording,
    recorded,
    recorded_bytes,
    replay,
    reply,
    reply_json,
)

VENDOR = "testobject"
USER = "foobar"
API_KEY = "unit-testobject-api-key"
BASIC = "Basic " + base64.b64encode(f"{USER}:{API_KEY}".encode()).decode()
REPORTS = f"/rest/v1/users/{USER}/session/reports"
FAST = HttpSettings(attempts=2, backoff_initial=0.01, backoff_max=0.02)

FIRST = recorded(VENDOR, "session-reports-offset-1.json")
LAST = recorded(VENDOR, "session-reports-offset-4.json")
RUNNING, BATCH, DOCUMENT_SAMPLE = FIRST["entities"]
MANUAL, TOO_OLD = LAST["entities"]
# lastDays = 5: every session of the recording but the one of 2016-03-18.
SINCE = datetime(2016, 3, 20, tzinfo=UTC)
UNTIL = datetime(2016, 3, 25, tzinfo=UTC)

Rig = tuple[Replay, TestObjectSource]
Serve = Callable[..., Awaitable[Rig]]


def vendor_answer(pages: Mapping[str, Any]) -> Callable[[Seen], web.Response]:
    """The recorded account: listing pages by ``offset`` (none: the account is refused),
    test reports by id."""

    def answer(seen: Seen) -> web.Response:
        if seen.path == REPORTS and not pages:
            return reply(VENDOR, "error-403-forbidden.json", status=403)
        if seen.path == REPORTS:
            page = pages.get(seen.query.get("offset", "1"))
            if page is None:
                return reply_json({"status": 400, "error": "Bad Request"}, status=400)
            return reply_json(page) if isinstance(page, dict) else reply(VENDOR, page)
        report = seen.path.removeprefix("/v2/reports/")
        if has_recording(VENDOR, f"report-{report}.json"):
            return reply(VENDOR, f"report-{report}.json")
        return reply_json({"status": 404, "error": "Not Found"}, status=404)

    return answer


RECORDED_PAGES = {"1": "session-reports-offset-1.json", "4": "session-reports-offset-4.json"}


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())

        async def start(pages: Mapping[str, Any] = RECORDED_PAGES, **overrides: Any) -> Rig:
            server = await stack.enter_async_context(
                replay(vendor_answer(pages), auth=("Authorization", BASIC))
            )
            options: dict[str, Any] = {"username": USER, "page_limit": 3, **overrides}
            settings = TestObjectSettings(base_url=server.url, token=Secret(API_KEY), **options)
            return server, TestObjectSource.create(http, settings, FAST)

        yield start


async def listed(source: TestObjectSource) -> list[Session]:
    return [session async for session in source.sessions(SINCE, UNTIL)]


def more_available(page: Mapping[str, Any], more: bool) -> dict[str, Any]:
    """The same page as the responses that carry ``moreAvailable`` instead of ``count``."""
    metadata = {key: value for key, value in page["metaData"].items() if key != "count"}
    return {**page, "metaData": {**metadata, "moreAvailable": more}}


async def test_pages_are_asked_by_one_based_offset_until_count_is_reached(serve: Serve) -> None:
    server, source = await serve()

    found = await listed(source)

    assert [s.session_id for s in found] == [
        e["id"] for e in (RUNNING, BATCH, DOCUMENT_SAMPLE, MANUAL)
    ]  # TOO_OLD is listed too, but started before since
    assert TOO_OLD["id"] not in {s.session_id for s in found}
    asked = server.to(REPORTS)
    # Offset 4 after the three entities of offset 1; five seen of count 5: no third page.
    assert [seen.query for seen in asked] == [
        {"offset": "1", "limit": "3", "lastDays": "5"},
        {"offset": "4", "limit": "3", "lastDays": "5"},
    ]
    assert all(seen.method == "GET" for seen in asked)
    assert all(seen.headers["Authorization"] == BASIC for seen in asked)


async def test_more_available_replaces_count_in_some_answers(serve: Serve) -> None:
    pages = {"1": more_available(FIRST, True), "4": more_available(LAST, False)}
    server, source = await serve(pages)

    found = await listed(source)

    assert len(found) == 4
    assert [seen.query["offset"] for seen in server.to(REPORTS)] == ["1", "4"]


async def test_an_empty_page_ends_the_listing_whatever_count_says(serve: Serve) -> None:
    empty = {"entities": [], "metaData": {**LAST["metaData"], "count": 161}}
    pages = {"1": {**FIRST, "metaData": {**FIRST["metaData"], "count": 161}}, "4": empty}
    server, source = await serve(pages)

    found = await listed(source)

    assert [s.session_id for s in found] == [e["id"] for e in (RUNNING, BATCH, DOCUMENT_SAMPLE)]
    assert [seen.query["offset"] for seen in server.to(REPORTS)] == ["1", "4"]


async def test_a_session_is_complete_once_it_has_an_end_time(serve: Serve) -> None:
    _, source = await serve()

    found = {s.session_id: s for s in await listed(source)}

    assert RUNNING["endDateTime"] is None
    assert not found[RUNNING["id"]].complete
    assert all(s.complete for sid, s in found.items() if sid != RUNNING["id"])
    sample = found[DOCUMENT_SAMPLE["id"]]
    assert sample.started_at == datetime(2016, 3, 24, 10, 53, 57, tzinfo=UTC)
    assert sample.record == DOCUMENT_SAMPLE


async def test_a_running_session_lists_no_video_until_its_report_has_one(serve: Serve) -> None:
    _, source = await serve()
    session = next(s for s in await listed(source) if s.session_id == RUNNING["id"])

    artifacts = await source.artifacts(session)

    assert recorded(VENDOR, "report-81.json")["video"] is None
    assert [(a.name, a.kind) for a in artifacts] == [
        ("session.json", "session_record"),
        ("reports/81.json", "test_report"),
        ("reports/81/screenshots/0000-8101.png", "screenshot"),
        ("reports/81/logs/appium.log", "appium_log"),
        ("reports/81/logs/device.log", "device_log"),
        ("reports/81/logs/vitals.log", "vitals_log"),
    ]


async def test_artifacts_of_the_document_sample_are_its_test_report_and_files(serve: Serve) -> None:
    server, source = await serve()
    session = next(s for s in await listed(source) if s.session_id == DOCUMENT_SAMPLE["id"])
    report = recorded(VENDOR, "report-78.json")

    artifacts = await source.artifacts(session)

    assert [(a.name, a.kind, a.url) for a in artifacts] == [
        ("session.json", "session_record", None),
        ("reports/78.json", "test_report", None),
        ("reports/78/video-1078.mp4", "video", report["video"]["url"]),
        ("reports/78/screenshots/0000-7801.png", "screenshot", report["screenshots"][0]["url"]),
        ("reports/78/screenshots/0001-7802.png", "screenshot", report["screenshots"][1]["url"]),
        ("reports/78/logs/appium.log", "appium_log", report["logs"]["appium"]),
        ("reports/78/logs/device.log", "device_log", report["logs"]["device"]),
        ("reports/78/logs/vitals.log", "vitals_log", report["logs"]["vitals"]),
    ]
    assert artifacts[0] == json_artifact("session.json", "session_record", DOCUMENT_SAMPLE)
    assert artifacts[1].content == recorded_bytes(VENDOR, "report-78.json")
    asked = server.to("/v2/reports/78")
    assert len(asked) == 1 and asked[0].headers["Authorization"] == BASIC
    assert source.not_offered(session) == [UTC_NOTE]


async def test_a_batch_session_has_each_of_its_test_reports(serve: Serve) -> None:
    _, source = await serve()
    session = next(s for s in await listed(source) if s.session_id == BATCH["id"])

    artifacts = await source.artifacts(session)

    assert [a.name for a in artifacts] == [
        "session.json",
        "reports/79.json",
        "reports/79/video-1079.mp4",
        "reports/79/screenshots/0000-7901.png",
        "reports/79/logs/device.log",
        "reports/79/logs/vitals.log",
        "reports/80.json",
        "reports/80/video-1080.mp4",
        "reports/80/screenshots/0000-8001.png",
        "reports/80/screenshots/0001-8002.png",
        "reports/80/logs/device.log",
        "reports/80/logs/vitals.log",
    ]


async def test_a_manual_session_has_no_reports_and_says_so(serve: Serve) -> None:
    server, source = await serve()
    session = next(s for s in await listed(source) if s.session_id == MANUAL["id"])

    artifacts = await source.artifacts(session)

    assert artifacts == [json_artifact("session.json", "session_record", MANUAL)]
    assert not [seen for seen in server.requests if seen.path.startswith("/v2/")]
    notes = source.not_offered(session)
    assert notes[0] == UTC_NOTE
    assert len(notes) == 2 and notes[1].startswith("no test reports: the session has no")


async def test_test_reports_left_out_by_configuration_are_said_to_be(serve: Serve) -> None:
    server, source = await serve(test_reports=False)
    session = next(s for s in await listed(source) if s.session_id == DOCUMENT_SAMPLE["id"])

    artifacts = await source.artifacts(session)

    assert [a.name for a in artifacts] == ["session.json"]
    assert not [seen for seen in server.requests if seen.path.startswith("/v2/")]
    assert source.not_offered(session)[1].startswith("test reports: not requested")


async def test_the_first_run_asks_no_more_than_the_documented_thirty_days(
    serve: Serve,
) -> None:
    server, source = await serve()
    # backfill_days = 30 and the engine's two-hour overlap: 30 days and 2 hours back
    since = UNTIL - timedelta(days=30, hours=2)

    [session async for session in source.sessions(since, UNTIL)]

    assert {seen.query["lastDays"] for seen in server.to(REPORTS)} == {"30"}


async def test_get_session_walks_thirty_days_of_reports(serve: Serve) -> None:
    server, source = await serve()

    session = await source.get_session(MANUAL["id"])

    assert session.record == MANUAL and session.complete
    assert [seen.query["lastDays"] for seen in server.to(REPORTS)] == ["30", "30"]
    with pytest.raises(VendorError, match="TestObject: no session report 'gone'"):
        await source.get_session("gone")


async def test_a_403_is_a_testobject_error_with_its_status(serve: Serve) -> None:
    server, source = await serve({})

    with pytest.raises(VendorError) as caught:
        await listed(source)

    assert caught.value.vendor == "TestObject" and caught.value.status == 403
    assert f"TestObject answered HTTP 403 for GET {server.url}{REPORTS}" in str(caught.value)
    assert "Access is denied" in str(caught.value)
    assert len(server.requests) == 1


async def test_a_listing_without_entities_is_a_bad_response(serve: Serve) -> None:
    _, source = await serve({"1": {"metaData": FIRST["metaData"]}})

    with pytest.raises(BadVendorResponse, match="TestObject: session reports response has no"):
        await listed(source)
