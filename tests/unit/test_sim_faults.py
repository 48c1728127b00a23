"""The simulators' fault mode: seeded, bounded per request, every kind really served."""

from __future__ import annotations

import json
from collections.abc import Mapping

import aiohttp
import pytest
from aiohttp import web

from archiver_sim.faults import GENERIC_KINDS, FaultPlan
from archiver_sim.runner import running

KEYS = 24


class TinySimulator:
    """One origin with JSON items and a binary file per item."""

    def __init__(self) -> None:
        self.url = ""

    def applications(self) -> dict[str, web.Application]:
        app = web.Application()
        app.router.add_get("/items/{n}", self._item)
        app.router.add_get("/files/{n}", self._file)
        return {"api": app}

    def bind(self, base_urls: Mapping[str, str]) -> None:
        self.url = base_urls["api"]

    async def _item(self, request: web.Request) -> web.Response:
        return web.json_response({"n": request.match_info["n"]})

    async def _file(self, request: web.Request) -> web.Response:
        return web.Response(body=b"f" * 10_000, content_type="application/octet-stream")


async def fetch(http: aiohttp.ClientSession, url: str, *, as_json: bool) -> str:
    """What one request got: "ok" or the name of what went wrong."""
    headers = {"Accept": "application/json"} if as_json else {}
    try:
        async with http.get(url, headers=headers) as response:
            body = await response.read()
            if response.status != 200:
                return str(response.status)
            if as_json:
                json.loads(body)
            return "ok"
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return type(exc).__name__


async def outcomes(plan: FaultPlan) -> dict[str, list[str]]:
    """Each URL asked until it answers properly (at most 10 times), with every outcome."""
    seen: dict[str, list[str]] = {}
    timeout = aiohttp.ClientTimeout(sock_read=0.1)
    async with (
        running(TinySimulator(), faults=plan) as sim,
        aiohttp.ClientSession(timeout=timeout) as http,
    ):
        for n in range(KEYS):
            for path, as_json in ((f"/items/{n}", True), (f"/files/{n}", False)):
                tries = seen.setdefault(path, [])
                while len(tries) < 10 and (not tries or tries[-1] != "ok"):
                    tries.append(await fetch(http, sim.url + path, as_json=as_json))
    return seen


def plan(seed: int) -> FaultPlan:
    return FaultPlan(seed=seed, rate=0.6, max_in_a_row=3, retry_after=0, stall_seconds=0.3)


async def test_same_seed_same_faults_and_every_request_heals() -> None:
    first_plan, second_plan = plan(11), plan(11)
    first = await outcomes(first_plan)
    second = await outcomes(second_plan)

    assert first == second
    assert [fault.kind for fault in first_plan.injected] == [
        fault.kind for fault in second_plan.injected
    ]
    for path, tries in first.items():
        assert tries[-1] == "ok", (path, tries)
        assert len(tries) <= 4, (path, tries)  # never more than max_in_a_row faults in a row
    assert set(first_plan.counts()) == GENERIC_KINDS
    assert await outcomes(plan(12)) != first


async def test_html_and_broken_json_only_where_json_was_asked() -> None:
    faults = FaultPlan(seed=5, rate=1.0, kinds={"html", "malformed"}, max_in_a_row=1)
    seen = await outcomes(faults)
    assert all(tries == ["ok"] for path, tries in seen.items() if path.startswith("/files/"))
    assert {fault.path.split("/")[1] for fault in faults.injected} == {"items"}
    assert set(faults.counts()) == {"html", "malformed"}


async def test_origins_and_paths_limit_where_faults_go() -> None:
    faults = FaultPlan(seed=5, rate=1.0, kinds={"500"}, paths=("/files/",), max_in_a_row=1)
    seen = await outcomes(faults)
    assert all(tries == ["ok"] for path, tries in seen.items() if path.startswith("/items/"))
    assert all(tries == ["500", "ok"] for path, tries in seen.items() if path.startswith("/files"))
    elsewhere = FaultPlan(seed=5, rate=1.0, origins={"files"}, max_in_a_row=1)
    assert all(tries == ["ok"] for tries in (await outcomes(elsewhere)).values())


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault kinds: teapot"):
        FaultPlan(kinds={"418", "teapot"} - {"418"})
