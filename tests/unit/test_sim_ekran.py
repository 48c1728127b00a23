"""The Ekran System sessions simulator over real HTTP: the API as the reference describes it."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from archiver_sim.ekran import (
    SESSIONS_PATH,
    EkranSimConfig,
    EkranSimulator,
    dotnet_datetime,
    parse_moment,
    timespan,
)
from tests.support.simulators import AsyncEkranFactory

NEWEST = parse_moment("2024-03-10T12:00:00")
TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d\d):([0-5]\d):([0-5]\d)(?:\.(\d{7}))?$")
DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?$")
FIELDS = [
    "duration", "productivityTime", "idleTime", "sessionId", "clientName", "userName",
    "domain", "osType", "ipAddress", "startTime", "endTime", "isFinished",
]  # fmt: skip


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def auth(sim: EkranSimulator) -> dict[str, str]:
    return {sim.config.token_header: sim.config.token}


async def post(
    http: aiohttp.ClientSession,
    sim: EkranSimulator,
    body: Any,
    headers: dict[str, str] | None = None,
) -> tuple[int, str, str]:
    """``(status, content type, text)`` of one sessions request."""
    headers = auth(sim) if headers is None else headers
    async with http.post(sim.sessions_url, json=body, headers=headers) as response:
        return response.status, response.content_type, await response.text()


async def page(http: aiohttp.ClientSession, sim: EkranSimulator, **body: Any) -> dict[str, Any]:
    status, _, text = await post(http, sim, body)
    assert status == 200, text
    answer: dict[str, Any] = json.loads(text)
    return answer


def seconds(text: str) -> float:
    """A .NET TimeSpan string in seconds."""
    match = TIMESPAN.match(text)
    assert match, text
    days, hours, minutes, whole, fraction = match.groups()
    clock = int(hours) * 3600 + int(minutes) * 60 + int(whole)
    return int(days or 0) * 86400 + clock + int(fraction or 0) / 10**7


def moment(text: str) -> int:
    """A response ``DateTime`` in ms (UTC)."""
    whole, _, fraction = text.partition(".")
    return parse_moment(whole) + int(fraction.ljust(3, "0") or 0)


# -- auth and validation ---------------------------------------------------------------------


async def test_missing_or_wrong_token_is_401(
    ekran_sim_async: EkranSimulator, http: aiohttp.ClientSession
) -> None:
    sim = ekran_sim_async
    for headers in (
        {},
        {sim.config.token_header: "wrong"},
        {"Authorization": f"Bearer {sim.config.token}"},
    ):
        status, _, _ = await post(http, sim, {}, headers)
        assert status == 401
    assert (await post(http, sim, {}))[0] == 200


async def test_token_header_is_configurable(
    ekran_sim_async_factory: AsyncEkranFactory, http: aiohttp.ClientSession
) -> None:
    sim = await ekran_sim_async_factory(token_header="Authorization", token="Bearer abc")
    assert (await post(http, sim, {}, {"Authorization": "Bearer abc"}))[0] == 200
    assert (await post(http, sim, {}, {"X-Ekran-Token": "Bearer abc"}))[0] == 401


@pytest.mark.parametrize(
    "body",
    [
        {"sessionCount": 1001},
        {"sessionCount": -1},
        {"sessionCount": "10"},
        {"pageIndex": -1},
        {"pageIndex": 1.5},
        {"start": "2024-03-10T12:00:00Z"},
        {"start": "2024-03-10T12:00:00+01:00"},
        {"end": "10/03/2024"},
        {"end": "2024-13-01"},
        {"start": 1710072000},
        [],
    ],
)
async def test_bad_requests_are_400(
    ekran_sim_async: EkranSimulator, http: aiohttp.ClientSession, body: Any
) -> None:
    status, content_type, text = await post(http, ekran_sim_async, body)
    assert status == 400
    assert content_type == "application/problem+json"
    problem = json.loads(text)
    assert problem["status"] == 400 and problem["errors"] and problem["traceId"]


async def test_session_count_1000_and_0_are_accepted(
    ekran_sim_async: EkranSimulator, http: aiohttp.ClientSession
) -> None:
    sim = ekran_sim_async
    assert len((await page(http, sim, sessionCount=1000))["sessions"]) == 40
    empty = await page(http, sim, sessionCount=0)
    assert empty == {"sessions": [], "totalCount": 40}


# -- paging and selection --------------------------------------------------------------------


async def test_no_start_or_end_returns_every_session_unclipped(
    ekran_sim_async_factory: AsyncEkranFactory, http: aiohttp.ClientSession
) -> None:
    sim = await ekran_sim_async_factory(newest_start_ms=NEWEST)
    for body in ({}, {"start": None, "end": None}):
        answer = await page(http, sim, **body)
        assert answer["totalCount"] == 40
        records = answer["sessions"]
        assert [r["sessionId"] for r in records] == [s.session_id for s in sim.sessions[::-1]]
        assert records == [sim.record(r["sessionId"]) for r in records]
    status, _, text = await post(http, sim, None)  # an empty body: no parameters at all
    assert status == 200 and json.loads(text)["totalCount"] == 40


async def test_records_carry_the_documented_formats(
    ekran_sim_async_factory: AsyncEkranFactory, http: aiohttp.ClientSession
) -> None:
    sim = await ekran_sim_async_factory(newest_start_ms=NEWEST)
    records = (await page(http, sim))["sessions"]
    for record in records:
        assert list(record) == FIELDS
        for name in ("duration", "productivityTime", "idleTime"):
            assert TIMESPAN.match(record[name]), record[name]
        total = seconds(record["productivityTime"]) + seconds(record["idleTime"])
        assert seconds(record["duration"]) == pytest.approx(total)
        start, end = moment(record["startTime"]), moment(record["endTime"])
        assert DATETIME.match(record["startTime"]) and DATETIME.match(record["endTime"])
        assert (end - start) / 1000 == pytest.approx(seconds(record["duration"]))
        assert record["isFinished"] is True
        assert re.match(r"^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$", record["sessionId"])
        assert record["osType"] in ("Windows", "Linux", "macOS")
    assert any(seconds(r["duration"]) >= 86400 for r in records)  # "d.hh:mm:ss..." occurs
    assert any(r["domain"] == "" for r in records) and any(r["domain"] for r in records)


def test_timespan_and_datetime_formats() -> None:
    assert timespan(20 * 3600_000 + 20 * 60_000 + 40_002) == "20:20:40.0020000"
    assert timespan(((24 + 2) * 60 + 3) * 60_000 + 4_500) == "1.02:03:04.5000000"
    assert timespan(3 * 86_400_000) == "3.00:00:00"
    assert timespan(0) == "00:00:00"
    assert timespan(1) == "00:00:00.0010000"
    assert seconds("1.02:03:04.5000000") == 93784.5
    assert dotnet_datetime(NEWEST) == "2024-03-10T12:00:00"
    assert dotnet_datetime(NEWEST + 120) == "2024-03-10T12:00:00.12"
    assert parse_moment("2024-03-10") == parse_moment("2024-03-10T00:00") == NEWEST - 12 * 3600_000
    assert parse_moment("2024-03-10T12:00:00.1234567") == NEWEST + 123
    assert parse_moment("2024-03-10T12:00:00.1234567", ceil=True) == NEWEST + 124


async def test_paging_with_page_index_against_total_count(
    ekran_sim_async_factory: AsyncEkranFactory, http: aiohttp.ClientSession
) -> None:
    sim = await ekran_sim_async_factory(sessions=2500, newest_start_ms=NEWEST)
    want = [s.session_id for s in sim.sessions[::-1]]
    started = time.monotonic()
    ids: list[str] = []
    index = 0
    while True:
        answer = await page(http, sim, pageIndex=index)
        assert answer["totalCount"] == 2500
        if not answer["sessions"]:
            break
        ids += [r["sessionId"] for r in answer["sessions"]]
        index += 1
    assert index == 3 and ids == want
    small = [await page(http, sim, sessionCount=7, pageIndex=n) for n in (0, 1, 357)]
    assert [r["sessionId"] for r in small[0]["sessions"]] == want[:7]
    assert [r["sessionId"] for r in small[1]["sessions"]] == want[7:14]
    assert [r["sessionId"] for r in small[2]["sessions"]] == want[2499:]
    assert time.monotonic() - started < 20


async def test_window_selects_and_clips_at_its_edges(
    ekran_sim_async_factory: AsyncEkranFactory, http: aiohttp.ClientSession
) -> None:
    sim = await ekran_sim_async_factory(sessions=300, newest_start_ms=NEWEST)
    start_text, end_text = "2024-03-05T06:30", "2024-03-06T18:00:00"
    start, end = parse_moment(start_text), parse_moment(end_text)
    answer = await page(http, sim, start=start_text, end=end_text)
    expected = {}
    for session in sim.sessions:
        inside = [t for t in session.activities if start <= t <= end]
        if inside:
            expected[session.session_id] = (inside[0], inside[-1])
    assert answer["totalCount"] == len(expected) == len(answer["sessions"])
    assert {r["sessionId"] for r in answer["sessions"]} == set(expected)
    clipped_start = clipped_end = 0
    for record in answer["sessions"]:
        session = sim.session(record["sessionId"])
        first, last = expected[session.session_id]
        assert (moment(record["startTime"]), moment(record["endTime"])) == (first, last)
        assert (last - first) / 1000 == pytest.approx(seconds(record["duration"]))
        assert record["isFinished"] is True  # the session's state, not the window's
        clipped_start += session.start_ms < start
        clipped_end += session.end_ms > end
        if session.start_ms < start or session.end_ms > end:
            assert record != sim.record(session.session_id)
        else:
            assert record == sim.record(session.session_id)
    assert clipped_start and clipped_end
    # the same session in a later window comes back with other times
    crossing = next(r for r in answer["sessions"] if sim.session(r["sessionId"]).end_ms > end)
    later = await page(http, sim, start=end_text, sessionCount=1000)
    again = next(r for r in later["sessions"] if r["sessionId"] == crossing["sessionId"])
    assert again["startTime"] != crossing["startTime"]
    assert moment(again["startTime"]) > moment(crossing["endTime"])
    assert moment(again["endTime"]) == sim.session(crossing["sessionId"]).end_ms


async def test_open_ended_windows(
    ekran_sim_async_factory: AsyncEkranFactory, http: aiohttp.ClientSession
) -> None:
    sim = await ekran_sim_async_factory(sessions=120, newest_start_ms=NEWEST)
    bound = "2024-03-08"
    edge = parse_moment(bound)
    after = await page(http, sim, start=bound)
    assert {r["sessionId"] for r in after["sessions"]} == {
        s.session_id for s in sim.sessions if s.end_ms >= edge
    }
    assert all(moment(r["startTime"]) >= edge for r in after["sessions"])
    before = await page(http, sim, END=bound)  # property names match in any case
    assert {r["sessionId"] for r in before["sessions"]} == {
        s.session_id for s in sim.sessions if s.start_ms <= edge
    }
    assert all(moment(r["endTime"]) <= edge for r in before["sessions"])
    assert after["totalCount"] + before["totalCount"] >= 120
    empty = await page(http, sim, start="2030-01-01", end="2030-01-02")
    assert empty == {"sessions": [], "totalCount": 0}


# -- live sessions, faults, request log ------------------------------------------------------


async def test_live_sessions_until_finished(
    ekran_sim_async_factory: AsyncEkranFactory, http: aiohttp.ClientSession
) -> None:
    sim = await ekran_sim_async_factory(newest_start_ms=NEWEST, unfinished=3)
    live = [s.session_id for s in sim.sessions[:3]]
    records = {r["sessionId"]: r for r in (await page(http, sim))["sessions"]}
    for session_id in live:
        record = records[session_id]
        assert record["isFinished"] is False and sim.is_unfinished(session_id)
        visible = sim.activities(session_id)
        assert visible == sim.session(session_id).activities[: len(visible)]
        assert moment(record["endTime"]) == visible[-1]
    assert all(r["isFinished"] for i, r in records.items() if i not in live)
    sim.finish(live[0])
    record = sim.record(live[0])
    assert record["isFinished"] is True
    assert moment(record["endTime"]) == sim.session(live[0]).end_ms
    assert sim.is_unfinished(live[1])
    sim.finish_all()
    records = {r["sessionId"]: r for r in (await page(http, sim))["sessions"]}
    assert all(r["isFinished"] for r in records.values())
    with pytest.raises(KeyError):
        sim.finish("nope")


async def test_live_end_time_can_be_null(
    ekran_sim_async_factory: AsyncEkranFactory, http: aiohttp.ClientSession
) -> None:
    sim = await ekran_sim_async_factory(newest_start_ms=NEWEST, unfinished=1, live_end_null=True)
    newest = sim.sessions[0].session_id
    records = {r["sessionId"]: r for r in (await page(http, sim))["sessions"]}
    assert records[newest]["endTime"] is None and records[newest]["isFinished"] is False
    assert TIMESPAN.match(records[newest]["duration"])
    sim.finish(newest)
    assert sim.record(newest)["endTime"] is not None


async def test_every_nth_request_is_500_with_an_html_page(
    ekran_sim_async_factory: AsyncEkranFactory, http: aiohttp.ClientSession
) -> None:
    sim = await ekran_sim_async_factory(fail_every=3)
    answers = [await post(http, sim, {"sessionCount": 1}) for _ in range(6)]
    assert [status for status, _, _ in answers] == [200, 200, 500, 200, 200, 500]
    _, content_type, text = answers[2]
    assert content_type == "text/html" and "500 - Internal server error." in text
    assert (await post(http, sim, {}, {}))[0] == 401  # not counted
    assert (await post(http, sim, {}))[0] == 200


async def test_request_log_records_headers_and_body(
    ekran_sim_async: EkranSimulator, http: aiohttp.ClientSession
) -> None:
    sim = ekran_sim_async
    sim.clear_requests()
    await page(http, sim, start="2024-03-01", end="2024-03-02", sessionCount=5)
    (entry,) = sim.requests("api")
    assert (entry.method, entry.path) == ("POST", SESSIONS_PATH)
    assert entry.header(sim.config.token_header) == sim.config.token
    assert entry.carries(sim.config.token)
    body = {"start": "2024-03-01", "end": "2024-03-02", "sessionCount": 5}
    assert entry.to_json()["body"] == body
    async with http.get(sim.api_url + "/_sim/requests") as response:
        logged = await response.json()
    assert logged[0]["headers"][sim.config.token_header.lower()] == sim.config.token
    assert len(sim.requests()) == 1


def test_same_config_gives_same_dataset() -> None:
    config = EkranSimConfig(sessions=50, newest_start_ms=NEWEST)
    first, second = EkranSimulator(config), EkranSimulator(config)
    assert first.sessions == second.sessions
    assert [first.record(s.session_id) for s in first.sessions] == [
        second.record(s.session_id) for s in second.sessions
    ]
    other = EkranSimulator(EkranSimConfig(sessions=50, seed=12, newest_start_ms=NEWEST))
    assert {s.session_id for s in first.sessions}.isdisjoint(s.session_id for s in other.sessions)
    starts = [s.start_ms for s in first.sessions]
    assert starts == sorted(starts, reverse=True) and len(set(starts)) == 50
    assert all(s.activities == tuple(sorted(set(s.activities))) for s in first.sessions)


def test_thread_variant_serves_a_synchronous_test(ekran_sim: EkranSimulator) -> None:
    sim = ekran_sim
    request = urllib.request.Request(
        sim.sessions_url,
        data=json.dumps({"sessionCount": 2}).encode(),
        headers={**auth(sim), "Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        answer = json.load(response)
    assert answer["totalCount"] == 40 and len(answer["sessions"]) == 2
