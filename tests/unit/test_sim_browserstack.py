"""The BrowserStack simulator over real HTTP: builds and sessions pages, details, logs, videos."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from archiver_sim.browserstack import BrowserStackSimConfig, BrowserStackSimulator
from tests.support.simulators import AsyncSimFactory

Factory = AsyncSimFactory[BrowserStackSimulator]

APP_SESSION_KEYS = {
    "name", "duration", "os", "os_version", "browser_version", "browser", "device", "status",
    "hashed_id", "reason", "build_name", "project_name", "build_hashed_id",
    "browserstack_status", "created_at", "logs", "browser_url", "public_url",
    "appium_logs_url", "video_url", "device_logs_url", "network_logs_url", "app_details",
}  # fmt: skip
WEB_SESSION_KEYS = (
    APP_SESSION_KEYS - {"appium_logs_url", "device_logs_url", "network_logs_url", "app_details"}
) | {"selenium_logs_url", "browser_console_logs_url", "har_logs_url"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def auth(sim: BrowserStackSimulator) -> dict[str, str]:
    pair = f"{sim.config.username}:{sim.config.access_key}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


async def get_json(
    http: aiohttp.ClientSession, sim: BrowserStackSimulator, path: str, **query: str
) -> Any:
    async with http.get(sim.api_url + path, params=query, headers=auth(sim)) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_requests_without_the_access_key_are_refused(
    browserstack_sim_async: BrowserStackSimulator, http: aiohttp.ClientSession
) -> None:
    sim = browserstack_sim_async
    wrong = {"Authorization": "Basic " + base64.b64encode(b"sim_user_Xk3d9:nope").decode()}
    for headers in ({}, wrong):
        async with http.get(f"{sim.api_url}/automate/builds.json", headers=headers) as response:
            assert response.status == 401
            assert await response.text() == "HTTP Basic: Access denied.\n"


async def test_builds_page_newest_first_with_limit_and_offset(
    browserstack_sim_async_factory: Factory, http: aiohttp.ClientSession
) -> None:
    sim = await browserstack_sim_async_factory(sessions_per_product=30, sessions_per_build=2)

    default = await get_json(http, sim, "/app-automate/builds.json")
    pages = [
        await get_json(http, sim, "/app-automate/builds.json", limit="4", offset=str(offset))
        for offset in range(0, 16, 4)
    ]

    assert len(default) == 10
    listed = [entry["automation_build"]["hashed_id"] for page in pages for entry in page]
    assert listed == [b.hashed_id for b in sim.dataset.builds["app-automate"]]
    assert [len(page) for page in pages] == [4, 4, 4, 3]
    build = pages[0][0]["automation_build"]
    assert set(build) == {"name", "duration", "status", "hashed_id", "build_tag"}
    assert build["status"] in ("done", "failed", "timeout")
    async with http.get(
        f"{sim.api_url}/app-automate/builds.json", params={"limit": "101"}, headers=auth(sim)
    ) as response:
        assert response.status == 422


async def test_status_filters_builds_and_sessions(
    browserstack_sim_async_factory: Factory, http: aiohttp.ClientSession
) -> None:
    sim = await browserstack_sim_async_factory(sessions_per_product=8, unfinished=1)
    newest = sim.dataset.builds["automate"][0]

    running = await get_json(http, sim, "/automate/builds.json", status="running")
    sessions = await get_json(
        http, sim, f"/automate/builds/{newest.hashed_id}/sessions.json", status="running"
    )

    assert [e["automation_build"]["hashed_id"] for e in running] == [newest.hashed_id]
    assert [e["automation_session"]["hashed_id"] for e in sessions] == [
        newest.sessions[0].hashed_id
    ]


async def test_sessions_of_a_build_and_their_details_carry_the_documented_fields(
    browserstack_sim_async: BrowserStackSimulator, http: aiohttp.ClientSession
) -> None:
    sim = browserstack_sim_async
    for product, keys in (("app-automate", APP_SESSION_KEYS), ("automate", WEB_SESSION_KEYS)):
        build = sim.dataset.builds[product][-1]
        page = await get_json(http, sim, f"/{product}/builds/{build.hashed_id}/sessions.json")
        assert [e["automation_session"]["hashed_id"] for e in page] == [
            s.hashed_id for s in build.sessions
        ]
        for entry in page:
            record = entry["automation_session"]
            assert set(record) == keys
            details = await get_json(http, sim, f"/{product}/sessions/{record['hashed_id']}.json")
            assert details == {"automation_session": record}
            assert record["build_hashed_id"] == build.hashed_id
            assert record["created_at"].endswith(".000Z")


async def test_unknown_builds_and_sessions_are_404(
    browserstack_sim_async: BrowserStackSimulator, http: aiohttp.ClientSession
) -> None:
    sim = browserstack_sim_async
    app_session = sim.dataset.builds["app-automate"][0].sessions[0].hashed_id
    for path in (
        "/automate/builds/nope/sessions.json",
        "/automate/sessions/nope.json",
        f"/automate/sessions/{app_session}.json",  # another product's session
    ):
        async with http.get(sim.api_url + path, headers=auth(sim)) as response:
            assert response.status == 404, path
            assert "not found" in (await response.json())["message"]


async def test_running_sessions_have_no_video_until_finished(
    browserstack_sim_async_factory: Factory, http: aiohttp.ClientSession
) -> None:
    sim = await browserstack_sim_async_factory(unfinished=2, no_video_every=0)
    running = sim.dataset.builds["automate"][0].sessions[0].hashed_id

    before = sim.record(running)
    sim.finish(running)
    after = sim.record(running)

    assert before["status"] == before["browserstack_status"] == "running"
    assert before["duration"] is None and before["video_url"] is None
    assert after["browserstack_status"] in ("done", "error", "timeout")
    assert after["video_url"] and isinstance(after["duration"], int)
    assert len(sim.session_ids()) - len(sim.session_ids(finished_only=True)) == 3


async def test_logs_are_served_on_the_api_origin_and_uncaptured_ones_are_null(
    browserstack_sim_async_factory: Factory, http: aiohttp.ClientSession
) -> None:
    sim = await browserstack_sim_async_factory(network_logs_every=2)
    for session_id in sim.session_ids():
        record = sim.record(session_id)
        files = sim.files(session_id)
        for name, body in files.items():
            if name == "video_url":
                continue
            assert record[name].startswith(sim.api_url)
            async with http.get(record[name]) as refused:
                assert refused.status == 401
            async with http.get(record[name], headers=auth(sim)) as response:
                assert response.status == 200
                data = await response.read()
            assert hashlib.sha256(data).hexdigest() == body.sha256()
            if name in ("network_logs_url", "har_logs_url"):
                assert json.loads(data)["log"]["version"] == "1.2"
        for name in set(record) - set(files):
            if name.endswith("_url") and name not in ("browser_url", "public_url"):
                assert record[name] is None, name


async def test_videos_come_from_the_files_origin_without_credentials(
    browserstack_sim_async: BrowserStackSimulator, http: aiohttp.ClientSession
) -> None:
    sim = browserstack_sim_async
    session_id = next(s for s in sim.session_ids() if "video_url" in sim.files(s))
    url = sim.record(session_id)["video_url"]
    assert url.startswith(sim.files_url)

    async with http.get(url, allow_redirects=False) as link:
        assert link.status == 302
        signed = link.headers["Location"]
    async with http.get(url, headers=auth(sim)) as with_key:
        assert with_key.status == 400
        assert "InvalidArgument" in await with_key.text()
    async with http.get(url.split("?")[0]) as unsigned:
        assert unsigned.status == 403
    async with http.get(sim.files_url + signed) as video:
        assert video.status == 200 and video.content_type == "video/mp4"
        data = await video.read()
    assert hashlib.sha256(data).hexdigest() == sim.files(session_id)["video_url"].sha256()
    assert {request.origin for request in sim.requests()} == {"files"}


async def test_a_session_added_to_an_old_build_keeps_the_build_in_its_place(
    browserstack_sim_async: BrowserStackSimulator, http: aiohttp.ClientSession
) -> None:
    sim = browserstack_sim_async
    order = [b.hashed_id for b in sim.dataset.builds["app-automate"]]
    oldest = order[-1]

    added = sim.add_session(oldest, unfinished=True)

    builds = await get_json(http, sim, "/app-automate/builds.json")
    assert [e["automation_build"]["hashed_id"] for e in builds] == order
    assert builds[-1]["automation_build"]["status"] == "running"
    page = await get_json(http, sim, f"/app-automate/builds/{oldest}/sessions.json")
    first = page[0]["automation_session"]
    assert first["hashed_id"] == added.hashed_id and first["browserstack_status"] == "running"
    created = datetime.fromisoformat(first["created_at"].replace("Z", "+00:00"))
    assert datetime.now(UTC) - created < timedelta(minutes=1)
    with pytest.raises(KeyError):
        sim.add_session("no-such-build")


async def test_every_nth_request_is_rate_limited(
    browserstack_sim_async_factory: Factory, http: aiohttp.ClientSession
) -> None:
    sim = await browserstack_sim_async_factory(rate_limit_every=3)
    statuses = []
    for _ in range(6):
        async with http.get(f"{sim.api_url}/automate/builds.json", headers=auth(sim)) as response:
            statuses.append(response.status)
    assert statuses == [200, 200, 429, 200, 200, 429]


@pytest.mark.parametrize(
    "overrides",
    [{"sessions_per_build": 0}, {"products": ("live",)}, {"username": "a:b"}, {"unfinished": -1}],
)
def test_config_refuses_impossible_accounts(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        BrowserStackSimConfig(**overrides)
