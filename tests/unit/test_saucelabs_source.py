"""The Sauce Labs source against recorded jobs: paging, completeness, asset files, gaps.

The recordings follow the samples of Sauce Labs' "Real Device API Methods" and "Jobs API
Methods" pages (same ids and fields; listing times arranged newest first).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from archiver.config import HttpSettings, Secret, load_config
from archiver.errors import BadVendorResponse, ConfigError, NotReady
from archiver.model import Session
from archiver.sources.saucelabs import REAL_DEVICES, VIRTUAL, SauceLabsSettings, SauceLabsSource
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

VENDOR = "saucelabs"
USER = "jsmith"
ACCESS_KEY = "unit-sauce-access-key"
BASIC = "Basic " + base64.b64encode(f"{USER}:{ACCESS_KEY}".encode()).decode()
RDC_JOBS = "/v1/rdc/jobs"
VDC_JOBS = f"/rest/v1/{USER}/jobs"
FAST = HttpSettings(attempts=2, backoff_initial=0.01, backoff_max=0.02)
SINCE = datetime(2021, 4, 12, tzinfo=UTC)
UNTIL = datetime(2021, 4, 21, tzinfo=UTC)

RDC_FIRST = recorded(VENDOR, "rdc-jobs-page-1.json")
RDC_LAST = recorded(VENDOR, "rdc-jobs-page-4.json")
RDC_RUNNING, RDC_PASSED, RDC_UPLOADING = RDC_FIRST["entities"]
RDC_LIVE, RDC_TOO_OLD = RDC_LAST["entities"]
VDC_RUNNING, VDC_PERFORMANCE, VDC_CYPRESS = recorded(VENDOR, "vdc-jobs-skip-0.json")
(VDC_OLDER,) = recorded(VENDOR, "vdc-jobs-skip-3.json")

Rig = tuple[Replay, SauceLabsSource]
Serve = Callable[..., Awaitable[Rig]]
Overrides = Mapping[str, Callable[[Seen], web.Response]]


def vendor_answer(overrides: Overrides) -> Callable[[Seen], web.Response]:
    """The recorded account: listing pages by offset/skip, details and asset lists by id."""

    def answer(seen: Seen) -> web.Response:
        if seen.path in overrides:
            return overrides[seen.path](seen)
        if seen.path == RDC_JOBS:
            return reply(VENDOR, f"rdc-jobs-page-{seen.query.get('offset', '1')}.json")
        if seen.path == VDC_JOBS:
            return reply(VENDOR, f"vdc-jobs-skip-{seen.query['skip']}.json")
        job_id = seen.path.rsplit("/", 2)[-2] if seen.path.endswith("/assets") else None
        name = (
            f"vdc-assets-{job_id}.json"
            if job_id
            else f"rdc-job-{seen.path.removeprefix(RDC_JOBS + '/')}.json"
            if seen.path.startswith(RDC_JOBS + "/")
            else f"vdc-job-{seen.path.removeprefix(VDC_JOBS + '/')}.json"
        )
        if has_recording(VENDOR, name):
            return reply(VENDOR, name)
        return reply(VENDOR, "error-404.json", status=404)

    return answer


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())

        async def start(overrides: Overrides | None = None, **options: Any) -> Rig:
            server = await stack.enter_async_context(
                replay(vendor_answer(overrides or {}), auth=("Authorization", BASIC))
            )
            values: dict[str, Any] = {"username": USER, "page_limit": 3, **options}
            settings = SauceLabsSettings(base_url=server.url, token=Secret(ACCESS_KEY), **values)
            return server, SauceLabsSource.create(http, settings, FAST)

        yield start


async def listed(source: SauceLabsSource) -> list[Session]:
    return [session async for session in source.sessions(SINCE, UNTIL)]


def session_of(record: Mapping[str, Any], locator: str) -> Session:
    return Session(
        source=VENDOR,
        session_id=record["id"],
        started_at=SINCE,
        complete=True,
        record=record,
        locator=locator,
    )


# -- real devices ----------------------------------------------------------------------


async def test_real_device_pages_follow_the_offset_the_api_answers(serve: Serve) -> None:
    server, source = await serve(virtual_devices=False)

    found = await listed(source)

    assert [s.session_id for s in found] == [
        e["id"] for e in (RDC_RUNNING, RDC_PASSED, RDC_UPLOADING, RDC_LIVE)
    ]
    # The first page is asked without an offset; the next starts after metaData.offset 1
    # plus three entities. Page 4 reaches back past `since`: no fifth page, whatever
    # moreAvailable says.
    assert [seen.query for seen in server.to(RDC_JOBS)] == [
        {"limit": "3"},
        {"limit": "3", "offset": "4"},
    ]
    assert all(seen.headers["Authorization"] == BASIC for seen in server.requests)
    assert {s.locator for s in found} == {REAL_DEVICES}


async def test_zero_based_offsets_are_followed_too(serve: Serve) -> None:
    pages = {
        "0": {**RDC_FIRST, "metaData": {**RDC_FIRST["metaData"], "offset": 0}},
        "3": {**RDC_LAST, "metaData": {**RDC_LAST["metaData"], "offset": 3}},
    }

    def zero_based(seen: Seen) -> web.Response:
        return reply_json(pages[seen.query.get("offset", "0")])

    server, source = await serve({RDC_JOBS: zero_based}, virtual_devices=False)

    assert len(await listed(source)) == 4
    assert [seen.query.get("offset") for seen in server.to(RDC_JOBS)] == [None, "3"]


async def test_moreavailable_false_ends_the_real_device_listing(serve: Serve) -> None:
    last_page = {**RDC_FIRST, "metaData": {**RDC_FIRST["metaData"], "moreAvailable": False}}
    server, source = await serve(
        {RDC_JOBS: lambda _seen: reply_json(last_page)}, virtual_devices=False
    )

    found = await listed(source)

    assert len(found) == 3
    assert len(server.to(RDC_JOBS)) == 1


async def test_a_real_device_job_is_complete_once_it_has_ended(serve: Serve) -> None:
    _, source = await serve(virtual_devices=False)

    found = {s.session_id: s for s in await listed(source)}

    assert RDC_RUNNING["end_time"] is None
    assert not found[RDC_RUNNING["id"]].complete
    assert found[RDC_PASSED["id"]].complete
    assert found[RDC_PASSED["id"]].started_at == datetime(2021, 4, 13, 3, 5, 45, 280000, UTC)
    assert found[RDC_PASSED["id"]].record == RDC_PASSED


async def test_real_device_assets_are_the_urls_of_the_job_details(serve: Serve) -> None:
    _, source = await serve()
    session = session_of(RDC_PASSED, REAL_DEVICES)
    details = recorded(VENDOR, "rdc-job-293d84fb2f634ff29a750c3f8eaee592.json")

    artifacts = await source.artifacts(session)

    assert [(a.name, a.kind, a.url) for a in artifacts] == [
        ("job.json", "job_record", None),
        ("video.mp4", "video", details["video_url"]),
        ("device.log", "device_log", details["device_log_url"]),
        ("appium-server.log", "appium_log", details["framework_log_url"]),
        ("appium-requests.json", "appium_requests", details["requests_url"]),
    ]
    assert artifacts[0].content == recorded_bytes(
        VENDOR, "rdc-job-293d84fb2f634ff29a750c3f8eaee592.json"
    )
    notes = source.not_offered(session)
    assert "network.har: network capture was not enabled for this job" in notes
    assert "screenshots: none listed for this job (none taken)" in notes
    assert not any(note.startswith("Appium log") for note in notes)


async def test_network_capture_crash_log_and_insights_of_a_live_job(serve: Serve) -> None:
    _, source = await serve()
    session = session_of(RDC_LIVE, REAL_DEVICES)

    artifacts = await source.artifacts(session)

    assert [(a.name, a.kind) for a in artifacts] == [
        ("job.json", "job_record"),
        ("video.mp4", "video"),
        ("device.log", "device_log"),
        ("network.har", "network_capture"),
        ("crash.json", "crash_log"),
        ("insights.json", "insights"),
    ]
    notes = source.not_offered(session)
    assert not any("network.har" in note for note in notes)
    assert "Appium log: none (framework_log_url is null; automation backend not Appium)" in notes


async def test_listed_screenshots_come_as_the_documented_zip(serve: Serve) -> None:
    path = f"{RDC_JOBS}/{RDC_PASSED['id']}"
    details = recorded(VENDOR, f"rdc-job-{RDC_PASSED['id']}.json")
    with_shots = {**details, "screenshots": ["0000screenshot.png", "0001screenshot.png"]}
    server, source = await serve({path: lambda _seen: reply_json(with_shots)})

    artifacts = await source.artifacts(session_of(RDC_PASSED, REAL_DEVICES))

    assert artifacts[-1].name == "screenshots.zip"
    assert artifacts[-1].url == f"{server.url}{path}/screenshots.zip"


async def test_a_recorded_video_not_uploaded_yet_holds_the_job_back(serve: Serve) -> None:
    _, source = await serve()

    with pytest.raises(NotReady, match="no video yet"):
        await source.artifacts(session_of(RDC_UPLOADING, REAL_DEVICES))


async def test_a_real_device_listing_without_entities_is_refused(serve: Serve) -> None:
    _, source = await serve({RDC_JOBS: lambda _seen: reply_json({"metaData": {}})})

    with pytest.raises(BadVendorResponse, match="no 'entities' list"):
        await listed(source)


# -- virtual devices and desktop browsers ------------------------------------------------


async def test_virtual_jobs_are_asked_by_time_window_and_skip(serve: Serve) -> None:
    server, source = await serve(real_devices=False)

    found = await listed(source)

    assert [s.session_id for s in found] == [
        j["id"] for j in (VDC_RUNNING, VDC_PERFORMANCE, VDC_CYPRESS, VDC_OLDER)
    ]
    window = {"from": "1618185600", "to": "1618963201", "limit": "3", "full": "true"}
    assert [seen.query for seen in server.to(VDC_JOBS)] == [
        {**window, "skip": "0"},
        {**window, "skip": "3"},  # a short page (one job of three) is the last
    ]
    assert {s.locator for s in found} == {VIRTUAL}


async def test_a_virtual_job_is_complete_once_it_has_ended(serve: Serve) -> None:
    _, source = await serve(real_devices=False)

    found = {s.session_id: s for s in await listed(source)}

    assert not found[VDC_RUNNING["id"]].complete
    assert found[VDC_CYPRESS["id"]].complete
    assert found[VDC_CYPRESS["id"]].started_at == datetime(2021, 4, 19, 19, 34, 22, tzinfo=UTC)


async def test_every_listed_asset_is_downloaded_once_through_the_api(serve: Serve) -> None:
    server, source = await serve()
    session = session_of(VDC_CYPRESS, VIRTUAL)
    job = f"{VDC_JOBS}/{VDC_CYPRESS['id']}"

    artifacts = await source.artifacts(session)

    assert [(a.name, a.kind) for a in artifacts] == [
        ("job.json", "job_record"),
        ("assets.json", "asset_list"),
        ("automator.log", "automator_log"),
        ("network.har", "network_capture"),
        ("video.mp4", "video"),  # listed as "video" and "video.mp4": fetched once
        ("selenium-server.log", "selenium_log"),
        ("performance.json", "performance"),
        ("log.json", "sauce_log"),
        ("0000screenshot.png", "screenshot"),
        ("0001screenshot.png", "screenshot"),
        ("0002screenshot.png", "screenshot"),
    ]
    assert all(a.url == f"{server.url}{job}/assets/{a.name}" for a in artifacts[2:])
    assert artifacts[1].content == recorded_bytes(VENDOR, f"vdc-assets-{VDC_CYPRESS['id']}.json")
    assert source.not_offered(session) == []


async def test_capabilities_that_turned_assets_off_are_said(serve: Serve) -> None:
    _, source = await serve()
    session = session_of(VDC_PERFORMANCE, VIRTUAL)

    names = [a.name for a in await source.artifacts(session)]

    assert "log.json" not in names and "network.har" not in names
    assert source.not_offered(session) == [
        "screenshots: none (recordScreenshots capability false)",
        "log.json: not recorded (recordLogs capability false)",
        "network.har: recorded only with extendedDebugging (extendedDebugging not set)",
    ]


async def test_an_ended_job_whose_assets_are_not_listed_is_held_back(serve: Serve) -> None:
    _, source = await serve()

    with pytest.raises(NotReady, match="assets are not listed yet"):
        await source.artifacts(session_of(VDC_OLDER, VIRTUAL))


# -- finding one job again ----------------------------------------------------------------


async def test_a_job_without_locator_is_looked_up_on_both_clouds(serve: Serve) -> None:
    server, source = await serve()

    session = await source.get_session(VDC_CYPRESS["id"])

    assert session.locator == VIRTUAL
    assert session.record == VDC_CYPRESS
    assert [seen.path for seen in server.requests] == [
        f"{RDC_JOBS}/{VDC_CYPRESS['id']}",
        f"{VDC_JOBS}/{VDC_CYPRESS['id']}",
    ]
    real = await source.get_session(RDC_PASSED["id"], locator=REAL_DEVICES)
    assert (real.locator, real.complete) == (REAL_DEVICES, True)


# -- configuration --------------------------------------------------------------------------


def write_config(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "archiver.toml"
    path.write_text(
        '[store]\nurl = "file:///tmp/evidence"\n[state]\nurl = "sqlite:////tmp/state.db"\n'
        f"[sources.saucelabs]\n{table}"
    )
    return path


@pytest.mark.parametrize(
    "base_url",
    [
        "https://api.us-west-1.saucelabs.com",
        "https://api.eu-central-1.saucelabs.com/",
        "https://api.us-east-4.saucelabs.com",
        "http://127.0.0.1:8080",
    ],
)
def test_regional_origins_are_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_url: str
) -> None:
    monkeypatch.setenv("SAUCE_ACCESS_KEY", ACCESS_KEY)
    monkeypatch.setenv("SAUCE_USERNAME", "from-env")

    settings = load_config(write_config(tmp_path, f'base_url = "{base_url}"\n')).sources[VENDOR]

    assert isinstance(settings, SauceLabsSettings)
    assert settings.base_url == base_url.rstrip("/")
    assert settings.username == "from-env"
    assert settings.token.reveal() == ACCESS_KEY


@pytest.mark.parametrize(
    ("table", "key", "message"),
    [
        (
            'base_url = "https://api.ap-south-9.saucelabs.com"\nusername = "u"\n',
            "base_url",
            "one of",
        ),
        ('base_url = "http://api.us-west-1.saucelabs.com"\nusername = "u"\n', "base_url", "one of"),
        ('base_url = "https://saucelabs.com"\nusername = "u"\n', "base_url", "one of"),
        ('base_url = "https://api.us-west-1.saucelabs.com"\n', "username", "SAUCE_USERNAME"),
        (
            'base_url = "https://api.us-west-1.saucelabs.com"\nusername = "u"\n'
            "real_devices = false\nvirtual_devices = false\n",
            "real_devices",
            "both false",
        ),
    ],
)
def test_configuration_mistakes_name_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str, key: str, message: str
) -> None:
    monkeypatch.setenv("SAUCE_ACCESS_KEY", ACCESS_KEY)
    monkeypatch.delenv("SAUCE_USERNAME", raising=False)
    path = write_config(tmp_path, table)

    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path)

    assert caught.value.key == f"sources.saucelabs.{key}"
    assert str(path) in str(caught.value)
