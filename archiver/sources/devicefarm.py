"""AWS Device Farm test runs, archived once ``COMPLETED``.

Follows botocore's service model of Device Farm (``botocore/data/devicefarm/2015-06-23``:
``service-2.json``, ``paginators-1.json``) and AWS's "AWS Device Farm API Reference" pages
(ListProjects, ListRuns, GetRun, ListJobs, ListSuites, ListTests, ListArtifacts, Common
Errors) and "Downloading artifacts in Device Farm".

The API is reached through boto3's ``devicefarm`` client: ``list_projects`` (or the
``project_arns`` configured) → ``list_runs`` per project → for each run, ``list_jobs`` (one
job per device) → ``list_suites`` → ``list_tests`` → ``list_artifacts`` of each test for
each category, ``FILE``, ``LOG`` and ``SCREENSHOT``; every listing pages with ``nextToken``
through boto3's paginators. A run is a session: its id is the run's id (the last part of
its ARN, which is the session's locator; ``rearchive --id`` takes either). A run is complete
when its ``status`` is ``COMPLETED``; the others are held back and re-checked on later
passes (``get_run``). boto3 is synchronous: each call runs in a thread of the source's own
pool, ``api_concurrency`` at once, and botocore's ``standard`` retry mode retries
throttling (400 ``ThrottlingException``...), 5xx and connection errors ``http.attempts``
times in all before the error reaches the engine. AWS credentials come from boto3's default
chain (``AWS_*`` variables, ``~/.aws``, the instance role) or the ``profile`` named; the
archiver never holds them.

Each artifact's ``url`` is a pre-signed S3 URL on another origin that expires: it is
fetched with no credentials at all, and when its host answers 403 before the download
(expired), the engine asks the source for a fresh one (``Artifact.renew_url``: the test's
``list_artifacts`` again) and tries once more. boto3 turns the API's epoch-second times
into datetimes; the records kept have them as RFC 3339 UTC strings, and the listings kept
have each URL without its query string (its signature).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import aiohttp
import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from pydantic import Field, field_validator

from archiver import __version__
from archiver.configkeys import NOT_IN_FILE, HttpUrl, Int, Strings, Text, problem
from archiver.errors import BadVendorResponse, VendorError, VendorUnavailable
from archiver.http import VendorClient
from archiver.model import JSON, Artifact, Session, rfc3339, strip_query
from archiver.settings import HttpSettings, Secret, SourceSettings
from archiver.sources.records import json_artifact, parse_timestamp
from archiver.sources.spec import DemoRun, SimulatorFixture, SourceSpec

if TYPE_CHECKING:
    from mypy_boto3_devicefarm import DeviceFarmClient

    from archiver_sim.devicefarm import DeviceFarmSimConfig, DeviceFarmSimulator

NAME = "devicefarm"
VENDOR = "AWS Device Farm"
DEFAULT_REGION = "us-west-2"  # the one region Device Farm's API runs in
CATEGORIES = ("FILE", "LOG", "SCREENSHOT")
COMPLETED = "COMPLETED"
NOT_FOUND_STATUS = 400  # NotFoundException is a 400 in the AWS JSON protocol
# Error codes botocore's standard retry mode also counts as throttling.
THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "LimitExceededException",
        "RequestLimitExceeded",
    }
)
NOT_OFFERED = (
    "network capture: Device Farm's API offers no network traffic capture (HAR or pcap) of a run",
    "the console's report page (the run's webUrl) is a page, not a file: its content is the "
    "records and files kept here",
    "pre-signed artifact URLs: they expire; the listings kept name each URL without its signature",
)

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class AwsKeys:
    """Static AWS keys, given by code only (the demo, tests): a configuration file's source
    gets its credentials from boto3's chain or ``profile``."""

    access_key_id: str
    secret_access_key: Secret = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceFarmSettings(SourceSettings):
    """AWS Device Farm test runs, archived once COMPLETED: each device's job with its
    suites, tests, files, logs and screenshots."""

    # The API is boto3's: its endpoint follows region (or endpoint_url), and its
    # credentials come from boto3's chain, never from a token variable.
    base_url: Annotated[str, NOT_IN_FILE] = ""
    token_env: Annotated[Text | None, NOT_IN_FILE] = None
    token: Annotated[Secret, NOT_IN_FILE] = field(default=Secret(""), repr=False)
    trusted_hosts: Annotated[Strings, NOT_IN_FILE] = ()  # no token to send anywhere
    # botocore paces and retries the API calls itself (its standard retry mode).
    requests_per_second: Annotated[float | None, NOT_IN_FILE] = None

    region: Annotated[
        Text, Field(description="the AWS region of Device Farm's API (it runs in us-west-2)")
    ] = DEFAULT_REGION
    endpoint_url: Annotated[
        HttpUrl | None,
        Field(
            description="another API endpoint (a VPC endpoint, a test double); unset: the region's",
            examples=["https://devicefarm.us-west-2.amazonaws.com"],
        ),
    ] = None
    profile: Annotated[
        Text | None,
        Field(
            description="the AWS profile (~/.aws) whose credentials are used; unset: boto3's "
            "default chain (AWS_* variables, ~/.aws, the instance role)",
            examples=["devicefarm-archiver"],
        ),
    ] = None
    project_arns: Annotated[
        Strings,
        Field(
            description="only these projects' runs (their ARNs); empty: every project the "
            "credentials list"
        ),
    ] = ()
    api_concurrency: Annotated[
        Int, Field(ge=1, le=64, description="Device Farm API calls in flight at once")
    ] = 4
    keys: Annotated[AwsKeys | None, NOT_IN_FILE] = field(default=None, repr=False)

    @field_validator("project_arns")
    @classmethod
    def _project_arns_are_arns(cls, arns: tuple[str, ...]) -> tuple[str, ...]:
        for arn in arns:
            if not arn.startswith("arn:aws:devicefarm:") or ":project:" not in arn:
                raise problem(f"not a Device Farm project ARN: {arn!r}")
        return arns

    def __post_init__(self) -> None:
        if not self.base_url:  # the origin of the API, for the logs and the vendor client
            endpoint = self.endpoint_url or f"https://devicefarm.{self.region}.amazonaws.com"
            object.__setattr__(self, "base_url", endpoint.rstrip("/"))

    @classmethod
    def credentials_note(cls) -> str:
        return (
            "AWS credentials come from boto3's default chain (AWS_* variables, ~/.aws, the "
            "instance role) or the named `profile`; artifact downloads carry none."
        )


class DeviceFarmApi:
    """boto3's ``devicefarm`` client, called off the event loop, errors translated.

    ``on_response(status)`` is told of every HTTP attempt botocore makes (retries included;
    None: no answer), on the event loop.
    """

    def __init__(
        self,
        settings: DeviceFarmSettings,
        http_settings: HttpSettings,
        on_response: Callable[[int | None], None],
    ) -> None:
        self._pool = ThreadPoolExecutor(
            settings.api_concurrency, thread_name_prefix="archiver-devicefarm"
        )
        self._client = _make_client(settings, http_settings)
        self._on_response = on_response
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client.meta.events.register("response-received.device-farm.*", self._received)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    async def call(self, operation: str, **params: Any) -> JSON:
        method = getattr(self._client, operation)
        answer: dict[str, Any] = await self._in_pool(operation, params, method, **params)
        answer.pop("ResponseMetadata", None)
        plain: JSON = _plain(answer)
        return plain

    async def items(self, operation: str, key: str, **params: Any) -> AsyncIterator[JSON]:
        """Every item of a listing, page by page (``nextToken``), as the paginator gives them."""
        pages: Iterator[dict[str, Any]] = iter(
            self._client.get_paginator(operation).paginate(**params)  # type: ignore[call-overload]
        )
        while True:
            page = await self._in_pool(operation, params, next, pages, None)
            if page is None:
                return
            listed = page.get(key)
            if not isinstance(listed, list):
                raise BadVendorResponse(f"{VENDOR}: {operation} answered without '{key}'")
            for item in listed:
                if isinstance(item, dict):
                    yield _plain(item)

    async def _in_pool(
        self,
        operation: str,
        params: dict[str, Any],
        function: Callable[..., _T],
        *args: Any,
        **kwargs: Any,
    ) -> _T:
        call = functools.partial(function, *args, **kwargs)
        self._loop = asyncio.get_running_loop()
        try:
            return await self._loop.run_in_executor(self._pool, call)
        except ClientError as exc:
            raise _client_error(operation, params, exc) from exc
        except (NoCredentialsError, ProfileNotFound) as exc:
            raise VendorError(
                f"{VENDOR}: {operation} not sent: {exc} (AWS credentials come from boto3's "
                "default chain or the source's profile)",
                vendor=VENDOR,
            ) from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            raise VendorUnavailable(
                f"{VENDOR}: {operation} {_subject(params)} failed: {type(exc).__name__}",
                vendor=VENDOR,
            ) from exc
        except BotoCoreError as exc:
            raise VendorError(
                f"{VENDOR}: {operation} {_subject(params)} failed: {exc}", vendor=VENDOR
            ) from exc

    def _received(self, response_dict: dict[str, Any] | None = None, **_: Any) -> None:
        """botocore's ``response-received`` event, in a worker thread."""
        status = response_dict.get("status_code") if response_dict else None
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_response, status)


class DeviceFarmSource:
    name = NAME

    def __init__(
        self, client: VendorClient, settings: DeviceFarmSettings, api: DeviceFarmApi
    ) -> None:
        self.client = client
        self.settings: DeviceFarmSettings = settings
        self.api = api
        # What each session's jobs did not record (video off), from artifacts() to the
        # manifest's not_offered().
        self._unrecorded: dict[str, list[str]] = {}

    @classmethod
    def create(
        cls, http: aiohttp.ClientSession, settings: SourceSettings, http_settings: HttpSettings
    ) -> DeviceFarmSource:
        assert isinstance(settings, DeviceFarmSettings)
        # Artifact URLs are pre-signed on other origins: the downloads carry no credentials,
        # and the API's own requests are boto3's (signed there), never this client's.
        client = VendorClient(
            http,
            vendor=VENDOR,
            base_url=settings.base_url,
            auth_headers=_no_credentials,
            settings=http_settings,
            label=NAME,
        )

        def api_response(status: int | None) -> None:
            client.observer.vendor_request(client.label, status=status)

        return cls(client, settings, DeviceFarmApi(settings, http_settings, api_response))

    async def sessions(self, since: datetime, until: datetime) -> AsyncIterator[Session]:
        seen: set[str] = set()
        async for project_arn in self._project_arns():
            async for record in self.api.items("list_runs", "runs", arn=project_arn):
                session = _session(record)
                if since <= session.started_at <= until and session.session_id not in seen:
                    seen.add(session.session_id)
                    yield session

    async def get_session(self, session_id: str, *, locator: str | None = None) -> Session:
        if locator or session_id.startswith("arn:"):
            return await self._get_run(locator or session_id)
        # Only the run's id (``archiver rearchive --id``): it is a run of one of the projects.
        async for project_arn in self._project_arns():
            try:
                return await self._get_run(
                    f"{project_arn.replace(':project:', ':run:')}/{session_id}"
                )
            except VendorError as error:
                if error.status != NOT_FOUND_STATUS:
                    raise
        raise VendorError(
            f"{VENDOR}: run {session_id} is not a run of any project listed", vendor=VENDOR
        )

    async def artifacts(self, session: Session) -> list[Artifact]:
        run_arn = _arn(session.record, "run")
        jobs = [job async for job in self.api.items("list_jobs", "jobs", arn=run_arn)]
        per_job = await _in_order(self._job_artifacts(job) for job in jobs)
        self._unrecorded[session.session_id] = [
            _video_off(job) for job in jobs if job.get("videoCapture") is False
        ]
        run = json_artifact("run.json", "run_record", session.record)
        return [run, json_artifact("jobs.json", "jobs", jobs), *_flat(per_job)]

    def not_offered(self, session: Session) -> list[str]:
        return [*NOT_OFFERED, *self._unrecorded.pop(session.session_id, [])]

    async def _get_run(self, run_arn: str) -> Session:
        answer = await self.api.call("get_run", arn=run_arn)
        record = answer.get("run")
        if not isinstance(record, dict):
            raise BadVendorResponse(f"{VENDOR}: run {run_arn}: GetRun answered without 'run'")
        return _session(record)

    async def _project_arns(self) -> AsyncIterator[str]:
        if self.settings.project_arns:
            for arn in self.settings.project_arns:
                yield arn
            return
        async for project in self.api.items("list_projects", "projects"):
            yield _arn(project, "project")

    async def _job_artifacts(self, job: JSON) -> list[Artifact]:
        folder = f"jobs/{_tail(_arn(job, 'job'))}"
        suites = [s async for s in self.api.items("list_suites", "suites", arn=job["arn"])]
        per_suite = await _in_order(self._suite_artifacts(folder, suite) for suite in suites)
        records = [
            json_artifact(f"{folder}/job.json", "job_record", job),
            json_artifact(f"{folder}/suites.json", "suites", suites),
        ]
        return records + _flat(per_suite)

    async def _suite_artifacts(self, job_folder: str, suite: JSON) -> list[Artifact]:
        folder = f"{job_folder}/{_tail(_arn(suite, 'suite'))}"
        tests = [t async for t in self.api.items("list_tests", "tests", arn=suite["arn"])]
        per_test = await _in_order(self._test_artifacts(folder, test) for test in tests)
        return [json_artifact(f"{folder}/tests.json", "tests", tests), *_flat(per_test)]

    async def _test_artifacts(self, suite_folder: str, test: JSON) -> list[Artifact]:
        test_arn = _arn(test, "test")
        folder = f"{suite_folder}/{_tail(test_arn)}"
        listings = await _in_order(self._listed(test_arn, category) for category in CATEGORIES)
        files: list[Artifact] = []
        kept: list[JSON] = []
        for category, listed in zip(CATEGORIES, listings, strict=True):
            for number, item in enumerate(listed):
                url = item.get("url")
                artifact_arn = _arn(item, "artifact")
                kept.append({**item, "category": category, "url": _unsigned(url)})
                if not isinstance(url, str) or not url:
                    continue  # listed before its file exists: said by its record
                files.append(
                    Artifact(
                        name=f"{folder}/{category.lower()}/{number:02d}-{_file_name(item)}",
                        kind=str(item.get("type") or category).lower(),
                        url=url,
                        renew_url=functools.partial(
                            self._fresh_url, test_arn, category, artifact_arn
                        ),
                    )
                )
        return [json_artifact(f"{folder}/artifacts.json", "artifact_list", kept), *files]

    async def _listed(self, test_arn: str, category: str) -> list[JSON]:
        return [
            item
            async for item in self.api.items(
                "list_artifacts", "artifacts", arn=test_arn, type=category
            )
        ]

    async def _fresh_url(self, test_arn: str, category: str, artifact_arn: str) -> str:
        """The artifact's URL as ``list_artifacts`` gives it now (its last one expired)."""
        for item in await self._listed(test_arn, category):
            url = item.get("url")
            if item.get("arn") == artifact_arn and isinstance(url, str) and url:
                return url
        raise VendorError(
            f"{VENDOR}: artifact {artifact_arn} is no longer listed for test {test_arn}",
            vendor=VENDOR,
        )


def _no_credentials() -> dict[str, str]:
    return {}


def _make_client(settings: DeviceFarmSettings, http_settings: HttpSettings) -> DeviceFarmClient:
    config = BotoConfig(
        # Throttling, 5xx and dropped connections are retried by botocore, with backoff;
        # what still fails reaches the engine, which records the session as failed.
        retries={"mode": "standard", "total_max_attempts": http_settings.attempts},
        connect_timeout=http_settings.connect_timeout,
        read_timeout=http_settings.api_timeout,
        max_pool_connections=settings.api_concurrency,
        user_agent_extra=f"archiver/{__version__}",
    )
    keys = settings.keys
    session = boto3.session.Session(
        profile_name=settings.profile,
        aws_access_key_id=keys.access_key_id if keys else None,
        aws_secret_access_key=keys.secret_access_key.reveal() if keys else None,
        region_name=settings.region,
    )
    return session.client("devicefarm", endpoint_url=settings.endpoint_url, config=config)


def _client_error(operation: str, params: dict[str, Any], exc: ClientError) -> Exception:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "error")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    said = str(error.get("Message") or "")[:300]
    message = f"{VENDOR} answered HTTP {status} {code} for {operation} {_subject(params)}" + (
        f": {said}" if said else ""
    )
    if code in THROTTLING or (isinstance(status, int) and status >= 500):
        return VendorUnavailable(message, vendor=VENDOR, status=status)
    return VendorError(message, vendor=VENDOR, status=status)


def _subject(params: dict[str, Any]) -> str:
    arn = params.get("arn")
    return f"of {arn}" if arn else ""


def _plain(value: Any) -> Any:
    """boto3's answer as JSON: its datetimes as RFC 3339 UTC strings."""
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


async def _in_order(calls: Iterator[Coroutine[Any, Any, _T]]) -> list[_T]:
    """Run ``calls`` at once (the API pool bounds them); their results in order."""
    tasks: list[asyncio.Task[_T]] = []
    async with asyncio.TaskGroup() as group:
        tasks.extend(group.create_task(call) for call in calls)
    return [task.result() for task in tasks]


def _flat(lists: list[list[Artifact]]) -> list[Artifact]:
    return [artifact for items in lists for artifact in items]


def _arn(record: JSON, what: str) -> str:
    arn = record.get("arn")
    if not isinstance(arn, str) or not arn:
        raise BadVendorResponse(f"{VENDOR}: a {what} without an 'arn'")
    return arn


def _tail(arn: str) -> str:
    """The last part of an ARN: ``00001`` for a job, a suite, a test or an artifact."""
    return arn.rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def _file_name(item: JSON) -> str:
    name = str(item.get("name") or item.get("type") or "artifact")
    extension = item.get("extension")
    return f"{name}.{extension}" if isinstance(extension, str) and extension else name


def _unsigned(url: Any) -> Any:
    return strip_query(url) if isinstance(url, str) and url else url


def _video_off(job: JSON) -> str:
    device = job.get("device")
    name = device.get("name") if isinstance(device, dict) else None
    return (
        f"video: job {_tail(str(job.get('arn')))}"
        + (f" ({name})" if name else "")
        + " ran with video capture disabled (videoCapture false)"
    )


def _session(record: JSON) -> Session:
    arn = _arn(record, "run")
    created = parse_timestamp(record.get("created"), vendor=VENDOR)
    return Session(
        source=NAME,
        session_id=_tail(arn),  # the run's id: unique, and readable in store keys
        started_at=created or datetime.now(UTC),
        complete=record.get("status") == COMPLETED,
        record=record,
        locator=arn,
    )


@asynccontextmanager
async def _demo(sessions: int, held_back: int) -> AsyncIterator[DemoRun]:
    from archiver_sim.devicefarm import DeviceFarmSimConfig, DeviceFarmSimulator
    from archiver_sim.runner import running

    config = DeviceFarmSimConfig(runs=sessions, unfinished=held_back)
    async with running(DeviceFarmSimulator(config)) as simulator:
        yield DemoRun(
            settings=DeviceFarmSettings(
                endpoint_url=simulator.api_url,
                region=config.region,
                keys=AwsKeys(config.access_key_id, Secret(config.secret_access_key)),
                backfill_days=8,
            ),
            urls={"API": simulator.api_url, "files": simulator.files_url},
            finish=simulator.finish_all,
        )


def _fixture() -> SimulatorFixture[DeviceFarmSimulator, DeviceFarmSimConfig]:
    from archiver_sim.devicefarm import DeviceFarmSimConfig, DeviceFarmSimulator

    return SimulatorFixture(DeviceFarmSimulator, DeviceFarmSimConfig)


SPEC = SourceSpec(
    name=NAME,
    title=VENDOR,
    settings=DeviceFarmSettings,
    factory=DeviceFarmSource.create,
    demo=_demo,
    fixture=_fixture,
    not_offered="network capture (HAR or pcap); the console's report page, which is the "
    "records and files kept; video of a job that ran with video capture disabled (said per "
    "run).",
)
