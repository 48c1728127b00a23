"""Ekran System (on premises) user sessions, archived once finished.

API: ``POST /ekranapi/sessions`` with ``start``/``end`` (no time zone; sent as UTC),
``sessionCount`` (at most 1000: more is a 400, so it is never sent) and ``pageIndex``
paged against ``totalCount``. Without ``start`` and ``end`` the API returns the whole
database, so every request carries both. A session crossing a window edge comes back
clipped to the window, so each window is asked for with ``max_session_hours`` of padding on
both sides and keeps the sessions that started inside it (each session belongs to exactly
one window, unclipped unless it lasted longer than the padding); windows end
``settle_minutes`` in the past. No API exports screen recordings (only the Ekran UI can): the
record is the evidence, and the manifest says so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import aiohttp
from pydantic import Field

from archiver.configkeys import HeaderName, Hint, Int, Number
from archiver.errors import BadVendorResponse, VendorError
from archiver.http import VendorClient, header
from archiver.model import JSON, Artifact, Session
from archiver.settings import HttpSettings, Secret, SourceSettings
from archiver.sources.records import json_artifact, parse_timestamp, time_windows
from archiver.sources.spec import DemoRun, SimulatorFixture, SourceSpec

if TYPE_CHECKING:
    from archiver_sim.ekran import EkranSimConfig, EkranSimulator

NAME = "ekran"
SESSIONS = "/ekranapi/sessions"
NO_RECORDINGS = (
    "screen recordings: Ekran's API does not export them (only the Ekran console can); "
    "the session record is the evidence"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class EkranSettings(SourceSettings):
    """Ekran System (on premises) user sessions, archived once finished."""

    CREDENTIAL_VARIABLE = "EKRAN_TOKEN"
    BASE_URL_EXAMPLE = "https://ekran.example.local"

    auth_header: Annotated[
        HeaderName,
        Field(description="header carrying the token (the API's auth scheme is site-specific)"),
    ] = "X-Ekran-Token"
    session_count: Annotated[
        Int,
        Field(ge=1, le=1000, description="sessions per page (at most 1000)"),
        Hint("the API refuses more"),
    ] = 1000
    window_hours: Annotated[Number, Field(ge=0.01, le=24.0 * 31, description="listing window")] = (
        168.0
    )
    max_session_hours: Annotated[
        Number,
        Field(ge=0.1, description="windows are padded by this much so that no session is clipped"),
    ] = 24.0
    settle_minutes: Annotated[
        Number, Field(ge=0, description="windows end this far in the past")
    ] = 60.0
    page_cap: Annotated[Int, Field(ge=1, description="pages per window before giving up")] = 10_000


class EkranSource:
    name = NAME

    def __init__(self, client: VendorClient, settings: EkranSettings) -> None:
        self.client = client
        self.settings: EkranSettings = settings

    @classmethod
    def create(
        cls, http: aiohttp.ClientSession, settings: SourceSettings, http_settings: HttpSettings
    ) -> EkranSource:
        assert isinstance(settings, EkranSettings)
        client = VendorClient.for_source(
            http,
            vendor="Ekran",
            source=settings,
            auth_headers=header(settings.auth_header, settings.token),
            settings=http_settings,
        )
        return cls(client, settings)

    async def sessions(self, since: datetime, until: datetime) -> AsyncIterator[Session]:
        seen: set[str] = set()
        settled = until - timedelta(minutes=self.settings.settle_minutes)
        width = timedelta(hours=self.settings.window_hours)
        padding = timedelta(hours=self.settings.max_session_hours)
        for start, end in time_windows(since, settled, width):
            # Ask for a padded window so sessions are not clipped at its edges, and keep
            # those that started inside the real one: each session belongs to one window.
            async for record in self._list_window(start - padding, end + padding):
                session = _session(record)
                if start <= session.started_at < end and session.session_id not in seen:
                    seen.add(session.session_id)
                    yield session

    async def get_session(self, session_id: str, *, locator: str | None = None) -> Session:
        # No "get one session" call: look in a window around its known start.
        around = parse_timestamp(locator, vendor="Ekran") if locator else None
        if around is None:
            raise VendorError(
                f"Ekran: session {session_id!r} was never seen, and the API cannot look "
                "a session up by id",
                vendor="Ekran",
            )
        async for record in self._list_window(
            around - timedelta(days=1), around + timedelta(days=1)
        ):
            if str(record.get("sessionId")) == session_id:
                return _session(record)
        raise VendorError(f"Ekran: no session {session_id!r} around {locator}", vendor="Ekran")

    async def artifacts(self, session: Session) -> list[Artifact]:
        return [json_artifact("session.json", "session_record", session.record)]

    def not_offered(self, session: Session) -> list[str]:
        return [NO_RECORDINGS]

    async def _list_window(self, start: datetime, end: datetime) -> AsyncIterator[JSON]:
        for page_index in range(self.settings.page_cap):
            body = await self.client.post_json(
                SESSIONS,
                {
                    "start": _ekran_time(start),
                    "end": _ekran_time(end),
                    "sessionCount": self.settings.session_count,
                    "pageIndex": page_index,
                },
            )
            records, total = _page_parts(body)
            for record in records:
                yield record
            if not records or (page_index + 1) * self.settings.session_count >= total:
                return
        raise BadVendorResponse(
            f"Ekran: more than {self.settings.page_cap} pages in one window (raise "
            "sources.ekran.page_cap or lower window_hours)"
        )


def _page_parts(body: Any) -> tuple[list[JSON], int]:
    if not isinstance(body, dict) or not isinstance(body.get("sessions"), list):
        raise BadVendorResponse("Ekran: sessions response has no 'sessions' list")
    records: list[JSON] = [item for item in body["sessions"] if isinstance(item, dict)]
    total = body.get("totalCount")
    return records, total if isinstance(total, int) and not isinstance(total, bool) else 0


def _session(record: JSON) -> Session:
    session_id = record.get("sessionId")
    if session_id is None or str(session_id) == "":
        raise BadVendorResponse("Ekran: a session without a 'sessionId'")
    started = parse_timestamp(record.get("startTime"), vendor="Ekran")
    return Session(
        source=NAME,
        session_id=str(session_id),
        started_at=started or datetime.now(UTC),
        complete=record.get("isFinished") is True,
        record=record,
        locator=record.get("startTime") if isinstance(record.get("startTime"), str) else None,
    )


def _ekran_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


@asynccontextmanager
async def _demo(sessions: int, held_back: int) -> AsyncIterator[DemoRun]:
    from archiver_sim.ekran import EkranSimConfig, EkranSimulator
    from archiver_sim.runner import running

    config = EkranSimConfig(sessions=sessions, unfinished=held_back)
    async with running(EkranSimulator(config)) as simulator:
        yield DemoRun(
            settings=EkranSettings(
                base_url=simulator.api_url,
                token=Secret(config.token),
                auth_header=config.token_header,
                settle_minutes=0,
                backfill_days=8,
            ),
            urls={"API": simulator.api_url},
            finish=simulator.finish_all,
        )


def _fixture() -> SimulatorFixture[EkranSimulator, EkranSimConfig]:
    from archiver_sim.ekran import EkranSimConfig, EkranSimulator

    return SimulatorFixture(EkranSimulator, EkranSimConfig)


SPEC = SourceSpec(
    name=NAME,
    title="Ekran",
    settings=EkranSettings,
    factory=EkranSource.create,
    demo=_demo,
    fixture=_fixture,
    not_offered="screen recordings: no API exports them (only the Ekran console can); the "
    "session record is the evidence.",
)
