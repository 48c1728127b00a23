"""Perfecto Smart Reporting: test executions and every file their reports link to.

API: ``GET /export/api/v1/test-executions`` (windows of ``startExecutionTime[0]`` /
``endExecutionTime[0]`` in epoch ms, 1-based ``_page`` of up to 500, ``metadata.truncated``),
``GET .../test-executions/{id}/commands`` (each command's ``screenshots``, and the
images of visual checks: ``{"type": "IMAGE_KEY", "value": <url>}`` entries of its
``expectedData`` and ``resultData``) and ``GET .../test-executions/pdf?testExecutionId=``
(204 until the PDF is rendered).

``metadata.processingStatus`` describes a whole response, so an execution listed on a
page that is still PROCESSING is asked about alone (``externalId[0]``) before it counts as
complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlencode

import aiohttp
from pydantic import Field

from archiver.configkeys import Flag, HeaderName, Int, Number
from archiver.errors import BadVendorResponse, VendorError
from archiver.http import VendorClient, header
from archiver.model import JSON, Artifact, Session
from archiver.settings import HttpSettings, Secret, SourceSettings
from archiver.sources.records import json_artifact, time_windows, url_basename
from archiver.sources.spec import DemoRun, SimulatorFixture, SourceSpec

if TYPE_CHECKING:
    from archiver_sim.perfecto import PerfectoSimConfig, PerfectoSimulator

NAME = "perfecto"
EXECUTIONS = "/export/api/v1/test-executions"
COMPLETE = "PROCESSING_COMPLETE"
IMAGE_KEY = "IMAGE_KEY"
# A command's data lists holding visual-check images, and the role each names.
VISUAL_DATA = (("expectedData", "expected"), ("resultData", "result"))
EMPTY_PAGE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class PerfectoSettings(SourceSettings):
    """Perfecto Smart Reporting: test executions and every file their reports link to."""

    CREDENTIAL_VARIABLE = "PERFECTO_TOKEN"
    BASE_URL_EXAMPLE = "https://mycloud.app.perfectomobile.com"

    auth_header: Annotated[
        HeaderName,
        Field(
            description="header carrying the security token (some tenants want "
            "PERFECTO_AUTHORIZATION)"
        ),
    ] = "PERFECTO-AUTHORIZATION"
    window_hours: Annotated[
        Number,
        Field(ge=0.01, le=24.0, description="listing window (the API refuses very wide ones)"),
    ] = 24.0
    page_cap: Annotated[
        Int, Field(ge=1, description="pages of 500 per window before giving up")
    ] = 1000
    pdf_report: Annotated[Flag, Field(description="also keep the PDF report")] = True


class PerfectoSource:
    name = NAME

    def __init__(self, client: VendorClient, settings: PerfectoSettings) -> None:
        self.client = client
        self.settings: PerfectoSettings = settings

    @classmethod
    def create(
        cls, http: aiohttp.ClientSession, settings: SourceSettings, http_settings: HttpSettings
    ) -> PerfectoSource:
        assert isinstance(settings, PerfectoSettings)
        client = VendorClient.for_source(
            http,
            vendor="Perfecto",
            source=settings,
            auth_headers=header(settings.auth_header, settings.token),
            settings=http_settings,
        )
        return cls(client, settings)

    async def sessions(self, since: datetime, until: datetime) -> AsyncIterator[Session]:
        seen: set[str] = set()
        for start, end in time_windows(since, until, timedelta(hours=self.settings.window_hours)):
            async for resource, page_complete in self._list_window(start, end):
                execution_id = _execution_id(resource)
                if execution_id in seen:
                    continue
                seen.add(execution_id)
                if page_complete:
                    yield _session(resource, complete=True)
                else:
                    yield await self._check_alone(resource)

    async def get_session(self, session_id: str, *, locator: str | None = None) -> Session:
        lookup = locator or session_id
        found = await self._by_external_id(lookup)
        for resource, complete in found:
            if _execution_id(resource) == session_id:
                return _session(resource, complete=complete)
        if locator is None and len(found) == 1:
            # The operator gave the driver execution id (externalId) of a one-test driver.
            return _session(found[0][0], complete=found[0][1])
        raise VendorError(
            f"Perfecto: no test execution {session_id!r} found (looked up by externalId "
            f"{lookup!r}); pass the execution id of an execution archived before, or the "
            "driver execution id",
            vendor="Perfecto",
            status=None,
        )

    async def artifacts(self, session: Session) -> list[Artifact]:
        record = session.record
        commands, commands_raw = await self.client.get_document(
            f"{EXECUTIONS}/{quote(session.session_id, safe='')}/commands"
        )
        found = [
            json_artifact("execution.json", "execution_record", record),
            Artifact(
                name="commands.json",
                kind="commands_report",
                content=commands_raw,
                content_type="application/json",
            ),
            *_videos(record),
            *_typed_artifacts(record),
            *command_images(commands),
        ]
        if self.settings.pdf_report:
            found.append(
                Artifact(
                    name="report.pdf",
                    kind="pdf_report",
                    url=self.client.url(
                        f"{EXECUTIONS}/pdf?{urlencode({'testExecutionId': session.session_id})}"
                    ),
                    content_type="application/pdf",
                )
            )
        return found

    def not_offered(self, session: Session) -> list[str]:
        if not self.settings.pdf_report:
            return ["PDF report: not requested (sources.perfecto.pdf_report = false)"]
        return []

    async def _list_window(
        self, start: datetime, end: datetime
    ) -> AsyncIterator[tuple[JSON, bool]]:
        """Every resource in one window, with whether its page was PROCESSING_COMPLETE."""
        params = {
            "startExecutionTime[0]": str(_epoch_ms(start)),
            "endExecutionTime[0]": str(_epoch_ms(end)),
        }
        for page in range(1, self.settings.page_cap + 1):
            resources, metadata = await self._page(params, page)
            page_complete = metadata.get("processingStatus") == COMPLETE
            for resource in resources:
                yield resource, page_complete
            if not resources or metadata.get("truncated") is not True:
                return
        raise BadVendorResponse(
            f"Perfecto: more than {self.settings.page_cap} pages in the window "
            f"{start.isoformat()}..{end.isoformat()} (raise sources.perfecto.page_cap or "
            "lower window_hours)"
        )

    async def _page(
        self, params: Mapping[str, str], page: int | None = None
    ) -> tuple[list[JSON], Mapping[str, Any]]:
        """One listing page. An empty page that still says ``truncated`` is asked again.

        Taking it at its word would end a window early (and the watermark would then move
        past executions never seen) or make a lookup miss; so after a few tries the call
        fails instead, and a later pass asks again.
        """
        query = {**params, "_page": str(page)} if page is not None else dict(params)
        for attempt in range(EMPTY_PAGE_ATTEMPTS):
            if attempt:
                await asyncio.sleep(self.client.retry_policy.backoff_initial * 2**attempt)
            resources, metadata = _page_parts(await self.client.get_json(EXECUTIONS, params=query))
            if resources or metadata.get("truncated") is not True:
                return resources, metadata
        where = " ".join(f"{name}={value}" for name, value in query.items())
        raise BadVendorResponse(
            f"Perfecto: the executions listing ({where}) was empty {EMPTY_PAGE_ATTEMPTS} times "
            "although metadata.truncated said more pages follow; a later pass asks again"
        )

    async def _check_alone(self, resource: JSON) -> Session:
        external_id = resource.get("externalId")
        if not isinstance(external_id, str) or not external_id:
            return _session(resource, complete=False)
        # One driver session can hold several tests: pin the start time as well, so a
        # sibling still processing does not hold this execution back.
        start = resource.get("startTime")
        pinned = (
            {"startExecutionTime[0]": str(start), "endExecutionTime[0]": str(start)}
            if isinstance(start, int) and not isinstance(start, bool)
            else {}
        )
        for fresh, complete in await self._by_external_id(external_id, **pinned):
            if _execution_id(fresh) == _execution_id(resource):
                return _session(fresh, complete=complete)
        return _session(resource, complete=False)

    async def _by_external_id(
        self, external_id: str, **extra_params: str
    ) -> list[tuple[JSON, bool]]:
        """Every execution of one driver session (all pages), each with its page's status."""
        params = {"externalId[0]": external_id, **extra_params}
        found: list[tuple[JSON, bool]] = []
        for page in range(1, self.settings.page_cap + 1):
            resources, metadata = await self._page(params, page)
            complete = metadata.get("processingStatus") == COMPLETE
            found += [(resource, complete) for resource in resources]
            if not resources or metadata.get("truncated") is not True:
                break
        return found


def _page_parts(body: Any) -> tuple[list[JSON], Mapping[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("resources", []), list):
        raise BadVendorResponse("Perfecto: executions response has no 'resources' list")
    metadata = body.get("metadata")
    if not isinstance(metadata, dict):
        raise BadVendorResponse("Perfecto: executions response has no 'metadata' object")
    resources: list[JSON] = [item for item in body.get("resources", []) if isinstance(item, dict)]
    return resources, metadata


def _execution_id(resource: JSON) -> str:
    value = resource.get("id")
    if not isinstance(value, str) or not value:
        raise BadVendorResponse("Perfecto: an execution without an 'id'")
    return value


def _session(resource: JSON, *, complete: bool) -> Session:
    start = resource.get("startTime")
    started_at = (
        datetime.fromtimestamp(start / 1000, UTC)
        if isinstance(start, int | float) and not isinstance(start, bool)
        else datetime.now(UTC)
    )
    external_id = resource.get("externalId")
    return Session(
        source=NAME,
        session_id=_execution_id(resource),
        started_at=started_at,
        complete=complete,
        record=resource,
        locator=external_id if isinstance(external_id, str) and external_id else None,
    )


def _videos(record: JSON) -> Iterator[Artifact]:
    for index, video in enumerate(_dicts(record.get("videos"))):
        url = video.get("downloadUrl")
        if isinstance(url, str) and url:
            yield Artifact(name=f"videos/{index:02d}-{url_basename(url)}", kind="video", url=url)


def _typed_artifacts(record: JSON) -> Iterator[Artifact]:
    for index, entry in enumerate(_dicts(record.get("artifacts"))):
        url = entry.get("path")
        kind = str(entry.get("type") or "unknown").lower()
        if isinstance(url, str) and url:
            yield Artifact(
                name=f"artifacts/{index:02d}-{kind}-{url_basename(url)}", kind=kind, url=url
            )


def command_images(commands: Any) -> Iterator[Artifact]:
    """Every image the commands report links to, each URL once (under its first name).

    Names carry the command's position in ``commands`` and the image's in its list, so
    ``visual/0002-expected-01-x.jpeg`` is ``commands[2].expectedData[1]``.
    """
    seen: set[str] = set()
    resources = commands.get("resources") if isinstance(commands, dict) else None
    for resource in _dicts(resources):
        for command_index, command in enumerate(_dicts(resource.get("commands"))):
            for url, name, kind in _images_of(command_index, command):
                if url not in seen:
                    seen.add(url)
                    yield Artifact(name=name, kind=kind, url=url)


def _images_of(number: int, command: JSON) -> Iterator[tuple[str, str, str]]:
    """``(url, name, kind)`` of one command's screenshots, then of its visual-check images."""
    for index, url in enumerate(_list(command.get("screenshots"))):
        if isinstance(url, str) and url:
            yield url, f"screenshots/{number:04d}-{index:02d}-{url_basename(url)}", "screenshot"
    for field, role in VISUAL_DATA:
        # Other entry types (TEXT...) are values, not files, even when they read as URLs.
        for index, entry in enumerate(_list(command.get(field))):
            if not isinstance(entry, dict) or entry.get("type") != IMAGE_KEY:
                continue
            url = entry.get("value")
            if isinstance(url, str) and url:
                name = f"visual/{number:04d}-{role}-{index:02d}-{url_basename(url)}"
                yield url, name, f"{role}_image"


def _dicts(value: Any) -> list[JSON]:
    return [item for item in _list(value) if isinstance(item, dict)]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@asynccontextmanager
async def _demo(sessions: int, held_back: int) -> AsyncIterator[DemoRun]:
    from archiver_sim.perfecto import PerfectoSimConfig, PerfectoSimulator
    from archiver_sim.runner import running

    config = PerfectoSimConfig(executions=sessions, unfinished=held_back)
    async with running(PerfectoSimulator(config)) as simulator:
        yield DemoRun(
            settings=PerfectoSettings(
                base_url=simulator.api_url, token=Secret(config.token), backfill_days=1
            ),
            urls={"API": simulator.api_url, "files": simulator.files_url},
            finish=simulator.finish_all,
        )


def _fixture() -> SimulatorFixture[PerfectoSimulator, PerfectoSimConfig]:
    from archiver_sim.perfecto import PerfectoSimConfig, PerfectoSimulator

    return SimulatorFixture(PerfectoSimulator, PerfectoSimConfig)


SPEC = SourceSpec(
    name=NAME,
    title="Perfecto",
    settings=PerfectoSettings,
    factory=PerfectoSource.create,
    demo=_demo,
    fixture=_fixture,
    not_offered="nothing: every file a report links to can be downloaded, and the PDF report "
    "(unless pdf_report = false, which each manifest then says).",
)
