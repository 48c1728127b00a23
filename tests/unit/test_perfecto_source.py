"""The Perfecto source against the simulator: windows, paging, per-execution status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from archiver.config import HttpSettings, Secret
from archiver.errors import BadVendorResponse
from archiver.sources.perfecto import PerfectoSettings, PerfectoSource, command_images
from archiver_sim.faults import FaultPlan
from tests.support.simulators import AsyncPerfectoFactory

TOKEN = "unit-perfecto-token"
FAST = HttpSettings(attempts=2, backoff_initial=0.01, backoff_max=0.02)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def source_for(http: aiohttp.ClientSession, api_url: str, **overrides: object) -> PerfectoSource:
    settings = PerfectoSettings(base_url=api_url, token=Secret(TOKEN), **overrides)  # type: ignore[arg-type]
    return PerfectoSource.create(http, settings, FAST)


async def test_backfill_is_split_into_windows_of_at_most_a_day(
    perfecto_sim_async_factory: AsyncPerfectoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await perfecto_sim_async_factory(token=TOKEN, executions=30, span=timedelta(days=3))
    source = source_for(http, sim.api_url)
    until = datetime.now(UTC)
    found = [session async for session in source.sessions(until - timedelta(days=4), until)]
    assert sorted(s.session_id for s in found) == sorted(e.id for e in sim.executions)
    windows = {
        (int(r.query["startExecutionTime[0]"]), int(r.query["endExecutionTime[0]"]))
        for r in sim.requests("api")
        if "startExecutionTime[0]" in r.query
    }
    assert len(windows) == 4
    assert all(0 < end - start <= 24 * 3600 * 1000 for start, end in windows)
    assert max(end for _, end in windows) == int(until.timestamp() * 1000)


async def test_paging_keeps_the_end_time_fixed(
    perfecto_sim_async_factory: AsyncPerfectoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await perfecto_sim_async_factory(token=TOKEN, executions=23, page_size=5)
    source = source_for(http, sim.api_url)
    until = datetime.now(UTC)
    found = [session async for session in source.sessions(until - timedelta(hours=12), until)]
    assert len(found) == 23 and len({s.session_id for s in found}) == 23
    listing = [r for r in sim.requests("api") if "_page" in r.query]
    assert [r.query["_page"] for r in listing] == ["1", "2", "3", "4", "5"]
    assert len({r.query["endExecutionTime[0]"] for r in listing}) == 1


async def test_processing_page_is_decided_per_execution(
    perfecto_sim_async_factory: AsyncPerfectoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await perfecto_sim_async_factory(token=TOKEN, executions=6, unfinished=1)
    source = source_for(http, sim.api_url)
    until = datetime.now(UTC)
    found = {s.session_id: s async for s in source.sessions(until - timedelta(hours=12), until)}
    busy = sim.executions[0].id
    assert not found[busy].complete
    assert all(session.complete for sid, session in found.items() if sid != busy)
    alone = [r for r in sim.requests("api") if "externalId[0]" in r.query]
    assert alone, "a PROCESSING page must lead to per-execution queries"


async def test_get_session_by_locator_and_artifacts(
    perfecto_sim_async_factory: AsyncPerfectoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await perfecto_sim_async_factory(token=TOKEN, executions=3)
    source = source_for(http, sim.api_url)
    execution = sim.executions[1]
    session = await source.get_session(execution.id, locator=execution.external_id)
    assert session.complete and session.record == sim.resource(execution.id)
    artifacts = await source.artifacts(session)
    names = [artifact.name for artifact in artifacts]
    assert names[:2] == ["execution.json", "commands.json"]
    assert names[-1] == "report.pdf"
    urls = {artifact.url for artifact in artifacts if artifact.url}
    assert {sim.url(file) for file in sim.files(execution.id)} <= urls
    assert len(names) == len(set(names))


async def test_empty_page_that_says_truncated_is_asked_again(
    perfecto_sim_async_factory: AsyncPerfectoFactory, http: aiohttp.ClientSession
) -> None:
    faults = FaultPlan(seed=3, rate=1.0, kinds={"empty_page"}, max_in_a_row=2)
    sim = await perfecto_sim_async_factory(token=TOKEN, executions=9, page_size=4, faults=faults)
    source = source_for(http, sim.api_url)
    until = datetime.now(UTC)

    found = [session async for session in source.sessions(until - timedelta(days=1), until)]

    assert sorted(s.session_id for s in found) == sorted(e.id for e in sim.executions)
    assert faults.counts()["empty_page"] >= 6  # every page twice, the check-alone calls too


async def test_lasting_empty_truncated_page_fails_the_listing(
    perfecto_sim_async_factory: AsyncPerfectoFactory, http: aiohttp.ClientSession
) -> None:
    # More empty answers in a row than the source asks: it must neither loop nor end quietly
    # (ending would let the watermark pass executions never listed).
    faults = FaultPlan(seed=3, rate=1.0, kinds={"empty_page"}, max_in_a_row=50)
    sim = await perfecto_sim_async_factory(token=TOKEN, executions=9, page_size=4, faults=faults)
    source = source_for(http, sim.api_url)
    until = datetime.now(UTC)

    with pytest.raises(
        BadVendorResponse, match=r"listing \(startExecutionTime.* _page=1\) was empty 3 times"
    ):
        [session async for session in source.sessions(until - timedelta(days=1), until)]
    assert faults.counts()["empty_page"] == 3


# The second and third commands of the document's commands example (its "https://..."
# shortened URLs completed), plus a TEXT value that reads as a link.
DOCUMENT_COMMANDS = {
    "resources": [
        {
            "testExecutionId": "57f612f1c6c46111b02db94f",
            "commands": [
                {"name": "Command_vhsc2", "status": "SUCCESS"},
                {
                    "name": "Command_iofcw",
                    "status": "FAILURE",
                    "screenshots": ["https://cdn.example.com/sample-data/jpg.jpeg"],
                    "expectedData": [{"type": "TEXT", "value": "TEXT_0"}],
                    "resultData": [{"type": "TEXT", "value": "TEXT_0"}],
                },
                {
                    "name": "Command_hi dsffsdf dsfdsssb",
                    "status": "FAILURE",
                    "screenshots": [
                        "https://cdn.example.com/sample-data/jpg.jpeg",
                        "https://cdn.example.com/sample-data/png.png",
                        "https://cdn.example.com/sample-data/png.png",
                        "https://cdn.example.com/sample-data/png.png",
                    ],
                    "expectedData": [
                        {"type": "TEXT", "value": "TEXT_0"},
                        {"type": "IMAGE_KEY", "value": "https://cdn.example.com/sample-data/sample64.jpeg"},
                        {"type": "TEXT", "value": "https://cdn.example.com/sample-data/terms.html"},
                    ],
                    "resultData": [
                        {"type": "TEXT", "value": "TEXT_0"},
                        {"type": "IMAGE_KEY", "value": "https://cdn.example.com/sample-data/sample65.jpeg"},
                        {"type": "TEXT", "value": "TEXT_3"},
                    ],
                },
            ],
        }
    ]
}  # fmt: skip


def test_document_commands_give_screenshots_and_visual_check_images() -> None:
    found = [
        (artifact.name, artifact.kind, artifact.url)
        for artifact in command_images(DOCUMENT_COMMANDS)
    ]

    sample = "https://cdn.example.com/sample-data/"
    assert found == [
        ("screenshots/0001-00-jpg.jpeg", "screenshot", sample + "jpg.jpeg"),
        ("screenshots/0002-01-png.png", "screenshot", sample + "png.png"),
        ("visual/0002-expected-01-sample64.jpeg", "expected_image", sample + "sample64.jpeg"),
        ("visual/0002-result-01-sample65.jpeg", "result_image", sample + "sample65.jpeg"),
    ]


def test_an_image_linked_twice_is_kept_once_under_its_first_name() -> None:
    baseline = "https://cdn.example.com/baseline.png"
    image = {"type": "IMAGE_KEY", "value": baseline}
    commands = {
        "resources": [
            {
                "commands": [
                    {"expectedData": [image]},
                    {"screenshots": [baseline], "resultData": [image]},
                    # Not images: a bare string, another type, a value that is not a string.
                    {"expectedData": ["IMAGE_KEY", {"type": "IMAGE", "value": baseline + "?x"}]},
                    {"resultData": [{"type": "IMAGE_KEY", "value": {"url": baseline + "?y"}}]},
                ]
            }
        ]
    }

    found = [(artifact.name, artifact.kind) for artifact in command_images(commands)]

    assert found == [("visual/0000-expected-00-baseline.png", "expected_image")]


async def test_visual_check_images_of_the_simulator_are_artifacts(
    perfecto_sim_async_factory: AsyncPerfectoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await perfecto_sim_async_factory(token=TOKEN, executions=3)
    source = source_for(http, sim.api_url)
    execution = sim.executions[0]
    session = await source.get_session(execution.id, locator=execution.external_id)

    artifacts = await source.artifacts(session)

    visual = {a.url: (a.name, a.kind) for a in artifacts if a.name.startswith("visual/")}
    expected: dict[str, tuple[str, str]] = {}
    for check in execution.visual_checks:
        for role, filename in (("expected", check.expected), ("result", check.result)):
            url = next(sim.url(f) for f in sim.files(execution.id) if f.filename == filename)
            name = f"visual/{check.command:04d}-{role}-01-{filename.rsplit('/', 1)[-1]}"
            expected.setdefault(url, (name, f"{role}_image"))
    assert len(execution.visual_checks) >= 2  # the last one reuses the first's baseline
    assert visual == expected
    assert len([a for a in artifacts if a.url in expected]) == len(expected)
    links = {sim.text_link(execution.id, check.command) for check in execution.visual_checks}
    assert not links & {artifact.url for artifact in artifacts}
