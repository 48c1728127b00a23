"""The Ekran source against recorded session lists: windows, page indexes, finished sessions."""

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
from archiver.sources.ekran import NO_RECORDINGS, EkranSettings, EkranSource
from archiver.sources.records import json_artifact
from tests.unit.vendor_replay import (
    Replay,
    Seen,
    has_recording,
    recorded,
    replay,
    reply,
    reply_json,
)

VENDOR = "ekran"
TOKEN = "unit-ekran-token"
HEADER = "X-Ekran-Token"
SESSIONS = "/ekranapi/sessions"
FAST = HttpSettings(attempts=2, backoff_initial=0.01, backoff_max=0.02)

PAGES = [recorded(VENDOR, f"sessions-page-{index}.json") for index in range(3)]
RECORDS = {str(record["sessionId"]): record for page in PAGES for record in page["sessions"]}
# 1041 started before SINCE and 1045 after the settled end (UNTIL less settle_minutes).
SINCE = datetime(2021, 4, 1, tzinfo=UTC)
UNTIL = datetime(2021, 4, 2, 1, 0, tzinfo=UTC)
IN_RANGE = ["1042", "1043", "1044"]

Rig = tuple[Replay, EkranSource]
Serve = Callable[..., Awaitable[Rig]]


def vendor_answer(seen: Seen) -> web.Response:
    """The recorded database, page by ``pageIndex`` whatever the window (the source keeps
    the sessions that started inside it)."""
    body = seen.body if isinstance(seen.body, dict) else {}
    if seen.path != SESSIONS or seen.method != "POST":
        return web.Response(status=404)
    if body.get("sessionCount", 1000) > 1000:
        return reply(VENDOR, "error-400-session-count.json", status=400)
    name = f"sessions-page-{body.get('pageIndex', 0)}.json"
    if has_recording(VENDOR, name):
        return reply(VENDOR, name)
    return reply_json({"sessions": [], "totalCount": PAGES[0]["totalCount"]})


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())

        async def start(
            answer: Callable[[Seen], web.Response] = vendor_answer, **overrides: Any
        ) -> Rig:
            server = await stack.enter_async_context(replay(answer, auth=(HEADER, TOKEN)))
            options: dict[str, Any] = {"session_count": 2, **overrides}
            settings = EkranSettings(base_url=server.url, token=Secret(TOKEN), **options)
            return server, EkranSource.create(http, settings, FAST)

        yield start


async def listed(source: EkranSource) -> list[Session]:
    return [session async for session in source.sessions(SINCE, UNTIL)]


async def test_a_padded_window_is_paged_by_index_until_total_count(serve: Serve) -> None:
    server, source = await serve()

    found = await listed(source)

    assert [s.session_id for s in found] == IN_RANGE
    # One window [SINCE, UNTIL - 60 min] asked for with 24 h on both sides, in local
    # times without a zone; 3 pages of 2 cover the total of 5, so no page 3.
    assert [seen.body for seen in server.requests] == [
        {
            "start": "2021-03-31T00:00:00",
            "end": "2021-04-03T00:00:00",
            "sessionCount": 2,
            "pageIndex": index,
        }
        for index in range(3)
    ]
    assert all(seen.method == "POST" and seen.path == SESSIONS for seen in server.requests)
    assert all(seen.headers[HEADER] == TOKEN for seen in server.requests)


async def test_long_ranges_are_cut_into_windows_and_each_session_is_kept_once(serve: Serve) -> None:
    server, source = await serve(window_hours=12)

    found = await listed(source)

    assert [s.session_id for s in found] == IN_RANGE
    windows = [(seen.body["start"], seen.body["end"]) for seen in server.requests]
    morning = ("2021-03-31T00:00:00", "2021-04-02T12:00:00")  # [00:00, 12:00] padded
    evening = ("2021-03-31T12:00:00", "2021-04-03T00:00:00")  # [12:00, 24:00] padded
    assert windows == [morning] * 3 + [evening] * 3
    assert [seen.body["pageIndex"] for seen in server.requests] == [0, 1, 2] * 2


async def test_a_session_is_complete_once_finished(serve: Serve) -> None:
    _, source = await serve()

    found = {s.session_id: s for s in await listed(source)}

    assert not found["1044"].complete and RECORDS["1044"]["isFinished"] is False
    assert found["1042"].complete and found["1043"].complete
    assert found["1042"].started_at == datetime(2021, 4, 1, 8, 2, 11, 500000, tzinfo=UTC)
    assert found["1042"].record == RECORDS["1042"]
    assert found["1042"].record["duration"] == "20:20:40.0020000"
    assert found["1043"].locator == "2021-04-01T13:45:09.3"


async def test_the_record_is_the_only_artifact_and_recordings_are_said_missing(
    serve: Serve,
) -> None:
    server, source = await serve()
    session = next(s for s in await listed(source) if s.session_id == "1042")
    requests_before = len(server.requests)

    artifacts = await source.artifacts(session)

    assert artifacts == [json_artifact("session.json", "session_record", RECORDS["1042"])]
    assert len(server.requests) == requests_before
    assert source.not_offered(session) == [NO_RECORDINGS]


async def test_get_session_looks_a_day_either_side_of_its_start(serve: Serve) -> None:
    server, source = await serve()

    session = await source.get_session("1043", locator=RECORDS["1043"]["startTime"])

    assert session.record == RECORDS["1043"] and session.complete
    assert [seen.body for seen in server.requests] == [
        {
            "start": "2021-03-31T13:45:09",
            "end": "2021-04-02T13:45:09",
            "sessionCount": 2,
            "pageIndex": index,
        }
        for index in range(2)  # found on page 1: page 2 is not asked for
    ]


async def test_get_session_without_a_start_asks_nothing(serve: Serve) -> None:
    server, source = await serve()

    with pytest.raises(VendorError, match="Ekran: session '1043' was never seen"):
        await source.get_session("1043")
    assert server.requests == []


async def test_a_400_is_an_ekran_error_with_its_status(serve: Serve) -> None:
    server, source = await serve(session_count=1001)

    with pytest.raises(VendorError) as caught:
        await listed(source)

    assert caught.value.vendor == "Ekran" and caught.value.status == 400
    assert f"Ekran answered HTTP 400 for POST {server.url}{SESSIONS}" in str(caught.value)
    # ASP.NET Core's problem details: the title and each field's messages, in one line.
    assert str(caught.value).endswith(
        ": One or more validation errors occurred.: SessionCount: The field SessionCount "
        "must be between 0 and 1000."
    )
    assert len(server.requests) == 1


async def test_a_list_without_sessions_is_a_bad_response(serve: Serve) -> None:
    _, source = await serve(lambda seen: reply_json({"totalCount": 5}))

    with pytest.raises(BadVendorResponse, match="Ekran: sessions response has no 'sessions'"):
        await listed(source)
