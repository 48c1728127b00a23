"""The DevRev observability simulator over real HTTP: the API as documented, and its media."""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest

from archiver_sim.devrev import DATA_PATH, LIST_PATH, DevRevSimConfig, DevRevSimulator
from tests.support.simulators import AsyncDevRevFactory

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
APP = "com.example.shop"
WEB_APP = "portal-web"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def auth(sim: DevRevSimulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {sim.config.token}"}


async def post(
    http: aiohttp.ClientSession,
    sim: DevRevSimulator,
    path: str,
    body: Any,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], Mapping[str, str]]:
    url = sim.api_url + path
    async with http.post(url, json=body, headers=auth(sim) if headers is None else headers) as r:
        return r.status, await r.json(), r.headers


async def list_page(
    http: aiohttp.ClientSession, sim: DevRevSimulator, **body: Any
) -> dict[str, Any]:
    status, page, _ = await post(
        http, sim, LIST_PATH, {"type": "mobile", "version_key": APP, **body}
    )
    assert status == 200, page
    return page


async def list_all(
    http: aiohttp.ClientSession, sim: DevRevSimulator, **body: Any
) -> tuple[list[str], int]:
    """Every session id of a listing, following ``next_cursor``, and the number of pages."""
    ids: list[str] = []
    pages, cursor = 0, None
    while True:
        extra: dict[str, Any] = {"cursor": cursor, "mode": "after"} if cursor else {}
        page = await list_page(http, sim, **body, **extra)
        pages += 1
        ids += [session["session_id"] for session in page["sessions"]]
        if "next_cursor" not in page:
            return ids, pages
        cursor = page["next_cursor"]


async def fetch(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, int | None, str]:
    sha = hashlib.sha256()
    async with http.get(url, headers=headers or {}) as response:
        async for chunk in response.content.iter_chunked(1 << 16):
            sha.update(chunk)
        return response.status, response.content_length, sha.hexdigest()


def expected(
    sim: DevRevSimulator, type_: str, version_key: str, platform: str | None = None
) -> list[str]:
    return [
        s.session_id
        for s in sim.sessions
        if s.type == type_ and s.version_key == version_key and platform in (None, s.platform)
    ]


# -- auth and validation ---------------------------------------------------------------------


async def test_missing_or_wrong_token_is_401(
    devrev_sim_async: DevRevSimulator, http: aiohttp.ClientSession
) -> None:
    sim = devrev_sim_async
    body = {"type": "mobile", "version_key": APP}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": sim.config.token}):
        status, error, response_headers = await post(http, sim, LIST_PATH, body, headers)
        assert status == 401
        assert error["type"] == "unauthenticated" and error["message"] and error["detail"]
        assert "X-Ratelimit-Limit" in response_headers


async def test_forbidden_token_is_403(
    devrev_sim_async_factory: AsyncDevRevFactory, http: aiohttp.ClientSession
) -> None:
    sim = await devrev_sim_async_factory(forbidden=True)
    for path in (LIST_PATH, DATA_PATH):
        status, error, _ = await post(http, sim, path, {"type": "mobile", "version_key": APP})
        assert (status, error["type"]) == (403, "forbidden")


@pytest.mark.parametrize(
    "body",
    [
        {"type": "mobile"},
        {"type": "mobile", "version_key": ""},
        {"version_key": APP},
        {"type": "desktop", "version_key": APP},
        {"type": "mobile", "version_key": APP, "platform": "symbian"},
        {"type": "mobile", "version_key": APP, "limit": 101},
        {"type": "mobile", "version_key": APP, "limit": 0},
        {"type": "mobile", "version_key": APP, "limit": "10"},
        {"type": "mobile", "version_key": APP, "cursor": "garbage"},
        {"type": "mobile", "version_key": APP, "cursor": "MTA6MDAwMDAwMDAwMDAwMDAwMA"},
        {"type": "mobile", "version_key": APP, "mode": "sideways"},
        {"type": "mobile", "version_key": APP, "sort_by": ["name:asc"]},
        [],
    ],
)
async def test_bad_requests_are_400(
    devrev_sim_async: DevRevSimulator, http: aiohttp.ClientSession, body: Any
) -> None:
    status, error, _ = await post(http, devrev_sim_async, LIST_PATH, body)
    assert status == 400
    assert error["type"] == "bad_request" and error["message"] and error["detail"]


async def test_limit_100_is_accepted(
    devrev_sim_async: DevRevSimulator, http: aiohttp.ClientSession
) -> None:
    page = await list_page(http, devrev_sim_async, limit=100)
    assert "next_cursor" not in page


# -- listing ---------------------------------------------------------------------------------


async def test_sessions_carry_every_documented_field(
    devrev_sim_async: DevRevSimulator, http: aiohttp.ClientSession
) -> None:
    sim = devrev_sim_async
    page = await list_page(http, sim)
    assert set(page) == {"sessions"}  # one page: neither cursor
    sessions = page["sessions"]
    assert [s["session_id"] for s in sessions] == expected(sim, "mobile", APP)
    created = [s["created_at"] for s in sessions]
    assert created == sorted(created, reverse=True)
    for session in sessions:
        assert list(session) == [
            "type", "platform", "session_id", "created_at", "device_metadata",
            "has_exception_occurred", "is_anr", "is_crash", "rage_tap", "recording_ids",
            "rev_org_id", "rev_user_id", "session_duration_ms",
        ]  # fmt: skip
        assert session["type"] == "mobile" and session["platform"] in ("android", "ios")
        assert RFC3339_MS.match(session["created_at"])
        assert set(session["device_metadata"]) == {
            "app_version", "manufacturer", "model", "network_type", "os_version",
            "plug_sdk_version", "screen_height", "screen_width", "sdk_version",
        }  # fmt: skip
        assert isinstance(session["device_metadata"]["screen_width"], int)
        assert 1 <= len(session["recording_ids"]) <= 3
        assert session["rev_org_id"].startswith("REV-")
        assert session["session_duration_ms"] > 0
        assert session == sim.record(session["session_id"])
    assert any(s["is_crash"] for s in sessions) and any(s["rage_tap"] for s in sessions)


async def test_paging_covers_every_session_once(
    devrev_sim_async_factory: AsyncDevRevFactory, http: aiohttp.ClientSession
) -> None:
    sim = await devrev_sim_async_factory(sessions=2000)
    ids, pages = await list_all(http, sim, limit=97)
    want = expected(sim, "mobile", APP)
    assert ids == want and len(set(ids)) == len(ids) == 667
    assert pages == 7
    oldest_first, _ = await list_all(http, sim, limit=100, sort_by=["created_at:asc"])
    assert oldest_first == want[::-1]


async def test_default_limit_is_50_and_before_mode_goes_back(
    devrev_sim_async_factory: AsyncDevRevFactory, http: aiohttp.ClientSession
) -> None:
    sim = await devrev_sim_async_factory(sessions=400)
    want = expected(sim, "mobile", APP)
    first = await list_page(http, sim)
    assert len(first["sessions"]) == 50 and "prev_cursor" not in first
    second = await list_page(http, sim, cursor=first["next_cursor"], mode="after")
    assert [s["session_id"] for s in second["sessions"]] == want[50:100]
    back = await list_page(http, sim, cursor=second["prev_cursor"], mode="before")
    assert [s["session_id"] for s in back["sessions"]] == want[:50]
    last = await list_page(http, sim, mode="before", limit=10)
    assert [s["session_id"] for s in last["sessions"]] == want[-10:]
    assert "next_cursor" not in last


async def test_a_cursor_belongs_to_its_query(
    devrev_sim_async_factory: AsyncDevRevFactory, http: aiohttp.ClientSession
) -> None:
    sim = await devrev_sim_async_factory(sessions=200)
    cursor = (await list_page(http, sim, limit=5))["next_cursor"]
    body = {"type": "mobile", "version_key": WEB_APP, "cursor": cursor}
    status, error, _ = await post(http, sim, LIST_PATH, body)
    assert (status, error["type"]) == (400, "bad_request")


async def test_filters_by_type_platform_and_app(
    devrev_sim_async_factory: AsyncDevRevFactory, http: aiohttp.ClientSession
) -> None:
    sim = await devrev_sim_async_factory(sessions=60, version_keys=(APP, WEB_APP, "third"))
    for type_, app, platform in [
        ("mobile", APP, "ios"),
        ("mobile", "third", "android"),
        ("web", WEB_APP, None),
        ("web", APP, "web"),
        ("mobile", APP, "web"),
    ]:
        body: dict[str, Any] = {"type": type_, "version_key": app, "limit": 100}
        if platform:
            body["platform"] = platform
        page = await list_page(http, sim, **body)
        want = expected(sim, type_, app, platform)
        assert [s["session_id"] for s in page["sessions"]] == want
        assert all(s["type"] == type_ for s in page["sessions"])
        assert (len(want) > 0) == (platform != "web" or type_ == "web")
    assert (await list_page(http, sim, version_key="unknown"))["sessions"] == []


async def test_still_recording_until_finished(
    devrev_sim_async_factory: AsyncDevRevFactory, http: aiohttp.ClientSession
) -> None:
    sim = await devrev_sim_async_factory(sessions=40, unfinished=6)
    busy = [s for s in sim.sessions[:6] if s.type == "mobile" and s.version_key == APP]
    assert busy
    page = await list_page(http, sim, limit=100)
    by_id = {s["session_id"]: s for s in page["sessions"]}
    for session in busy:
        listed = by_id[session.session_id]
        assert listed["session_duration_ms"] == 0
        assert listed["recording_ids"] == list(session.recording_ids[:1])
    assert all(s["session_duration_ms"] > 0 for s in page["sessions"][len(busy) :])
    sim.finish(busy[0].session_id)
    assert sim.record(busy[0].session_id)["session_duration_ms"] > 0
    if len(busy) > 1:
        assert sim.is_unfinished(busy[1].session_id)
    sim.finish_all()
    page = await list_page(http, sim, limit=100)
    for listed in page["sessions"]:
        assert listed["session_duration_ms"] > 0
        assert listed["recording_ids"] == list(sim.session(listed["session_id"]).recording_ids)


# -- recordings and media --------------------------------------------------------------------


async def test_data_get_returns_each_mobile_recording(
    devrev_sim_async: DevRevSimulator, http: aiohttp.ClientSession
) -> None:
    sim = devrev_sim_async
    session = next(s for s in sim.sessions if s.type == "mobile" and len(s.recording_ids) > 1)
    for recording_id in session.recording_ids:
        body = {"session_id": session.session_id, "version_key": session.version_key}
        status, document, _ = await post(
            http, sim, DATA_PATH, {**body, "recording_id": recording_id}
        )
        assert status == 200
        assert document == sim.recording(session.session_id, recording_id)
        assert document["recording_id"] == recording_id
        assert document["timeline"][0]["type"] == "screen_view"
        assert all(RFC3339_MS.match(event["timestamp"]) for event in document["timeline"])
        assert document["logs"] and document["device_metadata"] == session.device


async def test_data_get_for_web_sessions_takes_tab_id(
    devrev_sim_async: DevRevSimulator, http: aiohttp.ClientSession
) -> None:
    sim = devrev_sim_async
    session = next(s for s in sim.sessions if s.type == "web")
    tab = session.recording_ids[0]
    body = {"session_id": session.session_id, "version_key": session.version_key}
    status, document, _ = await post(http, sim, DATA_PATH, {**body, "tab_id": tab})
    assert status == 200 and document["tab_id"] == tab and "recording_id" not in document
    status, error, _ = await post(http, sim, DATA_PATH, {**body, "recording_id": tab})
    assert (status, error["type"]) == (400, "bad_request")


async def test_data_get_unknown_ids_are_404(
    devrev_sim_async: DevRevSimulator, http: aiohttp.ClientSession
) -> None:
    sim = devrev_sim_async
    session = next(s for s in sim.sessions if s.type == "mobile")
    good = {"session_id": session.session_id, "version_key": session.version_key}
    for body in (
        {**good, "recording_id": "nope"},
        {**good, "session_id": "nope", "recording_id": session.recording_ids[0]},
        {**good, "version_key": "other", "recording_id": session.recording_ids[0]},
    ):
        status, error, _ = await post(http, sim, DATA_PATH, body)
        assert (status, error["type"]) == (404, "not_found")
    status, error, _ = await post(http, sim, DATA_PATH, {"session_id": session.session_id})
    assert status == 400


async def test_media_downloads_without_auth_and_match_digests(
    devrev_sim_async: DevRevSimulator, http: aiohttp.ClientSession
) -> None:
    sim = devrev_sim_async
    documents = [
        sim.recording(s.session_id, recording_id)
        for s in sim.sessions
        for recording_id in s.recording_ids
    ]
    with_media = [d for d in documents if "media" in d]
    assert with_media and len(with_media) < len(documents)
    sim.clear_requests()
    for document in with_media:
        (media,) = document["media"]
        assert media["type"] == "video" and RFC3339_MS.match(media["expires_at"])
        url = media["url"]
        assert url.startswith(sim.files_url) and "X-Amz-Signature=" in url
        status, length, digest = await fetch(http, url)
        assert status == 200
        assert (length, digest) == sim.expected_digest(url)
    assert not any(r.carries(sim.config.token) for r in sim.requests("files"))
    tampered = with_media[0]["media"][0]["url"].replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert (await fetch(http, tampered))[0] == 403


async def test_expired_media_is_refused(
    devrev_sim_async_factory: AsyncDevRevFactory, http: aiohttp.ClientSession
) -> None:
    sim = await devrev_sim_async_factory(signed_at_ms=int(time.time() * 1000) - 2 * 3600_000)
    (file, *_) = sim.media_files(sim.sessions[0].session_id)
    assert (await fetch(http, sim.media_url(file)))[0] == 403


# -- rate limits and faults ------------------------------------------------------------------


async def test_every_nth_request_is_429_with_header_and_body_retry_after(
    devrev_sim_async_factory: AsyncDevRevFactory, http: aiohttp.ClientSession
) -> None:
    sim = await devrev_sim_async_factory(rate_limit_every=3, retry_after_header=0)
    body = {"type": "mobile", "version_key": APP}
    statuses = []
    for _ in range(6):
        status, answer, headers = await post(http, sim, LIST_PATH, body)
        statuses.append(status)
        if status == 429:
            assert headers["Retry-After"] == "0"
            assert answer["type"] == "too_many_requests" and answer["retry_after"] == 1
    assert statuses == [200, 200, 429, 200, 200, 429]


async def test_rate_window_counts_down_then_refuses(
    devrev_sim_async_factory: AsyncDevRevFactory, http: aiohttp.ClientSession
) -> None:
    sim = await devrev_sim_async_factory(rate_limit=3, rate_window_seconds=60)
    body = {"type": "mobile", "version_key": APP}
    remaining = []
    for _ in range(3):
        status, _, headers = await post(http, sim, LIST_PATH, body)
        assert status == 200
        assert headers["X-Ratelimit-Limit"] == "3"
        assert 0 < int(headers["X-Ratelimit-Reset"]) <= 60
        remaining.append(headers["X-Ratelimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    status, answer, headers = await post(http, sim, LIST_PATH, body)
    assert status == 429 and headers["X-Ratelimit-Remaining"] == "0"
    assert 0 < int(headers["Retry-After"]) == answer["retry_after"] <= 60


class SimClock:
    """Stands in for a simulator module's ``time``: the monotonic clock moves only when the
    test moves it; the wall clock is the real one."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.time = time.time

    def monotonic(self) -> float:
        return self.now


async def test_rate_window_resets(
    devrev_sim_async_factory: AsyncDevRevFactory,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = SimClock()
    monkeypatch.setattr("archiver_sim.devrev.time", clock)
    sim = await devrev_sim_async_factory(rate_limit=1, rate_window_seconds=60)
    body = {"type": "mobile", "version_key": APP}
    assert (await post(http, sim, LIST_PATH, body))[0] == 200
    clock.now += 20
    status, _, headers = await post(http, sim, LIST_PATH, body)
    assert (status, headers["Retry-After"]) == (429, "40")
    clock.now += 39
    status, _, headers = await post(http, sim, LIST_PATH, body)
    assert (status, headers["Retry-After"]) == (429, "1")
    clock.now += 1
    status, _, headers = await post(http, sim, LIST_PATH, body)
    assert (status, headers["X-Ratelimit-Remaining"]) == (200, "0")
    clock.now += 60
    assert (await post(http, sim, LIST_PATH, body))[0] == 200  # one window later


async def test_500_carries_a_unique_reference_id_and_503_is_typed(
    devrev_sim_async_factory: AsyncDevRevFactory, http: aiohttp.ClientSession
) -> None:
    sim = await devrev_sim_async_factory(fail_every=2, unavailable_every=5)
    body = {"type": "mobile", "version_key": APP}
    answers = [await post(http, sim, LIST_PATH, body) for _ in range(5)]
    assert [status for status, _, _ in answers] == [200, 500, 200, 500, 503]
    references = [answer["reference_id"] for status, answer, _ in answers if status == 500]
    assert all(answers[1][1][key] for key in ("message", "detail"))
    assert answers[1][1]["type"] == "internal_error"
    assert len(set(references)) == 2 and all(references)
    assert answers[4][1]["type"] == "service_unavailable"
    assert all("X-Ratelimit-Remaining" in headers for _, _, headers in answers)


# -- request log, determinism, thread variant ------------------------------------------------


async def test_request_log_records_headers_and_body(
    devrev_sim_async: DevRevSimulator, http: aiohttp.ClientSession
) -> None:
    sim = devrev_sim_async
    sim.clear_requests()
    await list_page(http, sim, limit=5)
    (entry,) = sim.requests("api")
    assert (entry.method, entry.path) == ("POST", LIST_PATH)
    assert entry.header("Authorization") == f"Bearer {sim.config.token}"
    assert entry.carries(sim.config.token)
    assert entry.to_json()["body"] == {"type": "mobile", "version_key": APP, "limit": 5}
    async with http.get(sim.api_url + "/_sim/requests") as response:
        logged = await response.json()
    assert logged[0]["headers"]["authorization"] == f"Bearer {sim.config.token}"
    assert len(sim.requests()) == 1


def test_same_config_gives_same_dataset() -> None:
    config = DevRevSimConfig(
        sessions=30, newest_created_ms=1_700_000_000_000, signed_at_ms=1_700_000_000_000
    )
    first, second = DevRevSimulator(config), DevRevSimulator(config)
    assert first.sessions == second.sessions
    bind = {"api": "http://127.0.0.1:1", "files": "http://127.0.0.1:2"}
    first.bind(bind)
    second.bind(bind)
    for session in first.sessions:
        for recording_id in session.recording_ids:
            document = first.recording(session.session_id, recording_id)
            assert document == second.recording(session.session_id, recording_id)
    other = DevRevSimulator(DevRevSimConfig(sessions=30, seed=8))
    assert {s.session_id for s in first.sessions}.isdisjoint(s.session_id for s in other.sessions)


def test_thread_variant_serves_a_synchronous_test(devrev_sim: DevRevSimulator) -> None:
    sim = devrev_sim
    sim.set_unfinished(sim.sessions[0].session_id)
    request = urllib.request.Request(
        sim.api_url + LIST_PATH,
        data=json.dumps({"type": "mobile", "version_key": APP}).encode(),
        headers={**auth(sim), "Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        assert json.load(response)["sessions"][0]["session_duration_ms"] == 0
    sim.finish_all()
    with opener.open(request, timeout=10) as response:
        assert json.load(response)["sessions"][0]["session_duration_ms"] > 0
