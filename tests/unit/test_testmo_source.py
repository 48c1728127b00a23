"""The Testmo source against recorded session listings: pages, closed sessions, expands."""

from __future__ import annotations

import re
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
from archiver.sources.records import json_artifact
from archiver.sources.testmo import NO_FILES, TestmoSettings, TestmoSource
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

VENDOR = "testmo"
TOKEN = "unit-testmo-token"
BEARER = f"Bearer {TOKEN}"
FAST = HttpSettings(attempts=2, backoff_initial=0.01, backoff_max=0.02)
LISTING = re.compile(r"/api/v1/projects/(\d+)/sessions")
ONE = re.compile(r"/api/v1/sessions/(\d+)")
ALL_EXPANDS = "configs,field_values,issues,milestones,states,statuses,templates,users"

PROJECT_1 = [
    *recorded(VENDOR, "sessions-project-1-page-1.json")["result"],
    *recorded(VENDOR, "sessions-project-1-page-2.json")["result"],
]
PROJECT_5 = recorded(VENDOR, "sessions-project-5-page-1.json")["result"]
OPEN = {record["id"] for record in [*PROJECT_1, *PROJECT_5] if record["closed_at"] is None}
# The document's own example filter: sessions created after 2023-02-15T00:00:00.000Z.
SINCE = datetime(2023, 2, 15, tzinfo=UTC)
UNTIL = datetime(2023, 2, 18, tzinfo=UTC)

Rig = tuple[Replay, TestmoSource]
Serve = Callable[..., Awaitable[Rig]]


def vendor_answer(seen: Seen) -> web.Response:
    """The recorded Testmo instance: two projects (1 and 5), sessions 1 and 2 in full."""
    listing, one = LISTING.fullmatch(seen.path), ONE.fullmatch(seen.path)
    if listing:
        if seen.query.get("per_page") not in ("15", "25", "50", "100"):
            return reply(VENDOR, "error-422-per-page.json", status=422)
        name = f"sessions-project-{listing[1]}-page-{seen.query.get('page', '1')}.json"
        if has_recording(VENDOR, name) and "is_closed" not in seen.query:
            return reply(VENDOR, name)
        if has_recording(VENDOR, name):  # the recorded page, sessions of the other state left out
            page = recorded(VENDOR, name)
            closed = seen.query["is_closed"] == "1"
            kept = [r for r in page["result"] if (r["closed_at"] is not None) == closed]
            return reply_json({**page, "result": kept})
    if one and seen.query.get("expands") == ALL_EXPANDS and one[1] == "2":
        return reply(VENDOR, "session-2-expands.json")
    if one and not seen.query and has_recording(VENDOR, f"session-{one[1]}.json"):
        return reply(VENDOR, f"session-{one[1]}.json")
    return reply_json({"message": "Not found."}, status=404)


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())

        async def start(
            answer: Callable[[Seen], web.Response] = vendor_answer, **overrides: Any
        ) -> Rig:
            server = await stack.enter_async_context(replay(answer, auth=("Authorization", BEARER)))
            options: dict[str, Any] = {"project_ids": (1, 5), "per_page": 15, **overrides}
            settings = TestmoSettings(base_url=server.url, token=Secret(TOKEN), **options)
            return server, TestmoSource.create(http, settings, FAST)

        yield start


async def listed(source: TestmoSource) -> list[Session]:
    return [session async for session in source.sessions(SINCE, UNTIL)]


async def test_every_page_of_every_project_is_listed_until_next_page_is_null(serve: Serve) -> None:
    server, source = await serve()

    found = await listed(source)

    closed_first = [r for r in PROJECT_1 if r["is_closed"]] + [
        r for r in PROJECT_1 if r["id"] in OPEN
    ]
    assert [s.session_id for s in found] == [str(r["id"]) for r in [*closed_first, *PROJECT_5]]
    asked = [seen for seen in server.requests if LISTING.fullmatch(seen.path)]
    assert [(seen.path, seen.query["is_closed"], seen.query["page"]) for seen in asked] == [
        ("/api/v1/projects/1/sessions", "1", "1"),
        ("/api/v1/projects/1/sessions", "1", "2"),
        ("/api/v1/projects/1/sessions", "0", "1"),
        ("/api/v1/projects/1/sessions", "0", "2"),
        ("/api/v1/projects/5/sessions", "1", "1"),
        ("/api/v1/projects/5/sessions", "0", "1"),
    ]
    closed = {
        "per_page": "15",
        "is_closed": "1",
        "closed_after": "2023-02-15T00:00:00.000Z",
        "sort": "sessions:closed_at",
        "order": "asc",
    }
    still_open = {
        "per_page": "15",
        "is_closed": "0",
        "created_after": "2023-02-15T00:00:00.000Z",
        "sort": "sessions:created_at",
        "order": "asc",
    }
    assert all(
        {k: v for k, v in seen.query.items() if k != "page"}
        == (closed if seen.query["is_closed"] == "1" else still_open)
        for seen in asked
    )
    assert all(seen.method == "GET" and seen.headers["Authorization"] == BEARER for seen in asked)


async def test_sessions_are_found_by_when_they_closed_not_when_they_were_created(
    serve: Serve,
) -> None:
    # Session 2 was created at 11:45 and closed at 13:32: a pass since 12:00 finds it.
    noon = datetime(2023, 2, 15, 12, tzinfo=UTC)

    def closed_after_noon(seen: Seen) -> web.Response:
        if seen.query.get("closed_after") == "2023-02-15T12:00:00.000Z":
            return reply_json(
                {**recorded(VENDOR, "sessions-project-5-page-1.json"), "result": [PROJECT_1[1]]}
            )
        return reply_json({**recorded(VENDOR, "sessions-project-5-page-1.json"), "result": []})

    _, source = await serve(closed_after_noon, project_ids=(1,))

    found = [session.session_id async for session in source.sessions(noon, UNTIL)]

    assert PROJECT_1[1]["created_at"] < "2023-02-15T12" < PROJECT_1[1]["closed_at"]
    assert found == ["2"]


async def test_a_session_is_complete_once_closed(serve: Serve) -> None:
    _, source = await serve()

    found = {s.session_id: s for s in await listed(source)}

    assert sorted(OPEN) == [1, 17]
    assert {sid for sid, s in found.items() if not s.complete} == {"1", "17"}
    first = found["1"]
    assert first.record == PROJECT_1[0] and first.record["is_closed"] is False
    assert first.started_at == datetime(2023, 2, 15, 8, 54, 4, tzinfo=UTC)
    assert {s.locator for s in found.values()} == {"1", "5"}
    assert found["19"].locator == "5"


async def test_artifacts_are_the_listed_record_and_the_record_with_every_expand(
    serve: Serve,
) -> None:
    server, source = await serve()
    session = next(s for s in await listed(source) if s.session_id == "2")

    artifacts = await source.artifacts(session)

    assert [(a.name, a.kind, a.url) for a in artifacts] == [
        ("session.json", "session_record", None),
        ("session-with-expands.json", "session_full_record", None),
    ]
    assert artifacts[0] == json_artifact("session.json", "session_record", PROJECT_1[1])
    assert artifacts[1].content == recorded_bytes(VENDOR, "session-2-expands.json")
    assert artifacts[1].content_type == "application/json"
    (asked,) = server.to("/api/v1/sessions/2")
    assert asked.query == {"expands": ALL_EXPANDS}
    assert asked.headers["Authorization"] == BEARER
    assert source.not_offered(session) == [NO_FILES]


async def test_without_expands_the_full_record_is_asked_plainly(serve: Serve) -> None:
    server, source = await serve(expands=())
    session = next(s for s in await listed(source) if s.session_id == "1")

    artifacts = await source.artifacts(session)

    assert artifacts[1].content == recorded_bytes(VENDOR, "session-1.json")
    assert [seen.query for seen in server.to("/api/v1/sessions/1")] == [{}]


async def test_get_session_reads_the_single_session_call(serve: Serve) -> None:
    server, source = await serve()

    session = await source.get_session("1", locator="1")

    assert session.record == recorded(VENDOR, "session-1.json")["result"]
    assert not session.complete and session.locator == "1"
    assert [seen.path for seen in server.requests] == ["/api/v1/sessions/1"]


async def test_a_422_is_a_testmo_error_with_its_status(serve: Serve) -> None:
    server, source = await serve(per_page=20)  # Testmo takes 15, 25, 50 or 100

    with pytest.raises(VendorError) as caught:
        await listed(source)

    assert caught.value.vendor == "Testmo" and caught.value.status == 422
    path = "/api/v1/projects/1/sessions"
    assert f"Testmo answered HTTP 422 for GET {server.url}{path}" in str(caught.value)
    assert "The selected per page is invalid." in str(caught.value)
    assert len(server.requests) == 1


async def test_answers_without_result_are_bad_responses(serve: Serve) -> None:
    _, source = await serve(lambda seen: reply_json({"expands": {}}))

    with pytest.raises(BadVendorResponse, match="Testmo: sessions response has no 'result'"):
        await listed(source)
    with pytest.raises(BadVendorResponse, match="Testmo: session 2 response has no 'result'"):
        await source.get_session("2")
