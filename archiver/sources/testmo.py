"""Testmo exploratory sessions of one or more projects, archived once closed.

API: ``GET /api/v1/projects/{project_id}/sessions`` (``page``/``per_page`` up to 100,
``next_page`` null on the last page) and ``GET /api/v1/sessions/{id}`` for the full record
with its ``expands`` (users, milestones, statuses...). Only closed sessions are final
evidence. Each pass lists, per project, the sessions closed since the watermark
(``is_closed=1&sort=sessions:closed_at&order=asc&closed_after=``: a session created long
before and closed now is found too), then the open ones created since it
(``is_closed=0&created_after=``), which are held back and come back closed. Testmo offers
no file downloads for sessions: the evidence is the listed record (in the manifest) and the
full record with expands.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import aiohttp
from pydantic import Field

from archiver.configkeys import Hint, Int, Integers, OneOf, Strings
from archiver.errors import BadVendorResponse
from archiver.http import VendorClient, bearer
from archiver.model import JSON, Artifact, Session, rfc3339
from archiver.settings import HttpSettings, Secret, SourceSettings
from archiver.sources.records import json_artifact, parse_timestamp
from archiver.sources.spec import DemoRun, SimulatorFixture, SourceSpec

if TYPE_CHECKING:
    from archiver_sim.testmo import TestmoSimConfig, TestmoSimulator

NAME = "testmo"
NO_FILES = "files: Testmo's API offers no file downloads for sessions; the records are all of it"


@dataclass(frozen=True, slots=True, kw_only=True)
class TestmoSettings(SourceSettings):
    """Testmo exploratory sessions of one or more projects, archived once closed."""

    __test__ = False  # not a pytest test class, whatever its name says
    CREDENTIAL_VARIABLE = "TESTMO_TOKEN"
    BASE_URL_EXAMPLE = "https://acme.testmo.net"

    project_ids: Annotated[
        Integers,
        Field(
            min_length=1,
            description="the projects whose sessions are archived",
            examples=[[1, 5]],
        ),
        Hint("a list of Testmo project ids"),
    ]
    per_page: Annotated[
        Int, OneOf(15, 25, 50, 100), Field(description="sessions per page: 15, 25, 50 or 100")
    ] = 100
    expands: Annotated[
        Strings, Field(description="the related records fetched with each session")
    ] = (
        "configs",
        "field_values",
        "issues",
        "milestones",
        "states",
        "statuses",
        "templates",
        "users",
    )


class TestmoSource:
    __test__ = False  # not a pytest test class, whatever its name says
    name = NAME

    def __init__(self, client: VendorClient, settings: TestmoSettings) -> None:
        self.client = client
        self.settings: TestmoSettings = settings

    @classmethod
    def create(
        cls, http: aiohttp.ClientSession, settings: SourceSettings, http_settings: HttpSettings
    ) -> TestmoSource:
        assert isinstance(settings, TestmoSettings)
        client = VendorClient.for_source(
            http,
            vendor="Testmo",
            source=settings,
            auth_headers=bearer(settings.token),
            settings=http_settings,
        )
        return cls(client, settings)

    async def sessions(self, since: datetime, until: datetime) -> AsyncIterator[Session]:
        seen: set[str] = set()
        for project_id in self.settings.project_ids:
            async for record in self._list_project(project_id, since):
                session = _session(record)
                if session.session_id not in seen:
                    seen.add(session.session_id)
                    yield session

    async def get_session(self, session_id: str, *, locator: str | None = None) -> Session:
        body = await self.client.get_json(f"/api/v1/sessions/{session_id}")
        record = body.get("result") if isinstance(body, dict) else None
        if not isinstance(record, dict):
            raise BadVendorResponse(f"Testmo: session {session_id} response has no 'result'")
        return _session(record)

    async def artifacts(self, session: Session) -> list[Artifact]:
        _document, raw = await self.client.get_document(
            f"/api/v1/sessions/{session.session_id}",
            params={"expands": ",".join(self.settings.expands)} if self.settings.expands else None,
        )
        return [
            json_artifact("session.json", "session_record", session.record),
            Artifact(
                name="session-with-expands.json",
                kind="session_full_record",
                content=raw,
                content_type="application/json",
            ),
        ]

    def not_offered(self, session: Session) -> list[str]:
        return [NO_FILES]

    async def _list_project(self, project_id: int, since: datetime) -> AsyncIterator[JSON]:
        # Oldest first: sessions closing while the pages are read land on later pages.
        closed = {"is_closed": "1", "closed_after": rfc3339(since), "sort": "sessions:closed_at"}
        still_open = {"is_closed": "0", "created_after": rfc3339(since)}
        for listing in (closed, still_open):
            async for record in self._pages(project_id, listing):
                yield record

    async def _pages(self, project_id: int, listing: Mapping[str, str]) -> AsyncIterator[JSON]:
        params = {
            "per_page": str(self.settings.per_page),
            "sort": "sessions:created_at",
            **listing,
            "order": "asc",
        }
        page: int | None = 1
        while page is not None:
            body = await self.client.get_json(
                f"/api/v1/projects/{project_id}/sessions", params={**params, "page": str(page)}
            )
            records, next_page = _page_parts(body)
            for record in records:
                yield record
            page = next_page if records and next_page != page else None


def _page_parts(body: Any) -> tuple[list[JSON], int | None]:
    if not isinstance(body, dict) or not isinstance(body.get("result"), list):
        raise BadVendorResponse("Testmo: sessions response has no 'result' list")
    records: list[JSON] = [item for item in body["result"] if isinstance(item, dict)]
    next_page = body.get("next_page")
    return records, next_page if isinstance(next_page, int) and next_page > 0 else None


def _session(record: JSON) -> Session:
    session_id = record.get("id")
    if not isinstance(session_id, int | str) or isinstance(session_id, bool):
        raise BadVendorResponse("Testmo: a session without an 'id'")
    project = record.get("project_id")
    return Session(
        source=NAME,
        session_id=str(session_id),
        started_at=parse_timestamp(record.get("created_at"), vendor="Testmo") or datetime.now(UTC),
        complete=record.get("is_closed") is True,
        record=record,
        locator=str(project) if project is not None else None,
    )


@asynccontextmanager
async def _demo(sessions: int, held_back: int) -> AsyncIterator[DemoRun]:
    from archiver_sim.runner import running
    from archiver_sim.testmo import TestmoSimConfig, TestmoSimulator

    config = TestmoSimConfig(sessions=sessions, unfinished=held_back)
    async with running(TestmoSimulator(config)) as simulator:
        yield DemoRun(
            settings=TestmoSettings(
                base_url=simulator.api_url,
                token=Secret(config.token),
                project_ids=config.project_ids,
                backfill_days=8,
            ),
            urls={"API": simulator.api_url},
            finish=simulator.finish_all,
        )


def _fixture() -> SimulatorFixture[TestmoSimulator, TestmoSimConfig]:
    from archiver_sim.testmo import TestmoSimConfig, TestmoSimulator

    return SimulatorFixture(TestmoSimulator, TestmoSimConfig)


SPEC = SourceSpec(
    name=NAME,
    title="Testmo",
    settings=TestmoSettings,
    factory=TestmoSource.create,
    demo=_demo,
    fixture=_fixture,
    not_offered="files: there are no file downloads for sessions; the listed record and the "
    "full record with its expands are all of it.",
)
