"""The Testmo simulator over real HTTP: sessions listing and single session, as documented."""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest

from archiver_sim.testmo import EXPANDS, TestmoSimConfig, TestmoSimulator
from tests.support.simulators import AsyncTestmoFactory

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
PAGE_KEYS = ["page", "prev_page", "next_page", "last_page", "per_page", "total", "result"]
RECORD_KEYS = [
    "id", "project_id", "name", "template_id", "state_id", "config_id", "milestone_id",
    "assignee_id", "estimate", "forecast", "elapsed", "tags", "is_closed", "untested_count",
    *(f"status{n}_count" for n in range(1, 25)),
    "success_count", "failure_count", "completed_count", "total_count", "created_at",
    "created_by", "updated_at", "updated_by", "closed_at", "closed_by",
]  # fmt: skip


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def auth(sim: TestmoSimulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {sim.config.token}"}


async def get(
    http: aiohttp.ClientSession,
    sim: TestmoSimulator,
    path: str,
    params: Mapping[str, str | int] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, Mapping[str, str]]:
    url = sim.base_url + path
    query = {k: str(v) for k, v in (params or {}).items()}
    async with http.get(url, params=query, headers=auth(sim) if headers is None else headers) as r:
        return r.status, await r.json(), r.headers


async def page_of(
    http: aiohttp.ClientSession, sim: TestmoSimulator, project_id: int, **params: str | int
) -> dict[str, Any]:
    status, page, _ = await get(http, sim, f"/projects/{project_id}/sessions", params)
    assert status == 200, page
    return dict(page)


async def list_all(
    http: aiohttp.ClientSession, sim: TestmoSimulator, project_id: int, **params: str | int
) -> tuple[list[int], int]:
    """Every session id of a listing, following ``next_page``, and the number of pages."""
    ids: list[int] = []
    number: int | None = 1
    pages = 0
    while number is not None:
        page = await page_of(http, sim, project_id, **params, page=number)
        pages += 1
        assert page["page"] == number and page["prev_page"] == (number - 1 or None)
        ids += [record["id"] for record in page["result"]]
        number = page["next_page"]
        assert (number is None) == (page["page"] == page["last_page"])
    return ids, pages


def iso(moment: str, delta: timedelta = timedelta(0)) -> str:
    """A record's timestamp moved by ``delta``, in the ``2023-02-15T00:00:00.000Z`` style."""
    parsed = datetime.fromisoformat(moment) + delta
    return f"{parsed.astimezone(UTC):%Y-%m-%dT%H:%M:%S}.{parsed.microsecond // 1000:03d}Z"


def newest_first(sim: TestmoSimulator, project_id: int, closed: bool | None = None) -> list[int]:
    return [
        s.id
        for s in sim.project_sessions(project_id)
        if closed is None or sim.is_unfinished(s.id) != closed
    ]


# -- auth and errors -------------------------------------------------------------------------


async def test_missing_or_wrong_token_is_401(
    testmo_sim_async: TestmoSimulator, http: aiohttp.ClientSession
) -> None:
    sim = testmo_sim_async
    token = sim.config.token
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
        for path in ("/projects/1/sessions", "/sessions/1", "/nowhere"):
            status, error, _ = await get(http, sim, path, headers=headers)
            assert status == 401 and error == {"message": "Unauthenticated."}


async def test_unknown_project_session_or_route_is_404(
    testmo_sim_async: TestmoSimulator, http: aiohttp.ClientSession
) -> None:
    sim = testmo_sim_async
    for path in ("/projects/2/sessions", "/projects/x/sessions", "/sessions/999", "/runs/1"):
        status, error, _ = await get(http, sim, path)
        assert status == 404 and error["message"], path


async def test_forbidden_project_is_403(
    testmo_sim_async_factory: AsyncTestmoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await testmo_sim_async_factory(forbidden_project_ids=(5,))
    status, error, _ = await get(http, sim, "/projects/5/sessions")
    assert status == 403 and error["message"]
    hidden = sim.project_sessions(5)[0].id
    assert (await get(http, sim, f"/sessions/{hidden}"))[0] == 403
    assert (await get(http, sim, "/projects/1/sessions"))[0] == 200


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"per_page": 10}, {"per_page"}),
        ({"per_page": 200}, {"per_page"}),
        ({"per_page": "many"}, {"per_page"}),
        ({"page": 0}, {"page"}),
        ({"page": "two"}, {"page"}),
        ({"is_closed": "yes"}, {"is_closed"}),
        ({"created_after": "yesterday"}, {"created_after"}),
        ({"closed_before": "2023-13-01T00:00:00Z"}, {"closed_before"}),
        ({"sort": "sessions:name"}, {"sort"}),
        ({"order": "up"}, {"order"}),
        ({"expands": "users,robots"}, {"expands"}),
        ({"per_page": 7, "order": "up"}, {"per_page", "order"}),
    ],
)
async def test_invalid_parameters_are_422(
    testmo_sim_async: TestmoSimulator,
    http: aiohttp.ClientSession,
    params: dict[str, str | int],
    fields: set[str],
) -> None:
    status, error, _ = await get(http, testmo_sim_async, "/projects/1/sessions", params)
    assert status == 422
    assert set(error) == {"message", "errors"} and error["message"]
    assert set(error["errors"]) == fields
    assert all(isinstance(m, list) and m for m in error["errors"].values())
    if len(fields) > 1:
        assert "(and 1 more error)" in error["message"]


async def test_single_session_rejects_unknown_expands(
    testmo_sim_async: TestmoSimulator, http: aiohttp.ClientSession
) -> None:
    status, error, _ = await get(http, testmo_sim_async, "/sessions/1", {"expands": "x"})
    assert status == 422 and set(error["errors"]) == {"expands"}


# -- listing ---------------------------------------------------------------------------------


async def test_page_carries_every_documented_field(
    testmo_sim_async_factory: AsyncTestmoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await testmo_sim_async_factory(unfinished=4)
    page = await page_of(http, sim, 1)
    assert list(page) == [*PAGE_KEYS, "expands"]
    want = newest_first(sim, 1)
    assert page["total"] == len(want) == 12
    assert (page["page"], page["prev_page"], page["next_page"], page["last_page"]) == (
        1,
        None,
        None,
        1,
    )
    assert page["per_page"] == 100 and page["expands"] == {}
    assert [r["id"] for r in page["result"]] == want
    for record in page["result"]:
        assert list(record) == RECORD_KEYS
        assert record == sim.record(record["id"]) and record["project_id"] == 1
        assert TIMESTAMP.match(record["created_at"])
        statuses = sum(record[f"status{n}_count"] for n in range(1, 25))
        assert record["total_count"] == record["untested_count"] + statuses
        assert record["completed_count"] == statuses
        assert record["success_count"] + record["failure_count"] <= statuses
        if record["is_closed"]:
            assert TIMESTAMP.match(record["closed_at"]) and record["closed_by"] >= 1
            assert record["closed_at"] > record["created_at"]
        else:
            assert record["closed_at"] is None and record["closed_by"] is None
    open_ids = [r["id"] for r in page["result"] if not r["is_closed"]]
    assert open_ids == [s.id for s in sim.sessions[:4] if s.project_id == 1]


async def test_paging_covers_every_session_once(
    testmo_sim_async_factory: AsyncTestmoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await testmo_sim_async_factory(sessions=3001, project_ids=(1, 5, 9))
    want = newest_first(sim, 5)
    assert len(want) == 1000
    for per_page, pages in ((100, 10), (50, 20), (25, 40), (15, 67)):
        ids, counted = await list_all(http, sim, 5, per_page=per_page)
        assert ids == want and counted == pages
    last = await page_of(http, sim, 5, per_page=15, page=67)
    assert (last["next_page"], last["last_page"], last["total"], len(last["result"])) == (
        None,
        67,
        1000,
        10,
    )
    beyond = await page_of(http, sim, 5, page=12)
    assert beyond["result"] == [] and beyond["next_page"] is None and beyond["prev_page"] == 11


async def test_empty_project_has_one_empty_page(
    testmo_sim_async_factory: AsyncTestmoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await testmo_sim_async_factory(sessions=1, project_ids=(1, 2))
    page = await page_of(http, sim, 2)
    assert (page["total"], page["last_page"], page["next_page"], page["result"]) == (0, 1, None, [])


async def test_is_closed_filter(
    testmo_sim_async_factory: AsyncTestmoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await testmo_sim_async_factory(sessions=60, unfinished=10)
    open_page = await page_of(http, sim, 1, is_closed=0)
    closed_page = await page_of(http, sim, 1, is_closed=1)
    assert [r["id"] for r in open_page["result"]] == newest_first(sim, 1, closed=False)
    assert [r["id"] for r in closed_page["result"]] == newest_first(sim, 1, closed=True)
    assert open_page["total"] == 5 and closed_page["total"] == 25
    assert not any(r["is_closed"] for r in open_page["result"])
    assert all(r["is_closed"] for r in closed_page["result"])


async def test_created_filters_with_inclusive_bounds(
    testmo_sim_async_factory: AsyncTestmoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await testmo_sim_async_factory(sessions=40)
    records = [sim.record(i) for i in newest_first(sim, 1)]
    pivot = records[5]["created_at"]
    after = await page_of(http, sim, 1, created_after=iso(pivot))
    assert [r["id"] for r in after["result"]] == [r["id"] for r in records[:6]]
    before = await page_of(http, sim, 1, created_before=iso(pivot))
    assert [r["id"] for r in before["result"]] == [r["id"] for r in records[5:]]
    window = await page_of(
        http, sim, 1, created_after=records[8]["created_at"], created_before=pivot
    )
    assert [r["id"] for r in window["result"]] == [r["id"] for r in records[5:9]]
    later = await page_of(http, sim, 1, created_after=iso(pivot, timedelta(milliseconds=1)))
    assert later["total"] == 5
    offset = datetime.fromisoformat(pivot).astimezone(timezone(timedelta(hours=2))).isoformat()
    assert (await page_of(http, sim, 1, created_after=offset))["total"] == 6


async def test_exclusive_bounds_when_configured(
    testmo_sim_async_factory: AsyncTestmoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await testmo_sim_async_factory(inclusive_bounds=False)
    records = [sim.record(i) for i in newest_first(sim, 1, closed=True)]
    pivot = records[3]["created_at"]
    assert (await page_of(http, sim, 1, created_after=pivot))["total"] == 3
    assert (await page_of(http, sim, 1, created_before=pivot))["total"] == len(records) - 4


async def test_closed_after_sorted_by_close_date_oldest_first(
    testmo_sim_async_factory: AsyncTestmoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await testmo_sim_async_factory(sessions=300, unfinished=20)
    closed = [sim.record(i) for i in newest_first(sim, 1, closed=True)]
    by_close = sorted(closed, key=lambda r: (r["closed_at"], r["id"]))
    assert [r["id"] for r in by_close] != [r["id"] for r in closed[::-1]]  # orders differ
    pivot = by_close[100]["closed_at"]
    params: dict[str, str | int] = {
        "is_closed": 1,
        "sort": "sessions:closed_at",
        "order": "asc",
        "closed_after": iso(pivot),
    }
    ids, _ = await list_all(http, sim, 1, per_page=15, **params)
    assert ids == [r["id"] for r in by_close if r["closed_at"] >= pivot]
    window = await page_of(http, sim, 1, **params, closed_before=by_close[110]["closed_at"])
    assert [r["id"] for r in window["result"]] == [
        r["id"] for r in by_close if pivot <= r["closed_at"] <= by_close[110]["closed_at"]
    ]
    assert not any(r["closed_at"] is None for r in window["result"])


async def test_sort_and_order(
    testmo_sim_async_factory: AsyncTestmoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await testmo_sim_async_factory(sessions=80, unfinished=6)
    want = newest_first(sim, 1)
    assert [r["id"] for r in (await page_of(http, sim, 1, order="asc"))["result"]] == want[::-1]
    explicit = await page_of(http, sim, 1, sort="sessions:created_at", order="desc")
    assert [r["id"] for r in explicit["result"]] == want
    open_ids = newest_first(sim, 1, closed=False)
    closed = sorted(
        (sim.record(i) for i in newest_first(sim, 1, closed=True)),
        key=lambda r: (r["closed_at"], r["id"]),
    )
    ascending = await page_of(http, sim, 1, sort="sessions:closed_at", order="asc")
    ids = [r["id"] for r in ascending["result"]]
    assert set(ids[: len(open_ids)]) == set(open_ids)  # nulls first
    assert ids[len(open_ids) :] == [r["id"] for r in closed]
    descending = await page_of(http, sim, 1, sort="sessions:closed_at")
    assert [r["id"] for r in descending["result"]] == ids[::-1]  # nulls last


# -- single session and expands --------------------------------------------------------------


async def test_single_session_with_expands(
    testmo_sim_async: TestmoSimulator, http: aiohttp.ClientSession
) -> None:
    sim = testmo_sim_async
    session = next(s for s in sim.sessions if s.issue_ids and s.milestone_id and s.config_id)
    status, body, _ = await get(http, sim, f"/sessions/{session.id}")
    assert status == 200 and body == {"result": sim.record(session.id), "expands": {}}
    assert list(body["result"]) == RECORD_KEYS
    status, body, _ = await get(
        http, sim, f"/sessions/{session.id}", {"expands": " users,issues, milestones,configs,"}
    )
    assert status == 200
    assert body == sim.full_record(session.id, ["users", "issues", "milestones", "configs"])
    expands = body["expands"]
    assert list(expands) == ["users", "issues", "milestones", "configs"]
    record = body["result"]
    assert str(record["created_by"]) in expands["users"]
    assert expands["users"][str(record["closed_by"])]["id"] == record["closed_by"]
    assert set(expands["issues"]) == {str(i) for i in session.issue_ids}
    assert all(i["session_id"] == session.id for i in expands["issues"].values())
    assert list(expands["milestones"]) == [str(session.milestone_id)]
    milestone = expands["milestones"][str(session.milestone_id)]
    assert milestone["id"] == session.milestone_id and milestone["project_id"] == session.project_id
    assert expands["configs"][str(session.config_id)]["name"]
    everything = sim.full_record(session.id, EXPANDS)
    assert set(everything["expands"]) == set(EXPANDS)
    assert everything["expands"]["templates"][str(record["template_id"])]["name"]
    assert everything["expands"]["states"][str(record["state_id"])]["name"]
    assert everything["expands"]["field_values"]
    for number in range(1, 25):
        present = str(number) in everything["expands"]["statuses"]
        assert present == (record[f"status{number}_count"] > 0)
    with pytest.raises(ValueError, match="unknown expands"):
        sim.full_record(session.id, ["robots"])


async def test_listing_expands_cover_the_page(
    testmo_sim_async: TestmoSimulator, http: aiohttp.ClientSession
) -> None:
    sim = testmo_sim_async
    page = await page_of(http, sim, 5, per_page=15, expands="users,templates,issues")
    assert list(page["expands"]) == ["users", "templates", "issues"]
    users = {
        r[key] for r in page["result"] for key in ("assignee_id", "created_by", "closed_by")
    } - {None}
    assert users <= {int(user_id) for user_id in page["expands"]["users"]}
    issues = {i for r in page["result"] for i in sim.session(r["id"]).issue_ids}
    assert {int(i) for i in page["expands"]["issues"]} == issues
    assert {int(t) for t in page["expands"]["templates"]} == {
        r["template_id"] for r in page["result"]
    }


# -- open sessions ---------------------------------------------------------------------------


async def test_close_and_reopen(
    testmo_sim_async_factory: AsyncTestmoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await testmo_sim_async_factory(unfinished=3)
    newest = sim.sessions[0]
    assert sim.is_unfinished(newest.id)
    project = newest.project_id
    assert newest.id not in [
        r["id"] for r in (await page_of(http, sim, project, is_closed=1))["result"]
    ]
    first = sim.finish(newest.id, by=2)
    assert sim.finish(newest.id) == first  # already closed: unchanged
    record = sim.record(newest.id)
    assert record["is_closed"] and record["closed_at"] == first and record["closed_by"] == 2
    assert record["updated_at"] == first
    latest = await page_of(
        http, sim, project, is_closed=1, sort="sessions:closed_at", closed_after=iso(first)
    )
    assert [r["id"] for r in latest["result"]] == [newest.id]
    sim.set_unfinished(newest.id)
    record = sim.record(newest.id)
    assert not record["is_closed"] and record["closed_at"] is None and record["closed_by"] is None
    status, body, _ = await get(http, sim, f"/sessions/{newest.id}")
    assert status == 200 and body["result"]["closed_at"] is None
    again = sim.finish(newest.id)
    assert again > first
    latest = await page_of(
        http, sim, project, is_closed=1, sort="sessions:closed_at", closed_after=iso(first)
    )
    assert [r["id"] for r in latest["result"]] == [newest.id]
    assert latest["result"][0]["closed_at"] == again
    closed_now = sim.finish_all()
    assert sorted(closed_now) == sorted(s.id for s in sim.sessions[1:3])
    assert sim.finish_all() == []
    assert (await page_of(http, sim, project, is_closed=0))["total"] == 0


def test_close_and_reopen_from_many_threads() -> None:
    sim = TestmoSimulator(TestmoSimConfig(sessions=200, unfinished=200))
    ids = [s.id for s in sim.sessions]

    def churn(offset: int) -> None:
        for session_id in ids[offset::4]:
            sim.finish(session_id)
            sim.set_unfinished(session_id)
            sim.finish(session_id)

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not any(sim.is_unfinished(i) for i in ids) and sim.finish_all() == []


# -- 429, request log, determinism -----------------------------------------------------------


async def test_every_nth_request_is_429_with_retry_after(
    testmo_sim_async_factory: AsyncTestmoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await testmo_sim_async_factory(rate_limit_every=3, retry_after=2)
    statuses = []
    for _ in range(6):
        status, body, headers = await get(http, sim, "/projects/1/sessions")
        statuses.append(status)
        if status == 429:
            assert headers["Retry-After"] == "2" and body["message"]
    assert statuses == [200, 200, 429, 200, 200, 429]
    await get(http, sim, "/projects/1/sessions", headers={})  # 401s are not counted
    assert (await get(http, sim, "/projects/1/sessions"))[0] == 200


async def test_429_without_retry_after_header(
    testmo_sim_async_factory: AsyncTestmoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await testmo_sim_async_factory(rate_limit_every=1, retry_after=None)
    status, body, headers = await get(http, sim, "/sessions/1")
    assert status == 429 and "Retry-After" not in headers and body["message"]


async def test_request_log(testmo_sim_async: TestmoSimulator, http: aiohttp.ClientSession) -> None:
    sim = testmo_sim_async
    await get(http, sim, "/projects/1/sessions", {"per_page": 15, "is_closed": 1})
    await get(http, sim, "/sessions/2", headers={})
    logged = sim.requests()
    assert [(r.origin, r.method, r.path) for r in logged] == [
        ("api", "GET", "/api/v1/projects/1/sessions"),
        ("api", "GET", "/api/v1/sessions/2"),
    ]
    assert logged[0].query == {"per_page": "15", "is_closed": "1"}
    assert logged[0].carries(sim.config.token) and not logged[1].carries(sim.config.token)
    async with http.get(sim.api_url + "/_sim/requests") as response:
        assert len(await response.json()) == 2
    sim.clear_requests()
    assert sim.requests() == []


def test_same_config_gives_same_dataset() -> None:
    config = TestmoSimConfig(sessions=50, newest_created_s=1_700_000_000, unfinished=5)
    one, two = TestmoSimulator(config), TestmoSimulator(config)
    assert one.sessions == two.sessions
    assert [one.full_record(s.id, EXPANDS) for s in one.sessions] == [
        two.full_record(s.id, EXPANDS) for s in two.sessions
    ]
    assert one.record(50)["created_at"] == "2023-11-14T22:13:20.000000Z"
    assert [s.id for s in one.sessions] == list(range(50, 0, -1))
    other = TestmoSimulator(TestmoSimConfig(sessions=50, newest_created_s=1_700_000_000, seed=3))
    assert other.sessions != one.sessions


@pytest.mark.parametrize(
    "overrides",
    [
        {"sessions": -1},
        {"project_ids": ()},
        {"project_ids": (1, 1)},
        {"forbidden_project_ids": (7,)},
        {"rate_limit_every": -1},
        {"users": 0},
    ],
)
def test_config_is_validated(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TestmoSimConfig(**overrides)


def test_thread_variant_serves_a_synchronous_test(testmo_sim: TestmoSimulator) -> None:
    sim = testmo_sim
    request = urllib.request.Request(
        sim.base_url + "/projects/1/sessions?per_page=15", headers=auth(sim)
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        page = json.load(response)
    assert page["per_page"] == 15 and page["result"][0] == sim.record(page["result"][0]["id"])
