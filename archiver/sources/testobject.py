"""TestObject session reports, and the test reports (video, screenshots, logs) behind them.

API: ``GET /rest/v1/users/{userId}/session/reports`` with HTTP basic auth (user name and
API key), ``offset`` (1-based), ``limit``, ``lastDays``; ``metaData.count`` is the total
(some responses carry ``moreAvailable`` instead; both are understood, and an empty page
ends the listing either way). Where a session has ``testReportIds``, each report is
fetched from ``GET /v2/reports/{id}`` and the video, screenshots and logs it links to are
downloaded too. MANUAL sessions have no reports: their record is all there is.

``startDateTime``/``endDateTime`` are Java ``LocalDateTime`` objects without a time zone;
they are kept verbatim in the manifest and read as UTC for the watermark.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import aiohttp
from pydantic import Field, model_validator

from archiver.configkeys import Flag, Int, Text, problem
from archiver.errors import BadVendorResponse, VendorError
from archiver.http import VendorClient, basic
from archiver.model import JSON, Artifact, Session
from archiver.settings import HttpSettings, Secret, SourceSettings
from archiver.sources.records import json_artifact, url_basename
from archiver.sources.spec import DemoRun, SimulatorFixture, SourceSpec

if TYPE_CHECKING:
    from archiver_sim.testobject import TestObjectSimConfig, TestObjectSimulator

NAME = "testobject"
# The session reports cover "the last 30 days" (lastDays defaults to 30): asking more is
# asking outside the documented range, and nothing older can be listed anyway.
MAX_LAST_DAYS = 30
UTC_NOTE = (
    "startDateTime/endDateTime are Java LocalDateTime values without a time zone; "
    "archiver read them as UTC"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TestObjectSettings(SourceSettings):
    """TestObject session reports, and the test reports (video, screenshots, logs) behind
    them. The token is the API key, the password of HTTP basic auth."""

    __test__ = False  # not a pytest test class, whatever its name says
    CREDENTIAL_VARIABLE = "TESTOBJECT_API_KEY"
    BASE_URL_EXAMPLE = "https://app.testobject.com"

    username: Annotated[
        Text,
        Field(
            description="user name (basic auth, and the {userId} in the path)",
            examples=["foobar"],
        ),
    ]
    page_limit: Annotated[
        Int, Field(ge=1, validation_alias="limit", description="sessions per page")
    ] = 50
    test_reports: Annotated[
        Flag,
        Field(description="also fetch each test report with its video, screenshots and logs"),
    ] = True

    @model_validator(mode="after")
    def _backfill_within_history(self) -> TestObjectSettings:
        if self.backfill_days > MAX_LAST_DAYS:
            raise problem(
                f"must be at most {MAX_LAST_DAYS} for TestObject: its session reports cover "
                f"the last {MAX_LAST_DAYS} days only",
                key="backfill_days",
            )
        return self


class TestObjectSource:
    __test__ = False  # not a pytest test class, whatever its name says
    name = NAME

    def __init__(self, client: VendorClient, settings: TestObjectSettings) -> None:
        self.client = client
        self.settings: TestObjectSettings = settings

    @classmethod
    def create(
        cls, http: aiohttp.ClientSession, settings: SourceSettings, http_settings: HttpSettings
    ) -> TestObjectSource:
        assert isinstance(settings, TestObjectSettings)
        client = VendorClient.for_source(
            http,
            vendor="TestObject",
            source=settings,
            auth_headers=basic(settings.username, settings.token),
            settings=http_settings,
        )
        return cls(client, settings)

    async def sessions(self, since: datetime, until: datetime) -> AsyncIterator[Session]:
        seen: set[str] = set()
        # The overlap can take the first run past 30 days: what lies beyond is not listed.
        wanted = math.ceil((until - since).total_seconds() / 86400)
        last_days = min(MAX_LAST_DAYS, max(1, wanted))
        async for entity in self._list(last_days):
            session = _session(entity)
            if session.session_id in seen or session.started_at < since:
                continue
            seen.add(session.session_id)
            yield session

    async def get_session(self, session_id: str, *, locator: str | None = None) -> Session:
        # No "get one report" call: walk the listing (lastDays as the vendor allows).
        async for entity in self._list(last_days=MAX_LAST_DAYS):
            if entity.get("id") == session_id:
                return _session(entity)
        raise VendorError(
            f"TestObject: no session report {session_id!r} in the last {MAX_LAST_DAYS} days",
            vendor="TestObject",
        )

    async def artifacts(self, session: Session) -> list[Artifact]:
        found = [json_artifact("session.json", "session_record", session.record)]
        if not self.settings.test_reports:
            return found
        for report_id in _report_ids(session.record):
            document, raw = await self.client.get_document(f"/v2/reports/{report_id}")
            stem = f"reports/{report_id}"
            found.append(
                Artifact(
                    name=f"{stem}.json",
                    kind="test_report",
                    content=raw,
                    content_type="application/json",
                )
            )
            found.extend(_report_files(document, stem))
        return found

    def not_offered(self, session: Session) -> list[str]:
        notes = [UTC_NOTE]
        if not _report_ids(session.record):
            notes.append(
                "no test reports: the session has no testReportIds (MANUAL sessions have "
                "none), so the record is all the API offers"
            )
        elif not self.settings.test_reports:
            notes.append("test reports: not requested (sources.testobject.test_reports = false)")
        return notes

    async def _list(self, last_days: int) -> AsyncIterator[JSON]:
        path = f"/rest/v1/users/{self.settings.username}/session/reports"
        offset = 1
        while True:
            params = {
                "offset": str(offset),
                "limit": str(self.settings.page_limit),
                "lastDays": str(last_days),
            }
            body = await self.client.get_json(path, params=params)
            entities, metadata = _page_parts(body)
            for entity in entities:
                yield entity
            offset += len(entities)
            if not entities or not _more(metadata, seen=offset - 1):
                return


def _page_parts(body: Any) -> tuple[list[JSON], Mapping[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("entities"), list):
        raise BadVendorResponse("TestObject: session reports response has no 'entities' list")
    metadata = body.get("metaData")
    entities: list[JSON] = [item for item in body["entities"] if isinstance(item, dict)]
    return entities, metadata if isinstance(metadata, dict) else {}


def _more(metadata: Mapping[str, Any], *, seen: int) -> bool:
    count = metadata.get("count")
    if isinstance(count, int) and not isinstance(count, bool):
        return seen < count
    more = metadata.get("moreAvailable")
    return more is True


def _session(entity: JSON) -> Session:
    session_id = entity.get("id")
    if not isinstance(session_id, str) or not session_id:
        raise BadVendorResponse("TestObject: a session report without an 'id'")
    started = java_local_datetime(entity.get("startDateTime"))
    return Session(
        source=NAME,
        session_id=session_id,
        started_at=started or datetime.now(UTC),
        complete=java_local_datetime(entity.get("endDateTime")) is not None,
        record=entity,
    )


def java_local_datetime(value: Any) -> datetime | None:
    """A Java ``LocalDateTime`` as Jackson writes it (year, monthValue, ...), read as UTC."""
    if not isinstance(value, dict):
        return None
    try:
        return datetime(
            int(value["year"]),
            int(value["monthValue"]),
            int(value["dayOfMonth"]),
            int(value.get("hour", 0)),
            int(value.get("minute", 0)),
            int(value.get("second", 0)),
            int(value.get("nano", 0)) // 1000,
            tzinfo=UTC,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadVendorResponse(f"TestObject: unreadable date object {value!r}") from exc


def _report_ids(record: JSON) -> list[str]:
    ids = record.get("testReportIds")
    if not isinstance(ids, list):
        return []
    return [
        str(item) for item in ids if isinstance(item, int | str) and str(item) not in ("", "-1")
    ]


def _report_files(document: Any, stem: str) -> Iterator[Artifact]:
    """Every URL a test report links to: its video, screenshots and logs."""
    if not isinstance(document, dict):
        return
    video = document.get("video")
    if isinstance(video, dict) and isinstance(video.get("url"), str):
        yield Artifact(
            name=f"{stem}/video-{url_basename(video['url'])}", kind="video", url=video["url"]
        )
    shots = document.get("screenshots")
    for index, shot in enumerate(shots if isinstance(shots, list) else []):
        if isinstance(shot, dict) and isinstance(shot.get("url"), str):
            yield Artifact(
                name=f"{stem}/screenshots/{index:04d}-{url_basename(shot['url'])}",
                kind="screenshot",
                url=shot["url"],
            )
    logs = document.get("logs")
    for log_name, url in logs.items() if isinstance(logs, dict) else []:
        if isinstance(url, str) and url:
            yield Artifact(name=f"{stem}/logs/{log_name}.log", kind=f"{log_name}_log", url=url)


@asynccontextmanager
async def _demo(sessions: int, held_back: int) -> AsyncIterator[DemoRun]:
    from archiver_sim.runner import running
    from archiver_sim.testobject import TestObjectSimConfig, TestObjectSimulator

    config = TestObjectSimConfig(sessions=sessions, unfinished=held_back)
    async with running(TestObjectSimulator(config)) as simulator:
        yield DemoRun(
            settings=TestObjectSettings(
                base_url=simulator.api_url,
                token=Secret(config.api_key),
                username=config.username,
                backfill_days=21,
            ),
            urls={"API": simulator.api_url, "files": simulator.files_url},
            finish=simulator.finish_all,
        )


def _fixture() -> SimulatorFixture[TestObjectSimulator, TestObjectSimConfig]:
    from archiver_sim.testobject import TestObjectSimConfig, TestObjectSimulator

    return SimulatorFixture(TestObjectSimulator, TestObjectSimConfig)


SPEC = SourceSpec(
    name=NAME,
    title="TestObject",
    settings=TestObjectSettings,
    factory=TestObjectSource.create,
    demo=_demo,
    fixture=_fixture,
    not_offered="time zones: start and end times are Java LocalDateTime values without one "
    "(read as UTC); test reports for MANUAL sessions: they have none, so their record is all "
    "there is.",
)
