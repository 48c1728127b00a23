"""Sauce Labs jobs, real-device and virtual (emulators, simulators, desktop browsers), with
every asset the API lists for them.

Follows Sauce Labs' public API reference: "About the Sauce REST APIs"
(docs.saucelabs.com/dev/api: regional base URLs, HTTP basic auth with user name and access
key), "Real Device API Methods" (docs.saucelabs.com/dev/api/rdc), "Jobs API Methods"
(docs.saucelabs.com/dev/api/jobs) and "Network Traffic Capture"
(docs.saucelabs.com/mobile-apps/features/network-capture: ``network.har``).

Real devices: ``GET /v1/rdc/jobs`` pages with ``limit``/``offset``, newest first, and says
``metaData.moreAvailable``; the first page is asked without ``offset`` and the next offsets
follow the ``metaData.offset`` the API answers with, whichever base it counts from. The
listing stops at the first page that reaches back past the window. ``GET
/v1/rdc/jobs/{id}`` gives the job with its asset URLs: ``video_url``, ``device_log_url``,
``framework_log_url`` (the Appium log), ``requests_url`` (the Appium requests),
``network_log_url`` (``network.har``, only when network capture was enabled),
``crash_log_url``, ``testfairy_log_url`` (insights), ``junit_log_url`` and
``test_cases_url``; screenshots come as the documented ``/v1/rdc/jobs/{id}/screenshots.zip``
when the job lists any. A job is complete once it has an ``end_time``; one that recorded
video but has no ``video_url`` yet is held back.

Virtual devices and desktop browsers: ``GET /rest/v1/{username}/jobs`` with ``from``/``to``
(Unix seconds), ``limit``, ``skip`` and ``full=true``; ``GET
/rest/v1/{username}/jobs/{id}/assets`` names every file (``video.mp4``, ``log.json``,
``selenium-server.log``, screenshots, ``network.har``...), each downloaded from
``/rest/v1/{username}/jobs/{id}/assets/{file_name}``. A job is complete once it has ended
(an ``end_time``, a final ``status``) and its assets are listed.

The access key goes only to the API origin: an asset answered with a redirect to another
host (a storage bucket) is fetched from there without it (:mod:`archiver.http`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlsplit

import aiohttp
from pydantic import Field, ValidationInfo, model_validator

from archiver.configkeys import Flag, Int, Text, problem, reading_of
from archiver.errors import BadVendorResponse, ConfigError, NotReady, VendorError
from archiver.http import VendorClient, basic
from archiver.model import JSON, Artifact, Session
from archiver.settings import HttpSettings, Secret, SourceSettings
from archiver.sources.spec import DemoRun, SimulatorFixture, SourceSpec

if TYPE_CHECKING:
    from archiver_sim.saucelabs import SauceLabsSimConfig, SauceLabsSimulator

NAME = "saucelabs"
VENDOR = "Sauce Labs"
REAL_DEVICES = "rdc"
VIRTUAL = "vdc"
REGIONS = ("us-west-1", "us-east-4", "eu-central-1")
"""The data centers whose REST API origin is ``https://api.{region}.saucelabs.com``."""
UNFINISHED_STATUSES = frozenset({"new", "queued", "in progress", "running"})
# Jobs whose details or asset list are kept between artifacts() and not_offered(); a job
# whose downloads failed leaves its entry behind, so the oldest go first past this many.
READ_KEPT = 1024

# Real-device job fields that hold a download URL: (field, file name, kind).
RDC_FILE_FIELDS = (
    ("video_url", "video.mp4", "video"),
    ("device_log_url", "device.log", "device_log"),
    ("framework_log_url", "appium-server.log", "appium_log"),
    ("requests_url", "appium-requests.json", "appium_requests"),
    ("network_log_url", "network.har", "network_capture"),
    ("crash_log_url", "crash.json", "crash_log"),
    ("testfairy_log_url", "insights.json", "insights"),
    ("junit_log_url", "junit.xml", "junit_report"),
    ("test_cases_url", "test-cases.json", "test_cases"),
)
# Keys of the virtual-job asset list, by the kind the manifest gives their file.
VDC_ASSET_KINDS = {
    "video": "video",
    "video.mp4": "video",
    "sauce-log": "sauce_log",
    "selenium-log": "selenium_log",
    "automator.log": "automator_log",
    "network.har": "network_capture",
    "performance.json": "performance",
    "console.json": "console_log",
    "screenshots": "screenshot",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SauceLabsSettings(SourceSettings):
    """Sauce Labs real-device and virtual jobs with their assets (video, logs, screenshots,
    network capture). The token is the access key, the password of HTTP basic auth."""

    CREDENTIAL_VARIABLE = "SAUCE_ACCESS_KEY"
    BASE_URL_EXAMPLE = "https://api.us-west-1.saucelabs.com"

    username: Annotated[
        Text | None,
        Field(
            description="user name (basic auth, and the {username} of the virtual jobs' "
            "path); unset: read from the variable username_env names",
            examples=["jsmith"],
        ),
    ] = None
    username_env: Annotated[
        Text,
        Field(description="the environment variable holding the user name when username is unset"),
    ] = "SAUCE_USERNAME"
    real_devices: Annotated[Flag, Field(description="archive real-device jobs (/v1/rdc/jobs)")] = (
        True
    )
    virtual_devices: Annotated[
        Flag,
        Field(description="archive emulator, simulator and desktop browser jobs (/rest/v1)"),
    ] = True
    page_limit: Annotated[
        Int, Field(ge=1, validation_alias="limit", description="jobs per page")
    ] = 100

    @model_validator(mode="after")
    def _region_and_username(self, info: ValidationInfo) -> SauceLabsSettings:
        host = (urlsplit(self.base_url).hostname or "").lower()
        if host == "saucelabs.com" or host.endswith(".saucelabs.com"):
            allowed = {f"api.{region}.saucelabs.com" for region in REGIONS}
            if host not in allowed or not self.base_url.startswith("https://"):
                choices = ", ".join(f"https://api.{region}.saucelabs.com" for region in REGIONS)
                raise problem(f"a Sauce Labs API origin is one of {choices}", key="base_url")
        if not (self.real_devices or self.virtual_devices):
            raise problem("real_devices and virtual_devices are both false", key="real_devices")
        reading = reading_of(info)
        if self.username is None and reading is not None and reading.read_tokens:
            value = reading.environ.get(self.username_env, "").strip()
            if not value:
                raise problem(
                    f"not set, and environment variable {self.username_env} is not set or empty",
                    key="username",
                )
            object.__setattr__(self, "username", value)  # frozen: part of building the record
        return self

    def user(self) -> str:
        """The user name; a :class:`ConfigError` if neither the file nor the variable set it."""
        if not self.username:
            raise ConfigError("no Sauce Labs user name", key="sources.saucelabs.username")
        return self.username


class SauceLabsSource:
    name = NAME

    def __init__(self, client: VendorClient, settings: SauceLabsSettings) -> None:
        self.client = client
        self.settings: SauceLabsSettings = settings
        self._username = settings.user()
        self._read: dict[str, _Read] = {}

    @classmethod
    def create(
        cls, http: aiohttp.ClientSession, settings: SourceSettings, http_settings: HttpSettings
    ) -> SauceLabsSource:
        assert isinstance(settings, SauceLabsSettings)
        client = VendorClient.for_source(
            http,
            vendor=VENDOR,
            source=settings,
            auth_headers=basic(settings.user(), settings.token),
            settings=http_settings,
        )
        return cls(client, settings)

    async def sessions(self, since: datetime, until: datetime) -> AsyncIterator[Session]:
        seen: set[str] = set()
        if self.settings.real_devices:
            async for job in self._list_real_device_jobs(since):
                session = _real_device_session(job)
                if session.session_id not in seen and since <= session.started_at <= until:
                    seen.add(session.session_id)
                    yield session
        if self.settings.virtual_devices:
            async for job in self._list_virtual_jobs(since, until):
                session = _virtual_session(job)
                if session.session_id not in seen:
                    seen.add(session.session_id)
                    yield session

    async def get_session(self, session_id: str, *, locator: str | None = None) -> Session:
        if locator == REAL_DEVICES:
            return _real_device_session(await self._real_device_job(session_id))
        if locator == VIRTUAL:
            return _virtual_session(await self._virtual_job(session_id))
        # No locator (rearchive by id): the id says nothing of its cloud, so ask both.
        try:
            return _real_device_session(await self._real_device_job(session_id))
        except VendorError as exc:
            if exc.status != 404:
                raise
        return _virtual_session(await self._virtual_job(session_id))

    async def artifacts(self, session: Session) -> list[Artifact]:
        if session.locator == REAL_DEVICES:
            return await self._real_device_artifacts(session)
        return await self._virtual_artifacts(session)

    def not_offered(self, session: Session) -> list[str]:
        # What artifacts() just read for this session: the job details (real devices) or
        # the asset list (virtual); the listing record alone does not say.
        seen = self._read.pop(session.session_id, None)
        if seen is None:
            return ["asset details: not read for this job"]
        if seen.assets is None:
            return list(_real_device_gaps(seen.job))
        return list(_virtual_gaps({**session.record, **seen.job}, seen.assets))

    # -- real devices --------------------------------------------------------------------

    async def _list_real_device_jobs(self, since: datetime) -> AsyncIterator[JSON]:
        params: dict[str, str] = {"limit": str(self.settings.page_limit)}
        while True:
            body = await self.client.get_json("/v1/rdc/jobs", params=params)
            entities, metadata = _rdc_page(body)
            for entity in entities:
                yield entity
            older = [_real_device_session(e).started_at < since for e in entities]
            if not entities or any(older) or metadata.get("moreAvailable") is not True:
                return
            offset = metadata.get("offset")
            first = offset if isinstance(offset, int) and not isinstance(offset, bool) else 0
            params = {**params, "offset": str(first + len(entities))}

    async def _real_device_job(self, job_id: str) -> JSON:
        path = f"/v1/rdc/jobs/{quote(job_id, safe='')}"
        return await self._json_object(path, f"real-device job {job_id}")

    async def _json_object(self, path: str, what: str) -> JSON:
        """The JSON object at ``path``; BadVendorResponse naming ``what`` if it is not one."""
        body = await self.client.get_json(path)
        if not isinstance(body, dict):
            raise BadVendorResponse(f"{VENDOR}: {what} is not a JSON object")
        return body

    async def _real_device_artifacts(self, session: Session) -> list[Artifact]:
        path = f"/v1/rdc/jobs/{quote(session.session_id, safe='')}"
        job, raw = await self.client.get_document(path)
        if not isinstance(job, dict):
            raise BadVendorResponse(
                f"{VENDOR}: real-device job {session.session_id} is not a JSON object"
            )
        if job.get("record_video") is True and not _text(job.get("video_url")):
            raise NotReady(f"{VENDOR}: real-device job {session.session_id} has no video yet")
        found = [_json_bytes("job.json", "job_record", raw)]
        for field, filename, kind in RDC_FILE_FIELDS:
            url = _text(job.get(field))
            if url:
                found.append(Artifact(name=filename, kind=kind, url=self.client.url(url)))
        if _listed_screenshots(job):
            found.append(
                Artifact(
                    name="screenshots.zip",
                    kind="screenshots",
                    url=self.client.url(f"{path}/screenshots.zip"),
                )
            )
        self._keep_read(session.session_id, _Read(job=job, assets=None))
        return found

    # -- virtual devices and desktop browsers --------------------------------------------

    async def _list_virtual_jobs(self, since: datetime, until: datetime) -> AsyncIterator[JSON]:
        limit = self.settings.page_limit
        params = {
            "from": str(int(since.timestamp())),
            "to": str(int(until.timestamp()) + 1),
            "limit": str(limit),
            "full": "true",
        }
        skip = 0
        while True:
            body = await self.client.get_json(
                self._jobs_path(), params={**params, "skip": str(skip)}
            )
            if not isinstance(body, list):
                raise BadVendorResponse(f"{VENDOR}: the jobs listing is not a JSON list")
            jobs: list[JSON] = [job for job in body if isinstance(job, dict)]
            for job in jobs:
                yield job
            skip += len(body)
            if len(body) < limit:
                return

    async def _virtual_job(self, job_id: str) -> JSON:
        path = f"{self._jobs_path()}/{quote(job_id, safe='')}"
        return await self._json_object(path, f"job {job_id}")

    async def _virtual_artifacts(self, session: Session) -> list[Artifact]:
        job_path = f"{self._jobs_path()}/{quote(session.session_id, safe='')}"
        job, job_raw = await self.client.get_document(job_path)
        if not isinstance(job, dict):
            raise BadVendorResponse(f"{VENDOR}: job {session.session_id} is not a JSON object")
        try:
            assets, assets_raw = await self.client.get_document(f"{job_path}/assets")
        except VendorError as exc:
            if exc.status == 404:
                raise NotReady(
                    f"{VENDOR}: job {session.session_id} has ended but its assets are not "
                    "listed yet"
                ) from exc
            raise
        if not isinstance(assets, dict) or not assets:
            raise NotReady(f"{VENDOR}: job {session.session_id} lists no assets yet")
        found = [
            _json_bytes("job.json", "job_record", job_raw),
            _json_bytes("assets.json", "asset_list", assets_raw),
        ]
        for filename, kind in _asset_files(assets):
            found.append(
                Artifact(
                    name=filename,
                    kind=kind,
                    url=self.client.url(f"{job_path}/assets/{quote(filename, safe='')}"),
                )
            )
        self._keep_read(session.session_id, _Read(job=job, assets=assets))
        return found

    def _keep_read(self, session_id: str, read: _Read) -> None:
        self._read.pop(session_id, None)
        self._read[session_id] = read
        while len(self._read) > READ_KEPT:
            del self._read[next(iter(self._read))]

    def _jobs_path(self) -> str:
        return f"/rest/v1/{quote(self._username, safe='')}/jobs"


@dataclass(frozen=True, slots=True)
class _Read:
    """What artifacts() read of one job: its details, and its asset list (virtual jobs)."""

    job: JSON
    assets: JSON | None


def _json_bytes(name: str, kind: str, raw: bytes) -> Artifact:
    return Artifact(name=name, kind=kind, content=raw, content_type="application/json")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _rdc_page(body: Any) -> tuple[list[JSON], Mapping[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("entities"), list):
        raise BadVendorResponse(f"{VENDOR}: real-device jobs response has no 'entities' list")
    metadata = body.get("metaData")
    entities: list[JSON] = [item for item in body["entities"] if isinstance(item, dict)]
    return entities, metadata if isinstance(metadata, dict) else {}


def _job_id(job: JSON) -> str:
    job_id = job.get("id")
    if not isinstance(job_id, str) or not job_id:
        raise BadVendorResponse(f"{VENDOR}: a job without an 'id'")
    return job_id


def _epoch(value: Any, *, divisor: int) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value / divisor, UTC)


def _real_device_session(job: JSON) -> Session:
    started = _epoch(job.get("start_time"), divisor=1000) or _epoch(
        job.get("creation_time"), divisor=1000
    )
    status = job.get("status")
    ended = _epoch(job.get("end_time"), divisor=1000) is not None
    return Session(
        source=NAME,
        session_id=_job_id(job),
        started_at=started or datetime.now(UTC),
        complete=ended and str(status).lower() not in UNFINISHED_STATUSES,
        record=job,
        locator=REAL_DEVICES,
    )


def _virtual_session(job: JSON) -> Session:
    started = _epoch(job.get("start_time"), divisor=1) or _epoch(
        job.get("creation_time"), divisor=1
    )
    status = job.get("status")
    ended = _epoch(job.get("end_time"), divisor=1) is not None
    return Session(
        source=NAME,
        session_id=_job_id(job),
        started_at=started or datetime.now(UTC),
        complete=ended and isinstance(status, str) and status not in UNFINISHED_STATUSES,
        record=job,
        locator=VIRTUAL,
    )


def _listed_screenshots(job: JSON) -> bool:
    shots = job.get("screenshots")
    return isinstance(shots, list) and bool(shots)


def _asset_files(assets: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Every file the asset list names, once each (``video`` and ``video.mp4`` are one)."""
    named: dict[str, str] = {}
    for key, value in assets.items():
        kind = VDC_ASSET_KINDS.get(key, key.replace(".", "_").replace("-", "_"))
        for filename in value if isinstance(value, list) else [value]:
            if isinstance(filename, str) and filename and "/" not in filename:
                named.setdefault(filename, kind)
    yield from named.items()


def _real_device_gaps(job: JSON) -> Iterator[str]:
    """What the real-device job's details say it does not have."""
    if job.get("record_video") is False:
        yield "video: not recorded (the job ran with recordVideo false)"
    if not _listed_screenshots(job):
        why = "recordScreenshots false" if job.get("record_screenshots") is False else "none taken"
        yield f"screenshots: none listed for this job ({why})"
    if not _text(job.get("network_log_url")):
        yield "network.har: network capture was not enabled for this job"
    if not _text(job.get("framework_log_url")):
        backend = job.get("automation_backend") or "not Appium"
        yield f"Appium log: none (framework_log_url is null; automation backend {backend})"
    others = [
        field
        for field, _name, _kind in RDC_FILE_FIELDS
        if field not in ("video_url", "network_log_url", "framework_log_url")
        and not _text(job.get(field))
    ]
    if others:
        yield "not offered for this job (null in its details): " + ", ".join(others)


def _virtual_gaps(job: JSON, assets: Mapping[str, Any]) -> Iterator[str]:
    """What the virtual job's asset list lacks, and the capability that explains it."""
    config = job.get("base_config")
    capabilities: Mapping[str, Any] = config if isinstance(config, dict) else {}
    options = capabilities.get("sauce:options")
    if isinstance(options, dict):
        capabilities = {**capabilities, **options}

    def why(capability: str) -> str:
        value = capabilities.get(capability)
        return (
            f"{capability} capability {str(value).lower()}"
            if value is not None
            else f"{capability} not set"
        )

    if not (assets.get("video") or assets.get("video.mp4")):
        yield f"video: not recorded ({why('recordVideo')})"
    if not assets.get("screenshots"):
        yield f"screenshots: none ({why('recordScreenshots')})"
    if not assets.get("sauce-log"):
        yield f"log.json: not recorded ({why('recordLogs')})"
    if not assets.get("selenium-log"):
        yield "selenium-server.log: not in the asset list"
    if not assets.get("network.har"):
        yield f"network.har: recorded only with extendedDebugging ({why('extendedDebugging')})"


@asynccontextmanager
async def _demo(sessions: int, held_back: int) -> AsyncIterator[DemoRun]:
    from archiver_sim.runner import running
    from archiver_sim.saucelabs import SauceLabsSimConfig, SauceLabsSimulator

    config = SauceLabsSimConfig(jobs=sessions, unfinished=held_back)
    async with running(SauceLabsSimulator(config)) as simulator:
        yield DemoRun(
            settings=SauceLabsSettings(
                base_url=simulator.api_url,
                token=Secret(config.access_key),
                username=config.username,
                backfill_days=12,
            ),
            urls={"API": simulator.api_url, "files": simulator.files_url},
            finish=simulator.finish_all,
        )


def _fixture() -> SimulatorFixture[SauceLabsSimulator, SauceLabsSimConfig]:
    from archiver_sim.saucelabs import SauceLabsSimConfig, SauceLabsSimulator

    return SimulatorFixture(SauceLabsSimulator, SauceLabsSimConfig)


SPEC = SourceSpec(
    name=NAME,
    title=VENDOR,
    settings=SauceLabsSettings,
    factory=SauceLabsSource.create,
    demo=_demo,
    fixture=_fixture,
    not_offered="what a job's capabilities turned off: video (recordVideo), screenshots "
    "(recordScreenshots), log.json (recordLogs); network.har only with extendedDebugging "
    "(virtual) or network capture (real devices); the Appium log only for Appium jobs. "
    "Sauce Labs deletes job assets after 30 days.",
)
