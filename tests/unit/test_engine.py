"""Engine rules over a scripted source, a real HTTP artifact server, memory store, SQLite."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog.testing
from aiohttp import web
from aiohttp.test_utils import TestServer

from archiver import engine as engine_module
from archiver.config import EngineSettings, HttpSettings, Secret, SourceSettings
from archiver.engine import Engine
from archiver.errors import StateError, StoreBroken, StoreError, VendorError
from archiver.http import VendorClient, header
from archiver.ledger import GENESIS_SHA256, LedgerEntry, entry_key
from archiver.manifest import Manifest
from archiver.metrics import PrometheusObserver
from archiver.model import Artifact, Session
from archiver.observe import NullObserver
from archiver.state import State, open_state
from archiver.store.memory import MemoryStore
from archiver.store.observed import ObservedStore

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FAST_HTTP = HttpSettings(attempts=2, backoff_initial=0.01, backoff_max=0.02)


def body_for(path: str) -> bytes:
    return hashlib.sha256(path.encode()).digest() * 500


@dataclass
class ArtifactServer:
    server: TestServer
    requests: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    not_ready: set[str] = field(default_factory=set)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@pytest.fixture
async def files() -> AsyncIterator[ArtifactServer]:
    holder: list[ArtifactServer] = []

    async def serve(request: web.Request) -> web.Response:
        state = holder[0]
        state.requests.append(request.path)
        if request.path.startswith("/missing"):
            return web.json_response({"userMessage": "gone"}, status=404)
        if request.path.startswith("/expired"):  # a pre-signed URL past its expiry
            return web.Response(status=403, text="<Error><Code>AccessDenied</Code></Error>")
        if request.path in state.not_ready:
            return web.Response(status=204)
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        await asyncio.sleep(0.02)
        state.in_flight -= 1
        return web.Response(body=body_for(request.path), content_type="video/mp4")

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    holder.append(ArtifactServer(server=server))
    yield holder[0]
    await server.close()


class ScriptedSource:
    """A source whose sessions and artifact lists the test sets directly."""

    name = "fake"

    def __init__(self, client: VendorClient, files: ArtifactServer) -> None:
        self.client = client
        self.settings = SourceSettings(base_url="http://127.0.0.1:1", token=Secret("t" * 10))
        self.files = files
        self.listed: list[Session] = []
        self.artifact_paths: dict[str, list[str]] = {}
        self.list_calls: list[tuple[datetime, datetime]] = []
        self.unlisted: set[str] = set()
        self.listing_breaks_after: int | None = None
        self.renewed_paths: dict[str, str] = {}  # an expiring URL's path: its fresh one's
        self.renewals: list[str] = []

    def add(
        self,
        session_id: str,
        *,
        complete: bool = True,
        paths: list[str] | None = None,
        started: datetime | None = None,
    ) -> Session:
        session = Session(
            source="fake",
            session_id=session_id,
            started_at=started or NOW - timedelta(hours=1),
            complete=complete,
            record={"id": session_id, "complete": complete},
        )
        self.listed = [s for s in self.listed if s.session_id != session_id] + [session]
        self.artifact_paths[session_id] = paths or [f"/{session_id}/video.mp4"]
        return session

    async def sessions(self, since: datetime, until: datetime) -> AsyncIterator[Session]:
        self.list_calls.append((since, until))
        listed = [session for session in self.listed if session.session_id not in self.unlisted]
        for number, session in enumerate(listed):
            if number == self.listing_breaks_after:
                raise VendorError("fake: the listing broke off", vendor="fake", status=503)
            yield session

    async def get_session(self, session_id: str, *, locator: str | None = None) -> Session:
        for session in self.listed:
            if session.session_id == session_id:
                return session
        raise VendorError(f"fake: no session {session_id}", vendor="fake", status=404)

    async def artifacts(self, session: Session) -> list[Artifact]:
        found = [
            Artifact(
                name="record.json", kind="record", content=json.dumps(dict(session.record)).encode()
            )
        ]
        for index, path in enumerate(self.artifact_paths[session.session_id]):
            found.append(
                Artifact(
                    name=f"files/{index}-{path.rsplit('/', 1)[-1]}",
                    kind="video",
                    url=self.files.url(path) + "?X-Amz-Signature=secret",
                    renew_url=self._renewer(path) if path in self.renewed_paths else None,
                )
            )
        return found

    def _renewer(self, path: str) -> Callable[[], Awaitable[str]]:
        async def renew() -> str:
            self.renewals.append(path)
            return self.files.url(self.renewed_paths[path]) + "?X-Amz-Signature=fresh"

        return renew

    def not_offered(self, session: Session) -> list[str]:
        return []


@dataclass
class Rig:
    engine: Engine
    source: ScriptedSource
    store: MemoryStore
    state: State
    files: ArtifactServer
    clock: list[datetime]


@pytest.fixture
async def rig(files: ArtifactServer, tmp_path: Path) -> AsyncIterator[Rig]:
    state = await open_state(f"sqlite:///{tmp_path}/state.db")
    store = MemoryStore()
    clock = [NOW]
    async with aiohttp.ClientSession() as http:
        client = VendorClient(
            http,
            vendor="Fake",
            base_url="http://127.0.0.1:1",
            auth_headers=header("X-Token", Secret("t" * 10)),
            settings=FAST_HTTP,
        )
        source = ScriptedSource(client, files)
        engine = Engine(
            sources={"fake": source},
            store=store,
            state=state,
            settings=EngineSettings(
                download_concurrency=3,
                max_attempts=2,
                not_ready_attempts=2,
                not_ready_delay_seconds=0.01,
            ),
            clock=lambda: clock[0],
        )
        yield Rig(engine=engine, source=source, store=store, state=state, files=files, clock=clock)
    await state.close()


def before_manifest_writes(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, action: Callable[[str], Awaitable[None]]
) -> None:
    """Run ``action(key)`` before every manifest the store is asked to write (a first
    archive's is created only if absent, a re-archive's replaces the one before)."""
    put_bytes, put_bytes_if_absent = rig.store.put_bytes, rig.store.put_bytes_if_absent

    async def put_bytes_after_action(key: str, data: bytes, **options: Any) -> None:
        if key.endswith("/manifest.json"):
            await action(key)
        await put_bytes(key, data, **options)

    async def create_after_action(key: str, data: bytes, **options: Any) -> bool:
        if key.endswith("/manifest.json"):
            await action(key)
        return await put_bytes_if_absent(key, data, **options)

    monkeypatch.setattr(rig.store, "put_bytes", put_bytes_after_action)
    monkeypatch.setattr(rig.store, "put_bytes_if_absent", create_after_action)


async def manifest(rig: Rig, session_id: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(
        await rig.store.read_bytes(f"fake/{session_id}/manifest.json")
    )
    return data


async def test_archives_with_hashes_and_manifest_last(rig: Rig) -> None:
    rig.source.add("s1", paths=["/s1/a.mp4", "/s1/b.mp4"])
    report = await rig.engine.run_once()
    assert report.ok and report.archived == 1 and report.artifacts == 3
    doc = await manifest(rig, "s1")
    assert doc["source"] == "fake" and doc["session_id"] == "s1"
    assert doc["session"] == {"id": "s1", "complete": True}
    assert str(doc["archived_at"]).endswith("Z")
    entries = {entry["key"]: entry for entry in doc["artifacts"]}  # type: ignore[attr-defined]
    video = entries["fake/s1/files/0-a.mp4"]
    assert video["sha256"] == hashlib.sha256(body_for("/s1/a.mp4")).hexdigest()
    assert video["size"] == len(body_for("/s1/a.mp4"))
    assert video["source_url"].endswith("/s1/a.mp4")  # query string (signature) stripped
    for entry in entries.values():
        stored = await rig.store.read_bytes(entry["key"])
        assert hashlib.sha256(stored).hexdigest() == entry["sha256"]
    # The manifest is the session's last object; its ledger entry follows it.
    assert rig.store.write_order[-2:] == ["fake/s1/manifest.json", "ledger/000000000000.json"]
    record = await rig.state.get("fake", "s1")
    assert record is not None and record.status == "archived"


async def test_the_evidence_page_is_stored_before_the_manifest_that_lists_it(rig: Rig) -> None:
    rig.engine.archiver.evidence_page = True
    rig.source.add("s1", paths=["/s1/a.mp4", "/s1/b.png"])
    assert (await rig.engine.run_once()).ok
    doc = await manifest(rig, "s1")
    pages = [entry for entry in doc["artifacts"] if entry["kind"] == "evidence_page"]  # type: ignore[attr-defined]
    assert [page["key"] for page in pages] == ["fake/s1/index.html"]
    page = await rig.store.read_bytes("fake/s1/index.html")
    assert pages[0]["sha256"] == hashlib.sha256(page).hexdigest()
    assert pages[0]["content_type"] == "text/html; charset=utf-8"
    order = rig.store.write_order
    assert order.index("fake/s1/index.html") < order.index("fake/s1/manifest.json")
    text = page.decode()
    assert '<video controls preload="metadata" src="files/0-a.mp4">' in text
    assert 'href="manifest.json"' in text and "<script" not in text


async def test_artifacts_are_not_synced_one_by_one_and_the_manifest_is_their_barrier(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[tuple[str, bool]] = []  # (key, durable) in commit order
    install = rig.store._install

    def recording_install(key: str, data: bytes, content_type: str | None, **options: Any) -> None:
        written.append((key, options.get("durable", True)))
        install(key, data, content_type, **options)

    monkeypatch.setattr(rig.store, "_install", recording_install)
    rig.source.add("s1", paths=["/s1/a.mp4", "/s1/b.mp4"])
    rig.source.add("s2")
    assert (await rig.engine.run_once()).ok
    # A durable write makes every object committed before it durable: each manifest is
    # durable and comes after its artifacts, which skipped a sync of their own.
    order = [key for key, _ in written]
    for session_id in ("s1", "s2"):
        manifest_key = f"fake/{session_id}/manifest.json"
        listed = [
            entry["key"]
            for entry in (await manifest(rig, session_id))["artifacts"]  # type: ignore[attr-defined]
        ]
        assert len(listed) >= 2
        assert all((key, False) in written for key in listed)
        assert (manifest_key, True) in written
        assert max(order.index(key) for key in listed) < order.index(manifest_key)
    assert not rig.store.not_yet_durable


async def test_second_pass_downloads_and_writes_nothing(rig: Rig) -> None:
    rig.source.add("s1")
    await rig.engine.run_once()
    requests, writes = len(rig.files.requests), len(rig.store.write_order)
    report = await rig.engine.run_once()
    assert report.ok and report.archived == 0 and report.skipped == 1
    assert len(rig.files.requests) == requests
    assert len(rig.store.write_order) == writes


async def test_listed_sessions_are_looked_up_in_the_state_in_batches(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "LOOKUP_BATCH", 4)
    asked: list[int] = []
    get_many = rig.state.get_many

    async def counting_get_many(source: str, session_ids: Any) -> Any:
        asked.append(len(session_ids))
        return await get_many(source, session_ids)

    async def no_get(*args: Any) -> None:
        raise AssertionError("a listed session was looked up on its own")

    monkeypatch.setattr(rig.state, "get_many", counting_get_many)
    monkeypatch.setattr(rig.state, "get", no_get)
    for number in range(10):
        rig.source.add(f"s{number}")
    await rig.state.record_success("fake", "s5", manifest_key="fake/s5/manifest.json", at=NOW)

    report = await rig.engine.run_once()
    assert asked == [4, 4, 2]
    assert (report.archived, report.skipped) == (9, 1)


async def test_sessions_listed_before_the_listing_broke_off_are_archived(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "LOOKUP_BATCH", 4)
    for number in range(7):
        rig.source.add(f"s{number}")
    rig.source.listing_breaks_after = 5  # one batch of 4, then one session, then the error

    report = await rig.engine.run_once()
    assert report.archived == 5
    assert report.source_errors and "the listing broke off" in report.source_errors[0]
    assert await rig.state.watermark("fake") is None  # the next pass lists them all again
    assert not await rig.store.exists("fake/s5/manifest.json")


async def test_a_broken_store_stops_the_pass_and_fails_no_session(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(key: str) -> None:
        raise StoreBroken("memory://: writing back failed")

    before_manifest_writes(rig, monkeypatch, broken)
    for number in range(5):
        rig.source.add(f"s{number}")
    with pytest.raises(StoreBroken, match="writing back failed"):
        await rig.engine.run_once()
    # No attempt is spent: after a restart every session is archived as if nothing happened.
    assert await rig.state.get_many("fake", [f"s{number}" for number in range(5)]) == {}
    assert await rig.state.watermark("fake") is None

    monkeypatch.undo()
    report = await rig.engine.run_once()
    assert report.ok and report.archived == 5


async def test_sessions_past_their_downloads_free_their_slot_but_are_bounded(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.source.settings = replace(rig.source.settings, session_concurrency=1)
    finishing = engine_module.FINISHING_PER_SLOT
    events: list[str] = []  # what the pass did, in order
    changed = asyncio.Event()
    disk_answers = asyncio.Event()

    def note(event: str) -> None:
        events.append(event)
        changed.set()

    async def slow(key: str) -> None:
        note("manifest waits")
        await disk_answers.wait()

    before_manifest_writes(rig, monkeypatch, slow)
    artifacts = rig.source.artifacts

    async def noting_artifacts(session: Session) -> list[Artifact]:
        note(f"start {session.session_id}")
        return await artifacts(session)

    monkeypatch.setattr(rig.source, "artifacts", noting_artifacts)
    source_pass = engine_module._SourcePass

    def noting_source_pass(**fields: Any) -> engine_module._SourcePass:
        """The pass's book-keeping, with its session slots and finishing places watched."""
        run = source_pass(**fields)
        free_slot, take_place = run.slots.release, run.finishing.acquire

        def noting_free_slot() -> None:
            note("slot freed")
            free_slot()

        async def noting_take_place() -> bool:
            note("asks to finish")
            taken = await take_place()
            note("finishing")
            return taken

        monkeypatch.setattr(run.slots, "release", noting_free_slot)
        monkeypatch.setattr(run.finishing, "acquire", noting_take_place)
        return run

    monkeypatch.setattr(engine_module, "_SourcePass", noting_source_pass)
    for number in range(8):
        rig.source.add(f"s{number}")
    passing = asyncio.create_task(rig.engine.run_once())
    async with asyncio.timeout(120):  # only against a hang: the events below come quickly
        while not (
            events.count("manifest waits") >= finishing
            and events.count("asks to finish") > finishing
        ):
            changed.clear()
            await changed.wait()
    # One session slot, yet four sessions wait for the disk with their manifests, and a
    # fifth has its artifacts stored and waits for one of them to finish, keeping its
    # session slot meanwhile: no sixth can start.
    assert events.count("manifest waits") == finishing
    assert events.count("finishing") == finishing
    assert events.count("slot freed") == finishing
    assert [event for event in events if event.startswith("start")] == [
        f"start s{number}" for number in range(finishing + 1)
    ]
    downloaded = {path.split("/")[1] for path in rig.files.requests}
    assert len(downloaded) == finishing + 1
    disk_answers.set()
    report = await passing
    assert report.ok and report.archived == 8
    # Throughout the pass, a session gave its slot back only once it had a finishing place.
    for end in range(len(events) + 1):
        so_far = events[:end]
        assert so_far.count("slot freed") <= so_far.count("finishing"), so_far


async def test_sessions_failing_after_their_downloads_give_their_places_back(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.source.settings = replace(rig.source.settings, session_concurrency=1)

    async def full(key: str) -> None:
        raise StoreError("memory://: the disk is full")

    before_manifest_writes(rig, monkeypatch, full)
    sessions = 2 * engine_module.FINISHING_PER_SLOT + 2
    for number in range(sessions):
        rig.source.add(f"s{number}")
    report = await asyncio.wait_for(rig.engine.run_once(), 30)  # a place kept would hang it
    assert (report.archived, len(report.failed)) == (0, sessions)


async def test_failing_session_does_not_stop_others(rig: Rig) -> None:
    rig.source.add("bad", paths=["/missing/x.mp4"])
    rig.source.add("good")
    report = await rig.engine.run_once()
    assert report.archived == 1 and not report.ok
    assert "fake session bad" in report.failed[0] and "HTTP 404" in report.failed[0]
    assert not await rig.store.exists("fake/bad/manifest.json")
    record = await rig.state.get("fake", "bad")
    assert record is not None and record.status == "failed" and record.attempts == 1
    await rig.engine.run_once()
    record = await rig.state.get("fake", "bad")
    assert record is not None and record.attempts == 2
    report = await rig.engine.run_once()  # max_attempts = 2: given up
    assert report.given_up == 1 and report.ok


async def test_an_expired_url_is_renewed_once_and_downloaded(rig: Rig) -> None:
    rig.source.add("s1", paths=["/expired/video.mp4"])
    rig.source.renewed_paths["/expired/video.mp4"] = "/fresh/video.mp4"

    report = await rig.engine.run_once()

    assert report.ok and report.archived == 1
    assert rig.source.renewals == ["/expired/video.mp4"]
    assert rig.files.requests == ["/expired/video.mp4", "/fresh/video.mp4"]
    doc = await manifest(rig, "s1")
    entry = next(a for a in doc["artifacts"] if a["kind"] == "video")  # type: ignore[attr-defined]
    assert entry["source_url"] == rig.files.url("/fresh/video.mp4")
    assert entry["sha256"] == sha(body_for("/fresh/video.mp4"))


async def test_a_renewed_url_refused_again_fails_the_session(rig: Rig) -> None:
    rig.source.add("s1", paths=["/expired/video.mp4"])
    rig.source.renewed_paths["/expired/video.mp4"] = "/expired/again.mp4"

    report = await rig.engine.run_once()

    assert not report.ok and "HTTP 403" in report.failed[0]
    assert rig.source.renewals == ["/expired/video.mp4"]  # once, never in a loop
    assert rig.files.requests == ["/expired/video.mp4", "/expired/again.mp4"]


async def test_a_403_without_a_way_to_renew_fails_at_once(rig: Rig) -> None:
    rig.source.add("s1", paths=["/expired/video.mp4"])

    report = await rig.engine.run_once()

    assert not report.ok and "HTTP 403" in report.failed[0]
    assert rig.files.requests == ["/expired/video.mp4"]


async def test_failed_session_recovers_on_later_pass(rig: Rig) -> None:
    rig.source.add("flaky", paths=["/missing/x.mp4"])
    assert not (await rig.engine.run_once()).ok
    rig.source.add("flaky", paths=["/flaky/ok.mp4"])
    rig.source.unlisted.add("flaky")  # past the watermark: found through its failure row
    report = await rig.engine.run_once()
    assert report.ok and report.archived == 1


async def test_processing_session_waits_and_holds_watermark(rig: Rig) -> None:
    early = NOW - timedelta(hours=5)
    rig.source.add("busy", complete=False, started=early)
    rig.source.add("done")
    report = await rig.engine.run_once()
    assert report.archived == 1 and report.pending == 1
    assert await rig.state.watermark("fake") == early
    assert not await rig.store.exists("fake/busy/manifest.json")
    rig.source.add("busy", complete=True, started=early)
    rig.clock[0] = NOW + timedelta(minutes=5)
    report = await rig.engine.run_once()
    assert report.archived == 1
    assert await rig.state.watermark("fake") == NOW + timedelta(minutes=5)


async def test_not_ready_artifact_makes_session_pending_not_failed(rig: Rig) -> None:
    rig.files.not_ready.add("/p/report.pdf")
    rig.source.add("p", paths=["/p/report.pdf"])
    report = await rig.engine.run_once()
    assert report.ok and report.pending == 1 and report.archived == 0
    record = await rig.state.get("fake", "p")
    assert record is not None and record.status == "pending"
    rig.files.not_ready.clear()
    report = await rig.engine.run_once()
    assert report.archived == 1


async def test_overdue_processing_session_archived_as_it_is(rig: Rig) -> None:
    rig.source.add("stuck", complete=False)
    await rig.engine.run_once()
    rig.clock[0] = NOW + timedelta(hours=49)
    report = await rig.engine.run_once()
    assert report.archived == 1
    doc = await manifest(rig, "stuck")
    assert any("in progress" in note for note in doc["not_archived"])  # type: ignore[attr-defined]


async def test_rearchive_keeps_previous_manifest_and_bytes(rig: Rig) -> None:
    rig.source.add("s1")
    await rig.engine.run_once()
    first = await rig.store.read_bytes("fake/s1/manifest.json")
    rig.clock[0] = NOW + timedelta(days=1)
    report = await rig.engine.rearchive("fake", ["s1"])
    assert report.ok and report.archived == 1
    doc = await manifest(rig, "s1")
    history_key = str(doc["previous_manifest"])
    assert history_key.startswith("fake/s1/history/")
    assert await rig.store.read_bytes(history_key) == first
    new_keys = [entry["key"] for entry in doc["artifacts"]]  # type: ignore[attr-defined]
    assert all(key.startswith("fake/s1/rearchived/") for key in new_keys)
    old_keys = [entry["key"] for entry in json.loads(first)["artifacts"]]
    for key in old_keys:
        assert await rig.store.exists(key)


async def test_rearchive_of_unknown_session_fails_cleanly(rig: Rig) -> None:
    report = await rig.engine.rearchive("fake", ["nope"])
    assert not report.ok and "HTTP" not in report.failed[0] and "nope" in report.failed[0]


async def test_download_concurrency_is_bounded(rig: Rig) -> None:
    for number in range(6):
        rig.source.add(f"s{number}", paths=[f"/s{number}/{k}.mp4" for k in range(4)])
    report = await rig.engine.run_once()
    assert report.archived == 6
    assert 1 < rig.files.max_in_flight <= 3


async def test_manifest_already_stored_but_state_lost(rig: Rig) -> None:
    rig.source.add("s1")
    await rig.engine.run_once()
    await rig.state.forget("fake", "s1")
    requests = len(rig.files.requests)
    report = await rig.engine.run_once()
    assert report.archived == 0 and len(rig.files.requests) == requests
    record = await rig.state.get("fake", "s1")
    assert record is not None and record.status == "archived"


async def ledger_entries(store: MemoryStore) -> list[LedgerEntry]:
    keys = [key async for key in store.list_keys("ledger/")]
    return [LedgerEntry.from_bytes(await store.read_bytes(key)) for key in keys]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_ledger_chains_every_manifest_and_every_rearchive(rig: Rig) -> None:
    rig.source.add("s1")
    rig.source.add("s2")
    await rig.engine.run_once()
    first = await rig.store.read_bytes("fake/s1/manifest.json")
    rig.clock[0] = NOW + timedelta(days=1)
    assert (await rig.engine.rearchive("fake", ["s1"])).ok

    entries = await ledger_entries(rig.store)
    assert [entry.seq for entry in entries] == list(range(len(entries)))
    assert entries[0].previous_entry_sha256 == GENESIS_SHA256
    for before, after in itertools.pairwise(entries):
        assert after.previous_entry_sha256 == sha(await rig.store.read_bytes(entry_key(before.seq)))
    records = [record for entry in entries for record in entry.records]
    assert sorted(record.session_id for record in records) == ["s1", "s1", "s2"]
    s1_entries = [record for record in records if record.session_id == "s1"]
    assert [entry.manifest_sha256 for entry in s1_entries] == [
        sha(first),
        sha(await rig.store.read_bytes("fake/s1/manifest.json")),
    ]
    history_key = s1_entries[1].previous_manifest_key
    assert history_key is not None and history_key.startswith("fake/s1/history/")
    assert sha(await rig.store.read_bytes(history_key)) == s1_entries[0].manifest_sha256
    assert s1_entries[0].previous_manifest_key is None


async def test_crash_between_manifest_and_ledger_entry_is_recorded_on_the_next_pass(
    rig: Rig,
) -> None:
    rig.source.add("s1")
    await rig.engine.run_once()
    # As if the process died right after writing the manifest: no entry, no state row.
    del rig.store.objects[entry_key(0)]
    await rig.state.forget("fake", "s1")
    rig.engine.ledger = type(rig.engine.ledger)(rig.store, clock=lambda: rig.clock[0])

    await rig.engine.run_once()
    await rig.engine.run_once()

    entries = await ledger_entries(rig.store)
    assert len(entries) == 1
    assert [record.manifest_sha256 for record in entries[0].records] == [
        sha(await rig.store.read_bytes("fake/s1/manifest.json"))
    ]


async def test_recovery_does_not_record_a_manifest_twice(rig: Rig) -> None:
    rig.source.add("s1")
    await rig.engine.run_once()
    await rig.state.forget("fake", "s1")  # died after the ledger entry, before the state row
    await rig.engine.run_once()
    assert len(await ledger_entries(rig.store)) == 1


async def test_rearchive_records_an_unrecorded_manifest_before_replacing_it(rig: Rig) -> None:
    rig.source.add("s1")
    await rig.engine.run_once()
    first = await rig.store.read_bytes("fake/s1/manifest.json")
    del rig.store.objects[entry_key(0)]
    rig.engine.ledger = type(rig.engine.ledger)(rig.store, clock=lambda: rig.clock[0])
    rig.clock[0] = NOW + timedelta(hours=1)

    assert (await rig.engine.rearchive("fake", ["s1"])).ok

    entries = await ledger_entries(rig.store)
    assert [record.manifest_sha256 for entry in entries for record in entry.records] == [
        sha(first),
        sha(await rig.store.read_bytes("fake/s1/manifest.json")),
    ]


async def test_a_state_error_while_recording_a_failure_fails_that_session_only(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def state_broken(*args: Any, **kwargs: Any) -> int:
        raise StateError("state.db: disk I/O error")

    monkeypatch.setattr(rig.state, "record_failure", state_broken)
    rig.source.add("bad", paths=["/missing/x.mp4"])
    rig.source.add("good")
    report = await rig.engine.run_once()  # nothing escapes, grouped or not
    assert report.archived == 1 and await rig.store.exists("fake/good/manifest.json")
    assert len(report.failed) == 1 and "disk I/O error" in report.failed[0]
    assert "fake session bad" in report.failed[0] and not report.source_errors


async def test_a_state_error_while_holding_a_session_back_fails_that_session_only(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def state_broken(*args: Any, **kwargs: Any) -> None:
        raise StateError("state.db: database disk image is malformed")

    monkeypatch.setattr(rig.state, "record_pending", state_broken)
    rig.files.not_ready.add("/rendering/report.pdf")
    rig.source.add("rendering", paths=["/rendering/report.pdf"])
    rig.source.add("good")
    report = await rig.engine.run_once()
    assert report.archived == 1 and not report.source_errors
    assert report.failed == ["fake session rendering: state.db: database disk image is malformed"]
    assert not await rig.store.exists("fake/rendering/manifest.json")


async def test_two_archivers_sharing_a_store_archive_each_session_once(
    rig: Rig, tmp_path: Path
) -> None:
    """A second archiver with a state of its own, on the same store and sessions: each
    session gets one writer (the store's claim), one manifest and one ledger record."""
    for number in range(6):
        rig.source.add(f"s{number}", paths=[f"/s{number}/a.mp4", f"/s{number}/b.mp4"])
    other_state = await open_state(f"sqlite:///{tmp_path}/other.db")
    try:
        other = Engine(
            sources=rig.engine.sources,
            store=rig.store,
            state=other_state,
            settings=rig.engine.settings,
            clock=rig.engine.clock,
        )
        first, second = await asyncio.gather(rig.engine.run_once(), other.run_once())
        assert first.archived + second.archived == 6
        assert first.pending + second.pending == 6  # each waited for the other's sessions
        assert not first.failed and not second.failed
        again = await asyncio.gather(rig.engine.run_once(), other.run_once())
        assert [report.archived for report in again] == [0, 0]
        ids = [f"s{number}" for number in range(6)]
        for state in (rig.state, other_state):  # both know every session is archived
            rows = await state.get_many("fake", ids)
            assert sorted(rows) == ids and {row.status for row in rows.values()} == {"archived"}
    finally:
        await other_state.close()
    records = [record for entry in await ledger_entries(rig.store) for record in entry.records]
    assert sorted(record.session_id for record in records) == [f"s{n}" for n in range(6)]
    for number in range(6):
        claims = [key async for key in rig.store.list_keys(f"fake/s{number}/claims/")]
        assert claims == [f"fake/s{number}/claims/0000.json"]


async def test_a_manifest_create_whose_answer_was_lost_is_still_recorded(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store made the manifest, the answer got lost, the retry was told "exists": the
    manifest is this writer's own, so the session is archived and enters the ledger."""
    create = rig.store.put_bytes_if_absent

    async def created_but_answer_lost(key: str, data: bytes, **options: Any) -> bool:
        made = await create(key, data, **options)
        return made and not key.endswith("/manifest.json")

    monkeypatch.setattr(rig.store, "put_bytes_if_absent", created_but_answer_lost)
    rig.source.add("s1")
    report = await rig.engine.run_once()
    assert report.archived == 1 and report.ok
    records = [record for entry in await ledger_entries(rig.store) for record in entry.records]
    assert [record.manifest_key for record in records] == ["fake/s1/manifest.json"]


async def test_the_engine_vendor_client_and_store_report_to_the_observer(rig: Rig) -> None:
    metrics = PrometheusObserver(["fake"], vendors=["fake"])
    rig.source.client.observer = metrics
    engine = Engine(
        sources=rig.engine.sources,
        store=ObservedStore(rig.store, metrics),
        state=rig.state,
        settings=rig.engine.settings,
        clock=rig.engine.clock,
        observer=metrics,
    )
    rig.source.add("good", paths=["/good/a.mp4", "/good/b.mp4"])
    rig.source.add("bad", paths=["/missing/x.mp4"])
    rig.source.add("busy", complete=False)

    report = await engine.run_once()

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert report.archived == 1 and report.pending == 1 and len(report.failed) == 1
    assert value("archiver_sessions_archived_total", source="fake") == 1
    assert value("archiver_artifacts_archived_total", source="fake") == 3  # and the record
    assert value("archiver_bytes_archived_total", source="fake") == report.bytes
    assert value("archiver_session_failures_total", source="fake", reason="vendor_4xx") == 1
    assert value("archiver_sessions_held_back", source="fake") == 1
    assert value("archiver_passes_total", source="fake", result="ok") == 1
    assert value("archiver_pass_duration_seconds_count", source="fake") == 1
    assert (
        value("archiver_watermark_timestamp_seconds", source="fake")
        == (NOW - timedelta(hours=1)).timestamp()
    )
    assert value("archiver_ledger_head_sequence") == 0
    assert value("archiver_vendor_requests_total", vendor="fake", status_class="2xx") == 2
    assert value("archiver_vendor_requests_total", vendor="fake", status_class="4xx") == 1
    assert (value("archiver_store_write_seconds_count", operation="put_if_absent") or 0) >= 2
    assert value("archiver_store_write_seconds_count", operation="commit") == 2
    assert value("archiver_store_bytes_in_flight") == 0


async def test_a_manifest_another_writer_stored_first_is_recorded_in_the_ledger(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other writer (which took the session over) stored its manifest and died before
    its ledger entry: the writer that lost the race records it, and stores nothing more."""
    theirs = Manifest(
        source="fake",
        session_id="s1",
        archived_at=NOW,
        archiver_version="other",
        session={"id": "s1"},
        artifacts=(),
    ).to_bytes()
    create = rig.store.put_bytes_if_absent

    async def they_were_first(key: str, data: bytes, **options: Any) -> bool:
        if key.endswith("/manifest.json"):
            await create(key, theirs, **options)
        return await create(key, data, **options)

    monkeypatch.setattr(rig.store, "put_bytes_if_absent", they_were_first)
    rig.source.add("s1")
    report = await rig.engine.run_once()
    assert report.ok and report.archived == 0 and report.skipped == 1
    assert await rig.store.read_bytes("fake/s1/manifest.json") == theirs
    records = [record for entry in await ledger_entries(rig.store) for record in entry.records]
    assert [record.manifest_sha256 for record in records] == [sha(theirs)]
    row = await rig.state.get("fake", "s1")
    assert row is not None and row.status == "archived"


@pytest.mark.parametrize(
    "stored",
    [b"not json at all", json.dumps({"source": "fake", "session_id": "another"}).encode()],
    ids=["damaged", "another-session"],
)
async def test_a_stored_manifest_that_is_not_this_session_s_is_never_adopted(
    rig: Rig, stored: bytes
) -> None:
    await rig.store.put_bytes("fake/s1/manifest.json", stored)
    rig.source.add("s1")
    report = await rig.engine.run_once()
    assert report.archived == 0 and len(report.failed) == 1
    assert "is stored but is not this session's manifest" in report.failed[0]
    assert await ledger_entries(rig.store) == []
    row = await rig.state.get("fake", "s1")
    assert row is not None and row.status == "failed"


class OldestRecorder(NullObserver):
    def __init__(self) -> None:
        self.reported: list[datetime | None] = []

    def oldest_unarchived(self, source: str, started_at: datetime | None) -> None:
        self.reported.append(started_at)


async def test_each_pass_is_kept_in_the_state_with_its_error(rig: Rig) -> None:
    rig.source.add("good")
    await rig.engine.run_once()
    first = await rig.state.summary("fake", archived_since=NOW)
    assert first.last_pass is not None and first.last_pass.ok
    assert first.last_success_at == NOW and first.archived_recently == 1

    rig.clock[0] = NOW + timedelta(minutes=5)
    rig.source.listing_breaks_after = 0
    report = await rig.engine.run_once()

    second = await rig.state.summary("fake", archived_since=NOW)
    assert second.last_pass is not None and second.last_pass.error == report.source_errors[0]
    assert "the listing broke off" in (second.last_pass.error or "")
    assert second.last_success_at == NOW


async def test_the_oldest_complete_session_waiting_is_reported_until_archived(rig: Rig) -> None:
    recorder = OldestRecorder()
    rig.engine.observer = recorder
    rig.source.add("old-bad", paths=["/missing/x.mp4"], started=NOW - timedelta(days=9))
    rig.source.add("newer", started=NOW - timedelta(days=2))
    rig.source.add("busy", complete=False, started=NOW - timedelta(days=20))

    await rig.engine.run_once()

    # Nothing waiting at the start; then each complete session as it is taken up, oldest
    # first; at the end the failed one, which is still waiting.
    assert recorder.reported[0] is None
    assert NOW - timedelta(days=9) in recorder.reported[1:-1]
    assert recorder.reported[-1] == NOW - timedelta(days=9)

    rig.source.add("old-bad", started=NOW - timedelta(days=9))  # the vendor serves it now
    recorder.reported.clear()
    await rig.engine.run_once()
    assert recorder.reported[0] == NOW - timedelta(days=9)
    assert recorder.reported[-1] is None


async def test_the_unarchived_age_is_worked_out_when_scraped(rig: Rig) -> None:
    now = [NOW.timestamp()]
    metrics = PrometheusObserver(["fake"], retention_days={"fake": 30}, clock=lambda: now[0])

    def age() -> float | None:
        return metrics.registry.get_sample_value(
            "archiver_oldest_unarchived_session_age_seconds", {"source": "fake"}
        )

    assert age() == 0
    assert (
        metrics.registry.get_sample_value("archiver_retention_seconds", {"source": "fake"})
        == 30 * 86400
    )
    metrics.oldest_unarchived("fake", NOW - timedelta(days=2))
    assert age() == 2 * 86400
    now[0] += 60
    assert age() == 2 * 86400 + 60
    metrics.oldest_unarchived("fake", None)
    assert age() == 0


async def test_the_event_log_is_the_engine_s_default_observer(rig: Rig) -> None:
    rig.source.add("good")
    rig.source.add("bad", paths=["/missing/x.mp4"])
    rig.source.add("busy", complete=False)

    with structlog.testing.capture_logs() as logged:
        await rig.engine.run_once()

    by_event = {entry["event"]: entry for entry in logged if "session_id" in entry}
    archived = by_event["session_archived"]
    assert (archived["session_id"], archived["ledger_seq"], archived["artifacts"]) == ("good", 0, 2)
    failed = by_event["session_failed"]
    assert (failed["session_id"], failed["reason"], failed["attempts"]) == ("bad", "vendor_4xx", 1)
    assert failed["log_level"] == "error" and "404" in failed["error"]
    assert by_event["session_pending"]["session_id"] == "busy"
