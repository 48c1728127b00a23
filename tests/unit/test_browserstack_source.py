"""The BrowserStack source against recorded answers: builds and sessions pages, completeness,
the files each product links to, and what a session did not capture."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from archiver.config import HttpSettings, Secret, load_config
from archiver.errors import BadVendorResponse, ConfigError, VendorError
from archiver.model import Session
from archiver.sources.browserstack import BrowserStackSettings, BrowserStackSource
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

VENDOR = "browserstack"
USER = "jane_doe_AbCdEf"
KEY = "unit-browserstack-access-key"
BASIC = "Basic " + base64.b64encode(f"{USER}:{KEY}".encode()).decode()
FAST = HttpSettings(attempts=2, backoff_initial=0.01, backoff_max=0.02)

B1 = "g0726012b6rb0a4c79122d6048c7b8767677ad61"  # running: one session running, one done
B2 = "bada10e552f3086cefe6055279352a4e15b762ae"  # one queued session
B3 = "83ba386a86e081e94e3727354839ea89ed928214"  # last page: an old session and a new one
A1 = "ca9cccc228cf0e3ff3cb90dd62e2e2bfb4b20bc7"
DOC = "22dbfb187486090d974a11ac91t65722988e0705"  # the documented sample session
RUN = "a4de383d3055eb0ddfcefe4838199b6ecc7ec0a5"
QUEUED = "5c1e0a6b8f1d2e3c4b5a69788766554433221100"
NEW = "379f2d097119cce908ed71ce6bd862ebedb4e0c0"
OLD = "21366a38df449d17b2eacf72d240a6cd4cfca9a7"
W1 = "1dcee4ca7f0066b785f5a738ff7a4486e12090a0"  # console logs, no HAR
W2 = "4207442b2b0567368956dba064c22a3f9e8d7c6b"  # HAR, no console logs
SINCE = datetime(2026, 11, 20, tzinfo=UTC)
UNTIL = datetime(2026, 11, 27, tzinfo=UTC)

Rig = tuple[Replay, BrowserStackSource]
Serve = Callable[..., Awaitable[Rig]]
Override = Callable[[Seen], web.Response | None]


def vendor_answer(override: Override | None) -> Callable[[Seen], web.Response]:
    """The recorded account; past the recorded pages every listing is empty."""

    def answer(seen: Seen) -> web.Response:
        if override is not None and (special := override(seen)) is not None:
            return special
        product, _, rest = seen.path.lstrip("/").partition("/")
        offset = seen.query.get("offset", "0")
        if rest == "builds.json":
            name = f"{product}-builds-offset-{offset}.json"
            return reply(VENDOR, name) if has_recording(VENDOR, name) else reply_json([])
        if rest.startswith("builds/") and rest.endswith("/sessions.json"):
            build = rest.split("/")[1]
            name = f"{product}-build-{build}-sessions.json"
            return reply(VENDOR, name) if offset == "0" else reply_json([])
        if rest.startswith("sessions/"):
            name = f"{product}-session-{rest.removeprefix('sessions/')}"
            if has_recording(VENDOR, name):
                return reply(VENDOR, name)
        return reply(VENDOR, "error-404-session.json", status=404)

    return answer


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())

        async def start(override: Override | None = None, **options: Any) -> Rig:
            server = await stack.enter_async_context(
                replay(vendor_answer(override), auth=("Authorization", BASIC))
            )
            values: dict[str, Any] = {"username": USER, "page_limit": 2, **options}
            settings = BrowserStackSettings(base_url=server.url, token=Secret(KEY), **values)
            return server, BrowserStackSource.create(http, settings, FAST)

        yield start


async def listed(source: BrowserStackSource) -> dict[str, Session]:
    return {session.session_id: session async for session in source.sessions(SINCE, UNTIL)}


def record(product: str, session_id: str) -> Mapping[str, Any]:
    document: Mapping[str, Mapping[str, Any]] = recorded(
        VENDOR, f"{product}-session-{session_id}.json"
    )
    return document["automation_session"]


async def test_every_build_is_paged_and_every_session_in_the_window_listed(serve: Serve) -> None:
    server, source = await serve()

    found = await listed(source)

    assert list(found) == [RUN, DOC, QUEUED, NEW, W2, W1]
    asked = [(seen.path, seen.query["limit"], seen.query["offset"]) for seen in server.requests]
    assert asked == [
        ("/app-automate/builds.json", "2", "0"),
        (f"/app-automate/builds/{B1}/sessions.json", "2", "0"),
        (f"/app-automate/builds/{B1}/sessions.json", "2", "2"),
        (f"/app-automate/builds/{B2}/sessions.json", "2", "0"),
        ("/app-automate/builds.json", "2", "2"),
        (f"/app-automate/builds/{B3}/sessions.json", "2", "0"),
        (f"/app-automate/builds/{B3}/sessions.json", "2", "2"),
        ("/automate/builds.json", "2", "0"),
        (f"/automate/builds/{A1}/sessions.json", "2", "0"),
        (f"/automate/builds/{A1}/sessions.json", "2", "2"),
    ]
    assert all(seen.headers["Authorization"] == BASIC for seen in server.requests)


async def test_a_new_session_in_an_old_build_is_found_and_old_sessions_are_not(
    serve: Serve,
) -> None:
    _, source = await serve()

    found = await listed(source)

    # B3 is the oldest build, on the last page, and its other session is weeks old.
    assert NEW in found and OLD not in found
    assert found[NEW].started_at == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    assert found[NEW].locator == f"app-automate:{B3}"


async def test_a_daemon_relists_only_builds_that_changed_between_full_passes(
    serve: Serve,
) -> None:
    b3_duration = {"value": 1731351}

    def b3_grows(seen: Seen) -> web.Response | None:
        if seen.path == "/app-automate/builds.json" and seen.query["offset"] == "2":
            page = recorded(VENDOR, "app-automate-builds-offset-2.json")
            page[0]["automation_build"]["duration"] = b3_duration["value"]
            return reply_json(page)
        return None

    server, source = await serve(b3_grows, relist_every=3)

    def sessions_asked() -> set[str]:
        asked = {
            seen.path.split("/")[3] for seen in server.requests if "sessions.json" in seen.path
        }
        server.requests.clear()
        return asked

    first = await listed(source)
    assert sessions_asked() == {B1, B2, B3, A1}
    second = await listed(source)
    # B1 is running, and B2 says done while its session is still queued.
    assert sessions_asked() == {B1, B2}
    assert set(second) == {RUN, DOC, QUEUED}
    b3_duration["value"] += 40  # a run reusing B3's name added a session and ended
    await listed(source)
    assert sessions_asked() == {B1, B2, B3}
    third_full = await listed(source)
    assert sessions_asked() == {B1, B2, B3, A1}
    assert third_full == first


async def test_complete_once_browserstack_status_is_final(serve: Serve) -> None:
    def verdict_while_running(seen: Seen) -> web.Response | None:
        if seen.path != f"/automate/builds/{A1}/sessions.json" or seen.query["offset"] != "0":
            return None
        entries = recorded(VENDOR, f"automate-build-{A1}-sessions.json")
        entries[0]["automation_session"].update(status="passed", browserstack_status="running")
        return reply_json(entries)

    _, source = await serve(verdict_while_running)

    found = await listed(source)

    assert {sid for sid, session in found.items() if not session.complete} == {RUN, QUEUED, W2}
    assert found[NEW].complete  # "error" is final
    assert found[DOC].record == record("app-automate", DOC)


async def test_app_automate_files_of_the_documented_sample(serve: Serve) -> None:
    server, source = await serve()
    session = (await listed(source))[DOC]
    details = record("app-automate", DOC)

    artifacts = await source.artifacts(session)

    assert [(a.name, a.kind, a.url) for a in artifacts] == [
        ("session.json", "session_record", None),
        ("session-details.json", "session_details", None),
        ("video.mp4", "video", details["video_url"]),
        ("logs/text.log", "text_log", details["logs"]),
        ("logs/appium.log", "appium_log", details["appium_logs_url"]),
        ("logs/device.log", "device_log", details["device_logs_url"]),
        ("logs/network.har", "network_log", details["network_logs_url"]),
    ]
    assert artifacts[0] == json_artifact("session.json", "session_record", session.record)
    assert artifacts[1].content == recorded_bytes(VENDOR, f"app-automate-session-{DOC}.json")
    assert [seen.path for seen in server.to(f"/app-automate/sessions/{DOC}.json")]
    assert source.not_offered(session) == []


async def test_logs_a_session_did_not_capture_are_named_with_their_capability(
    serve: Serve,
) -> None:
    _, source = await serve()
    found = await listed(source)

    new_files = [a.kind for a in await source.artifacts(found[NEW])]
    w1_files = [a.kind for a in await source.artifacts(found[W1])]
    w2_files = [a.kind for a in await source.artifacts(found[W2])]

    assert new_files == ["session_record", "session_details", "video", "text_log", "appium_log"]
    assert source.not_offered(found[NEW]) == [
        "device_log (device_logs_url): not captured for this session "
        "(capability browserstack.deviceLogs off or not set)",
        "network_log (network_logs_url): not captured for this session "
        "(capability browserstack.networkLogs off or not set)",
    ]
    assert w1_files[2:] == ["video", "text_log", "selenium_log", "console_log"]
    assert [note.split(" ")[0] for note in source.not_offered(found[W1])] == ["network_log"]
    assert "browserstack.networkLogs" in source.not_offered(found[W1])[0]
    assert w2_files[2:] == ["video", "text_log", "selenium_log", "network_log"]
    assert "browserstack.console" in source.not_offered(found[W2])[0]


async def test_not_offered_without_artifacts_judges_the_listed_record(serve: Serve) -> None:
    _, source = await serve()
    session = (await listed(source))[RUN]

    notes = source.not_offered(session)

    assert [note.split(" ")[0] for note in notes] == ["video", "network_log"]


async def test_get_session_asks_the_product_its_locator_names(serve: Serve) -> None:
    server, source = await serve()

    session = await source.get_session(W1, locator=f"automate:{A1}")

    assert session.record == record("automate", W1) and session.complete
    assert [seen.path for seen in server.requests] == [f"/automate/sessions/{W1}.json"]


async def test_get_session_without_locator_tries_each_product(serve: Serve) -> None:
    server, source = await serve()

    session = await source.get_session(W2)

    assert session.locator == f"automate:{A1}"
    assert [seen.path for seen in server.requests] == [
        f"/app-automate/sessions/{W2}.json",
        f"/automate/sessions/{W2}.json",
    ]
    with pytest.raises(VendorError) as caught:
        await source.get_session("gone")
    assert caught.value.status == 404 and "BrowserStack: no session 'gone'" in str(caught.value)


async def test_wrong_access_key_is_a_browserstack_401(serve: Serve) -> None:
    def refuse(seen: Seen) -> web.Response:
        return web.Response(status=401, text="HTTP Basic: Access denied.\n")

    server, source = await serve(refuse)

    with pytest.raises(VendorError) as caught:
        await listed(source)

    assert caught.value.vendor == "BrowserStack" and caught.value.status == 401
    assert f"BrowserStack answered HTTP 401 for GET {server.url}/app-automate/builds.json" in str(
        caught.value
    )
    assert KEY not in str(caught.value)


async def test_a_listing_that_ignores_offset_fails_instead_of_looping(serve: Serve) -> None:
    def same_page(seen: Seen) -> web.Response | None:
        if seen.path == "/app-automate/builds.json":
            return reply(VENDOR, "app-automate-builds-offset-0.json")
        return None

    server, source = await serve(same_page)

    with pytest.raises(BadVendorResponse, match="offset 2 repeated the previous page"):
        await listed(source)
    assert len(server.to("/app-automate/builds.json")) == 2


async def test_a_build_pushed_onto_the_next_page_is_listed_once(serve: Serve) -> None:
    def shifted(seen: Seen) -> web.Response | None:
        # A build created between the two pages pushes B2 to the top of the second page.
        if seen.path == "/app-automate/builds.json" and seen.query["offset"] == "2":
            page = recorded(VENDOR, "app-automate-builds-offset-0.json")[1:]
            return reply_json(page + recorded(VENDOR, "app-automate-builds-offset-2.json"))
        return None

    server, source = await serve(shifted)

    found = await listed(source)

    assert list(found) == [RUN, DOC, QUEUED, NEW, W2, W1]
    assert len(server.to(f"/app-automate/builds/{B2}/sessions.json")) == 1


async def test_a_listing_that_is_not_an_array_is_a_bad_response(serve: Serve) -> None:
    def wrapped(seen: Seen) -> web.Response | None:
        return reply_json({"builds": []}) if seen.path.endswith("builds.json") else None

    _, source = await serve(wrapped)

    with pytest.raises(BadVendorResponse, match="did not answer a JSON array"):
        await listed(source)


async def test_one_product_only(serve: Serve) -> None:
    server, source = await serve(products=("automate",))

    found = await listed(source)

    assert list(found) == [W2, W1]
    assert not [seen for seen in server.requests if seen.path.startswith("/app-automate/")]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('products = ["app-automate", "live"]', "must name app-automate and/or automate"),
        ("limit = 101", "must be at most 100, got 101"),
    ],
)
def test_configuration_mistakes_name_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, message: str
) -> None:
    monkeypatch.setenv("BROWSERSTACK_ACCESS_KEY", KEY)
    path = tmp_path / "archiver.toml"
    path.write_text(
        '[store]\nurl = "file:///tmp/evidence"\n[state]\nurl = "sqlite:////tmp/state.db"\n'
        f'[sources.browserstack]\nbase_url = "https://api.browserstack.com"\nusername = "{USER}"\n'
        f"{line}\n"
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert caught.value.key is not None and caught.value.key.startswith("sources.browserstack.")
    assert message in str(caught.value) and str(path) in str(caught.value)
