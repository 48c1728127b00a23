"""The Perfecto simulator's visual checks: IMAGE_KEY entries as the document shows them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from archiver_sim.perfecto import (
    EXECUTIONS_PATH,
    PerfectoSimConfig,
    PerfectoSimulator,
    UniformLayout,
)
from tests.support.simulators import AsyncPerfectoFactory
from tests.unit.test_sim_perfecto import fetch


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def commands_of(
    http: aiohttp.ClientSession, sim: PerfectoSimulator, execution_id: str
) -> list[dict[str, Any]]:
    url = f"{sim.api_url}{EXECUTIONS_PATH}/{execution_id}/commands"
    async with http.get(url, headers={"PERFECTO-AUTHORIZATION": sim.config.token}) as response:
        assert response.status == 200
        body = await response.json()
    (resource,) = body["resources"]
    commands: list[dict[str, Any]] = resource["commands"]
    return commands


async def test_visual_checks_carry_image_keys_beside_text_entries(
    perfecto_sim_async_factory: AsyncPerfectoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await perfecto_sim_async_factory(executions=4)
    for execution in sim.executions:
        commands = await commands_of(http, sim, execution.id)
        checks = {check.command: check for check in execution.visual_checks}
        assert len(checks) >= 2
        for number, command in enumerate(commands):
            if number not in checks:
                for field in ("expectedData", "resultData"):
                    assert all(entry["type"] == "TEXT" for entry in command.get(field, []))
                continue
            link = sim.text_link(execution.id, number)
            for field in ("expectedData", "resultData"):
                # As in the document: TEXT, IMAGE_KEY, TEXT.
                assert [entry["type"] for entry in command[field]] == ["TEXT", "IMAGE_KEY", "TEXT"]
                assert command[field][2]["value"] == link
            expected, result = (
                command["expectedData"][1]["value"],
                command["resultData"][1]["value"],
            )
            assert expected.startswith(f"{sim.api_url}/export/api/v1/artifacts/")
            assert result.startswith(sim.files_url + "/files/") and "X-Amz-Signature=" in result
            assert expected.split("?")[0].endswith(checks[number].expected)
            assert result.split("?")[0].endswith(checks[number].result)
        baselines = [
            command["expectedData"][1]["value"] for number, command in enumerate(commands)
            if number in checks
        ]  # fmt: skip
        assert len(set(baselines)) < len(baselines)  # one baseline linked twice


async def test_visual_check_images_are_served_and_listed_once(
    perfecto_sim_async_factory: AsyncPerfectoFactory, http: aiohttp.ClientSession
) -> None:
    sim = await perfecto_sim_async_factory(executions=2)
    token = {"PERFECTO-AUTHORIZATION": sim.config.token}
    execution = sim.executions[0]
    commands = await commands_of(http, sim, execution.id)
    urls = {
        entry["value"]
        for command in commands
        for field in ("expectedData", "resultData")
        for entry in command.get(field, [])
        if entry["type"] == "IMAGE_KEY"
    }
    images = [f for f in sim.files(execution.id) if f.kind in ("expected_image", "result_image")]
    assert {sim.url(file) for file in images} == urls
    assert len(images) == len(urls)
    for file in images:
        url = sim.url(file)
        if file.kind == "expected_image":
            assert (await fetch(http, url))[0] == 401  # a secure download URL
        status, length, content_type, digest = await fetch(
            http, url, token if file.kind == "expected_image" else None
        )
        assert (status, content_type) == (200, file.content_type)
        assert content_type in ("image/png", "image/jpeg")
        assert (length, digest) == sim.expected_digest(url) == (file.size, file.digest())
    link = sim.text_link(execution.id, execution.visual_checks[0].command)
    assert (await fetch(http, link))[0] == 404  # text, not a file


def test_uniform_layout_has_no_visual_checks() -> None:
    sim = PerfectoSimulator(PerfectoSimConfig(executions=3, uniform=UniformLayout(screenshots=4)))
    assert all(execution.visual_checks == () for execution in sim.executions)
