"""The DevRev source against recorded observability answers: cursors, durations, recordings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from archiver.config import HttpSettings, Secret
from archiver.errors import BadVendorResponse, VendorError
from archiver.model import Session
from archiver.sources.devrev import NO_RECORDINGS, DevRevSettings, DevRevSource
from archiver.sources.records import json_artifact
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

VENDOR = "devrev"
TOKEN = "unit-devrev-token"
BEARER = f"Bearer {TOKEN}"
APP = "com.example.shop"
LIST = "/observability.sessions.list"
DATA = "/observability.sessions.data.get"
FAST = HttpSettings(attempts=2, backoff_initial=0.01, backoff_max=0.02)

PAGE_1 = recorded(VENDOR, "sessions-list-page-1.json")
PAGE_2 = recorded(VENDOR, "sessions-list-page-2.json")
PAGE_3 = recorded(VENDOR, "sessions-list-page-3.json")
WEB_PAGE = recorded(VENDOR, "sessions-list-web.json")
PAGE_FILES = {
    None: "sessions-list-page-1.json",
    PAGE_1["next_cursor"]: "sessions-list-page-2.json",
    PAGE_2["next_cursor"]: "sessions-list-page-3.json",
}
ALL_IDS = [s["session_id"] for page in (PAGE_1, PAGE_2, PAGE_3) for s in page["sessions"]]
STILL_RECORDING = PAGE_1["sessions"][0]
WITH_MEDIA = PAGE_1["sessions"][1]
WITHOUT_RECORDINGS = PAGE_3["sessions"][0]
LONG_AGO = datetime(2022, 12, 1, tzinfo=UTC)
NOW = datetime(2023, 1, 1, 13, 0, tzinfo=UTC)

Rig = tuple[Replay, DevRevSource]
Serve = Callable[..., Awaitable[Rig]]


def vendor_answer(seen: Seen) -> web.Response:
    """What the recorded DevRev org answers; anything else is a DevRev-style 400/404."""
    body = seen.body if isinstance(seen.body, dict) else {}
    if seen.path == LIST:
        if body.get("type") == "web":
            return reply(VENDOR, "sessions-list-web.json")
        name = PAGE_FILES.get(body.get("cursor"))
        if name is None:
            return reply_json({"type": "bad_request", "message": "invalid cursor"}, status=400)
        return reply(VENDOR, name)
    if seen.path == DATA:
        recording = body.get("recording_id") or body.get("tab_id")
        if has_recording(VENDOR, f"sessions-data-{recording}.json"):
            return reply(VENDOR, f"sessions-data-{recording}.json")
    return reply_json({"type": "not_found", "message": "not found"}, status=404)


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())

        async def start(
            answer: Callable[[Seen], web.Response] = vendor_answer, **overrides: Any
        ) -> Rig:
            server = await stack.enter_async_context(replay(answer, auth=("Authorization", BEARER)))
            options: dict[str, Any] = {
                "version_keys": (APP,),
                "platform": "android",
                "page_limit": 2,
                "scope": "beta",
                **overrides,
            }
            settings = DevRevSettings(base_url=server.url, token=Secret(TOKEN), **options)
            return server, DevRevSource.create(http, settings, FAST)

        yield start


async def listed(source: DevRevSource, since: datetime) -> list[Session]:
    return [session async for session in source.sessions(since, NOW)]


async def listed_one(source: DevRevSource, record: dict[str, object]) -> Session:
    return next(s for s in await listed(source, LONG_AGO) if s.session_id == record["session_id"])


async def test_every_page_is_listed_with_the_cursor_of_the_page_before(serve: Serve) -> None:
    server, source = await serve()
    found = await listed(source, LONG_AGO)

    assert [s.session_id for s in found] == ALL_IDS
    asked = server.to(LIST)
    assert [seen.method for seen in asked] == ["POST"] * 3  # page 3 has no next_cursor: stop
    first = {
        "type": "mobile",
        "version_key": APP,
        "limit": 2,
        "sort_by": ["created_at:desc"],
        "platform": "android",
    }
    assert asked[0].body == first
    assert asked[1].body == {**first, "cursor": PAGE_1["next_cursor"], "mode": "after"}
    assert asked[2].body == {**first, "cursor": PAGE_2["next_cursor"], "mode": "after"}
    assert all(seen.headers["Authorization"] == BEARER for seen in asked)
    assert all(seen.headers["X-Devrev-Scope"] == "beta" for seen in asked)


async def test_listing_stops_at_the_first_page_wholly_before_since(serve: Serve) -> None:
    server, source = await serve()
    # Page 1 is newer than 11:00, page 2 wholly older: page 3 is never asked for.
    found = await listed(source, datetime(2023, 1, 1, 11, 0, tzinfo=UTC))

    assert [s.session_id for s in found] == [s["session_id"] for s in PAGE_1["sessions"]]
    assert [seen.body.get("cursor") for seen in server.to(LIST)] == [None, PAGE_1["next_cursor"]]


async def test_sessions_older_than_since_inside_a_page_are_left_out(serve: Serve) -> None:
    server, source = await serve()
    # Between the two sessions of page 2: its newer one is kept, and page 3 still asked.
    found = await listed(source, datetime(2023, 1, 1, 10, 0, tzinfo=UTC))

    assert [s.session_id for s in found] == ALL_IDS[:3]
    assert len(server.to(LIST)) == 3


async def test_a_session_is_complete_once_devrev_reports_its_duration(serve: Serve) -> None:
    _, source = await serve()
    found = {s.session_id: s for s in await listed(source, LONG_AGO)}

    recording = found[STILL_RECORDING["session_id"]]
    assert STILL_RECORDING["session_duration_ms"] == 0
    assert not recording.complete
    assert all(s.complete for sid, s in found.items() if sid != recording.session_id)
    assert found[WITH_MEDIA["session_id"]].started_at == datetime(
        2023, 1, 1, 11, 41, 27, 514000, tzinfo=UTC
    )
    assert {s.locator for s in found.values()} == {APP}
    assert found[WITH_MEDIA["session_id"]].record == WITH_MEDIA


async def test_artifacts_are_the_record_every_recording_and_its_media(serve: Serve) -> None:
    server, source = await serve()
    session = await listed_one(source, WITH_MEDIA)
    first, second, third = WITH_MEDIA["recording_ids"]
    media_1 = recorded(VENDOR, f"sessions-data-{first}.json")["media"]
    media_3 = recorded(VENDOR, f"sessions-data-{third}.json")["media"]

    artifacts = await source.artifacts(session)

    assert [(a.name, a.kind, a.url) for a in artifacts] == [
        ("session.json", "session_record", None),
        (f"recordings/00-{first}.json", "recording", None),
        (f"recordings/00-{first}-media/00-{first}.mp4", "recording_media", media_1[0]["url"]),
        (f"recordings/01-{second}.json", "recording", None),
        (f"recordings/02-{third}.json", "recording", None),
        (f"recordings/02-{third}-media/00-{third}.mp4", "recording_media", media_3[0]["url"]),
        (
            f"recordings/02-{third}-media/01-{third}-part2.mp4",
            "recording_media",
            media_3[1]["url"],
        ),
    ]
    assert artifacts[0] == json_artifact("session.json", "session_record", WITH_MEDIA)
    for artifact, recording_id in zip(
        (artifacts[1], artifacts[3], artifacts[4]), (first, second, third), strict=True
    ):
        assert artifact.content == recorded_bytes(VENDOR, f"sessions-data-{recording_id}.json")
        assert artifact.content_type == "application/json"
    assert [seen.body for seen in server.to(DATA)] == [
        {"session_id": WITH_MEDIA["session_id"], "version_key": APP, "recording_id": recording}
        for recording in (first, second, third)
    ]
    assert all(seen.headers["Authorization"] == BEARER for seen in server.to(DATA))
    assert source.not_offered(session) == []


async def test_a_session_without_recordings_is_its_record_alone(serve: Serve) -> None:
    server, source = await serve()
    session = await listed_one(source, WITHOUT_RECORDINGS)

    artifacts = await source.artifacts(session)

    assert artifacts == [json_artifact("session.json", "session_record", WITHOUT_RECORDINGS)]
    assert server.to(DATA) == []
    # DevRev offers nothing more for it, and the manifest says so.
    assert WITHOUT_RECORDINGS["recording_ids"] == []
    assert source.not_offered(session) == [NO_RECORDINGS]


async def test_web_sessions_are_listed_as_web_and_fetched_by_tab(serve: Serve) -> None:
    server, source = await serve(version_keys=("portal-web",), session_type="web", platform="web")
    (session,) = await listed(source, LONG_AGO)
    (tab,) = WEB_PAGE["sessions"][0]["recording_ids"]

    artifacts = await source.artifacts(session)

    assert server.to(LIST)[0].body["type"] == "web"
    assert server.to(LIST)[0].body["platform"] == "web"
    assert [seen.body for seen in server.to(DATA)] == [
        {"session_id": session.session_id, "version_key": "portal-web", "tab_id": tab}
    ]
    media = recorded(VENDOR, f"sessions-data-{tab}.json")["media"][0]["url"]
    assert [(a.name, a.kind, a.url) for a in artifacts[1:]] == [
        (f"recordings/00-{tab}.json", "recording", None),
        (f"recordings/00-{tab}-media/00-{tab}.webm", "recording_media", media),
    ]


async def test_get_session_walks_the_listing_of_its_app(serve: Serve) -> None:
    server, source = await serve()
    wanted = PAGE_2["sessions"][1]

    session = await source.get_session(wanted["session_id"], locator=APP)

    assert session.record == wanted and session.complete and session.locator == APP
    assert len(server.to(LIST)) == 2  # found on page 2: page 3 is not asked for
    with pytest.raises(VendorError, match="DevRev: no observability session 'gone'"):
        await source.get_session("gone", locator=APP)


async def test_a_403_is_a_devrev_error_with_its_status(serve: Serve) -> None:
    server, source = await serve(lambda seen: reply(VENDOR, "error-403-forbidden.json", status=403))

    with pytest.raises(VendorError) as caught:
        await listed(source, LONG_AGO)

    assert caught.value.vendor == "DevRev" and caught.value.status == 403
    assert f"DevRev answered HTTP 403 for POST {server.url}{LIST}" in str(caught.value)
    assert recorded(VENDOR, "error-403-forbidden.json")["message"] in str(caught.value)
    assert len(server.requests) == 1  # a 4xx is not retried


async def test_a_listing_without_sessions_is_a_bad_response(serve: Serve) -> None:
    broken = {"next_cursor": PAGE_1["next_cursor"], "prev_cursor": PAGE_1["prev_cursor"]}
    _, source = await serve(lambda seen: reply_json(broken))

    with pytest.raises(BadVendorResponse, match=r"DevRev: sessions\.list response has no"):
        await listed(source, LONG_AGO)
