"""A Sauce Labs simulator (real-device and virtual jobs), for ``archiver demo`` and the tests.

Written from Sauce Labs' public API reference: "About the Sauce REST APIs"
(docs.saucelabs.com/dev/api), "Real Device API Methods" (docs.saucelabs.com/dev/api/rdc),
"Jobs API Methods" (docs.saucelabs.com/dev/api/jobs) and "Network Traffic Capture"
(docs.saucelabs.com/mobile-apps/features/network-capture). Field names and sample shapes
are the documented ones.

Two origins. The **API origin** takes HTTP basic auth (user name and access key) and answers:

* ``GET /v1/rdc/jobs`` with ``limit`` (default 25) and ``offset`` (default 1, **1-based**:
  offset 1 is the newest job): ``{"entities": [...], "metaData": {offset, limit,
  searchTerm: null, sortDirection: "DESCENDING", moreAvailable}}``, newest first, each entity
  the documented listing fields (``id``, ``status``, ``start_time``/``end_time`` in epoch
  milliseconds...).
* ``GET /v1/rdc/jobs/{job_id}``: the job details with ``video_url``, ``device_log_url``,
  ``framework_log_url`` (Appium jobs only), ``network_log_url`` (only with network capture),
  ``record_video``, ``record_screenshots``, ``screenshots`` (the file names captured)...;
  the URLs point at ``/v1/rdc/jobs/{job_id}/{video.mp4|deviceLogs|appiumLogs|network.har}``,
  and ``/v1/rdc/jobs/{job_id}/screenshots.zip`` holds the screenshots.
* ``GET /rest/v1/{username}/jobs`` with ``limit`` (default 100), ``skip``, ``from``/``to``
  (Unix seconds, on the job's ``start_time``) and ``full``: a JSON list, newest first; full
  job records with ``full=true``, ``{"id": ...}`` only otherwise. Another user name is 404.
* ``GET /rest/v1/{username}/jobs/{job_id}``: the job (``status``, ``start_time``/``end_time``
  in epoch seconds, ``base_config`` with the capabilities, ``video_url``, ``log_url``...).
* ``GET /rest/v1/{username}/jobs/{job_id}/assets``: the documented asset list (``video``,
  ``video.mp4``, ``sauce-log``: ``log.json``, ``selenium-log``: ``selenium-server.log``,
  ``network.har``, ``screenshots``: ``[NNNNscreenshot.png, ...]``), each file then at
  ``/rest/v1/{username}/jobs/{job_id}/assets/{file_name}``.

Capabilities decide what exists, as on the real service: ``recordVideo``,
``recordScreenshots`` and ``recordLogs`` false drop the video, the screenshots and
``log.json``; ``extendedDebugging`` adds ``network.har`` to a virtual job, network capture
adds it to a real-device job; only Appium real-device jobs have an Appium log.

Videos, screenshots and HAR files are answered with a ``302`` to the **files origin**
(a storage bucket with signed URLs): it refuses any ``Authorization`` header (400, as a
signed-URL store does) and a missing or wrong ``sig`` (403), so a client that sends the
access key anywhere but the API origin fails. Logs come straight from the API origin; every
Appium log echoes the desired capabilities with ``"accessKey": "<the access key>"``, as real
Appium logs can, so a client's "never log secrets" rule can be tested.

The newest ``unfinished`` jobs are still running (no ``end_time``, status ``in progress``,
no asset URLs, assets 404); the next ``unlisted_assets`` have ended but their assets are
not uploaded yet (real devices: asset URLs null; virtual: the asset list is 404). Both
change with :meth:`SauceLabsSimulator.finish` and :meth:`~SauceLabsSimulator.finish_all`.

The dataset (:class:`SauceLabsDataset`) is built once from :class:`SauceLabsSimConfig`;
the handlers only read it, and the only state they share is which jobs are not done yet.
Every ``rate_limit_every``-th authenticated API request answers 429 with ``Retry-After``.
Routes under ``/_sim/`` are test helpers, not part of the vendor API.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from aiohttp import web
from aiohttp.typedefs import Handler

from archiver_sim.http import json_response, s3_error, send_file
from archiver_sim.perfecto import SimFile
from archiver_sim.requestlog import RequestLog, RequestLogged
from archiver_sim.testobject import TextFile

REAL_DEVICES = "rdc"
VIRTUAL = "vdc"
CLOUDS = (REAL_DEVICES, VIRTUAL)
RDC_JOBS = "/v1/rdc/jobs"
VDC_JOBS = "/rest/v1/{username}/jobs"
FILES_PREFIX = "/jobs/"
DEFAULT_RDC_LIMIT = 25
DEFAULT_VDC_LIMIT = 100
KIB = 1024

JSONDict = dict[str, Any]
JobState = Literal["running", "uploading", "done"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SauceLabsSimConfig:
    """The simulated account. Defaults suit a demo: sixteen jobs over ten days, real-device
    and virtual in turn (``clouds`` is cycled, newest first).

    Jobs start over ``span`` up to ``newest_start`` (UTC; None: an hour before the simulator
    is built). ``access_key`` is the basic-auth password.
    """

    seed: int = 7
    jobs: int = 16
    clouds: tuple[str, ...] = CLOUDS
    span: timedelta = timedelta(days=10)
    newest_start: datetime | None = None
    username: str = "sim.user"
    access_key: str = "sauce-sim-access-key"
    unfinished: int = 0
    unlisted_assets: int = 0
    screenshots_per_job: int = 2
    video_size: int = 96 * KIB
    screenshot_size: int = 12 * KIB
    log_size: int = 6 * KIB
    har_size: int = 16 * KIB
    rate_limit_every: int = 0
    retry_after: int = 1
    request_log_limit: int = 50_000

    def __post_init__(self) -> None:
        counts = (
            self.jobs,
            self.unfinished,
            self.unlisted_assets,
            self.screenshots_per_job,
            self.video_size,
            self.screenshot_size,
            self.log_size,
            self.har_size,
            self.rate_limit_every,
            self.retry_after,
        )
        if min(counts) < 0:
            raise ValueError("jobs, counts, sizes, rate_limit_every, retry_after must be >= 0")
        if not self.clouds or not set(self.clouds) <= set(CLOUDS):
            raise ValueError(f"clouds must be a non-empty sequence of {', '.join(CLOUDS)}")
        if not self.username or ":" in self.username or "/" in self.username:
            raise ValueError("username must be non-empty, without ':' or '/'")
        if self.span <= timedelta(0):
            raise ValueError("span must be positive")


# -- the dataset ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SimJob:
    """One simulated job; ``index`` is its position, newest first (times in epoch seconds)."""

    index: int
    id: str
    cloud: str
    name: str
    start: int
    duration_s: int
    passed: bool
    platform: str  # "Android", "iOS" or a desktop OS
    os_version: str
    device: str  # a device name, or the browser of a desktop job
    automation_backend: str
    record_video: bool
    record_screenshots: bool
    record_logs: bool
    network_capture: bool  # real devices: network capture; virtual: extendedDebugging
    screenshots: tuple[str, ...]

    @property
    def end(self) -> int:
        return self.start + self.duration_s


@dataclass(frozen=True, slots=True, kw_only=True)
class SimAsset:
    """One file of a job: the name the API knows it by, and whether the API answers it with
    a redirect to the files origin (big files) or serves it itself (logs)."""

    name: str
    file: SimFile
    redirected: bool


@dataclass(frozen=True, slots=True)
class SauceLabsDataset:
    """Every job and every file, newest first; built once, read by the handlers."""

    jobs: tuple[SimJob, ...]
    assets: Mapping[str, Mapping[str, SimAsset]]
    by_id: Mapping[str, SimJob]

    @classmethod
    def build(cls, config: SauceLabsSimConfig, newest: int) -> SauceLabsDataset:
        jobs = _build_jobs(config, newest)
        assets = {job.id: _build_assets(config, job) for job in jobs}
        return cls(jobs, assets, {job.id: job for job in jobs})

    def of_cloud(self, cloud: str) -> tuple[SimJob, ...]:
        return tuple(job for job in self.jobs if job.cloud == cloud)


DEVICES = (
    ("Android", "13", "Samsung Galaxy S23"),
    ("iOS", "17.2", "iPhone 15"),
    ("Android", "12", "Google Pixel 6"),
    ("iOS", "16.4", "iPad Pro 12.9 2022"),
)
DESKTOPS = (
    ("Windows 11", "chrome", "120"),
    ("macOS 13", "safari", "16"),
    ("Windows 10", "firefox", "121"),
    ("Android", "Android GoogleAPI Emulator", "13.0"),
    ("iOS", "iPhone Simulator", "17.0"),
)
RDC_BACKENDS = ("APPIUM", "APPIUM", "ESPRESSO", "XCUITEST")


def _build_jobs(config: SauceLabsSimConfig, newest: int) -> tuple[SimJob, ...]:
    rng = random.Random(f"saucelabs:{config.seed}")
    step = max(1, int(config.span.total_seconds()) // max(1, config.jobs))
    waiting = config.unfinished + config.unlisted_assets
    jobs = []
    for index in range(config.jobs):
        cloud = config.clouds[index % len(config.clouds)]
        jitter = rng.randrange(step) if step > 1 and index > 0 else 0
        real = cloud == REAL_DEVICES
        if real:
            platform, os_version, device = DEVICES[index % len(DEVICES)]
            backend = RDC_BACKENDS[index % len(RDC_BACKENDS)]
        else:
            platform, device, os_version = DESKTOPS[index % len(DESKTOPS)]
            backend = "webdriver"
        # Jobs still waiting for their assets record video: that is how a client tells.
        record_video = index < waiting or index % 7 != 5
        record_screenshots = index % 5 != 3
        jobs.append(
            SimJob(
                index=index,
                id=hashlib.blake2b(
                    f"{config.seed}:job:{index}".encode(), digest_size=16
                ).hexdigest(),
                cloud=cloud,
                name=f"{'checkout' if index % 2 else 'login'} flow #{config.jobs - index}",
                start=newest - index * step - jitter,
                duration_s=rng.randint(20, 900),
                passed=rng.random() > 0.25,
                platform=platform,
                os_version=os_version,
                device=device,
                automation_backend=backend,
                record_video=record_video,
                record_screenshots=record_screenshots,
                record_logs=real or index % 6 != 3,
                network_capture=index % 3 == 0,
                screenshots=tuple(
                    f"{number:04d}screenshot.png" for number in range(config.screenshots_per_job)
                )
                if record_screenshots
                else (),
            )
        )
    return tuple(jobs)


def _build_assets(config: SauceLabsSimConfig, job: SimJob) -> dict[str, SimAsset]:
    body = f"saucelabs/{config.seed}/{job.id}"
    found: list[SimAsset] = []

    def generated(name: str, size: int, content_type: str, redirected: bool = True) -> None:
        file = SimFile(
            execution_id=job.id,
            kind=name,
            filename=name,
            size=size,
            content_type=content_type,
            delivery="redirect" if redirected else "secure",
            body=f"{body}/{name}",
        )
        found.append(SimAsset(name=name, file=file, redirected=redirected))

    def text(name: str, content: bytes, content_type: str = "text/plain") -> None:
        file = TextFile(
            execution_id=job.id,
            kind=name,
            filename=name,
            size=len(content),
            content_type=content_type,
            delivery="secure",
            body=f"{body}/{name}",
            text=content,
        )
        found.append(SimAsset(name=name, file=file, redirected=False))

    if job.record_video:
        generated("video.mp4", config.video_size, "video/mp4")
    if job.network_capture:
        generated("network.har", config.har_size, "application/json")
    if job.cloud == REAL_DEVICES:
        text("deviceLogs", _log_text(config, job, "device"))
        if job.automation_backend == "APPIUM":
            text("appiumLogs", _log_text(config, job, "appium"))
        if job.screenshots:
            generated(
                "screenshots.zip", config.screenshot_size * len(job.screenshots), "application/zip"
            )
    else:
        if job.record_logs:
            text("log.json", _sauce_log(job), "application/json")
        text("selenium-server.log", _log_text(config, job, "selenium"))
        for shot in job.screenshots:
            generated(shot, config.screenshot_size, "image/png")
    return {asset.name: asset for asset in found}


def _log_text(config: SauceLabsSimConfig, job: SimJob, kind: str) -> bytes:
    """A deterministic log of about ``log_size`` bytes."""
    rng = random.Random(f"saucelabs:{config.seed}:log:{job.id}:{kind}")
    moment = datetime.fromtimestamp(job.start, UTC)
    lines: list[str] = []
    if kind == "appium":
        capabilities = {
            "platformName": job.platform,
            "appium:deviceName": job.device,
            "sauce:options": {"username": config.username, "accessKey": config.access_key},
        }
        lines.append(f"{moment:%Y-%m-%d %H:%M:%S} [Appium] Welcome to Appium v2.2.1")
        lines.append(
            f"{moment:%Y-%m-%d %H:%M:%S} [HTTP] --> POST /wd/hub/session "
            + json.dumps({"capabilities": {"alwaysMatch": capabilities}})
        )
    size = sum(len(line) + 1 for line in lines)
    while size < config.log_size:
        moment += timedelta(milliseconds=rng.randint(5, 900))
        tag = rng.choice(("ActivityManager", "WindowManager", "SimApp", "WebDriver"))
        line = f"{moment:%Y-%m-%d %H:%M:%S.%f} {kind} {tag}: event {rng.random():.6f}"
        lines.append(line)
        size += len(line) + 1
    return ("\n".join(lines) + "\n").encode()


def _sauce_log(job: SimJob) -> bytes:
    commands = [
        {"method": "POST", "path": "session", "between_commands": None, "duration": 1.2,
         "start_time": job.start, "in_video_timeline": 0.0},
        {"method": "GET", "path": f"session/{job.id}/title", "between_commands": 0.3,
         "duration": 0.1, "start_time": job.start + 2, "in_video_timeline": 2.0},
    ]  # fmt: skip
    return (json.dumps(commands, indent=1) + "\n").encode()


# -- the simulator -------------------------------------------------------------------------


class _BadRequest(Exception):
    """A request the API answers with 400 and this message."""


class SauceLabsSimulator(RequestLogged):
    """The dataset, which jobs are not done yet, and both origins' applications."""

    def __init__(self, config: SauceLabsSimConfig | None = None) -> None:
        self.config = config = config or SauceLabsSimConfig()
        newest = config.newest_start or datetime.now(UTC) - timedelta(hours=1)
        if newest.tzinfo is None:
            newest = newest.replace(tzinfo=UTC)
        self.dataset = SauceLabsDataset.build(config, int(newest.timestamp()))
        self._key = f"saucelabs-sim-{config.seed}".encode()
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()
        jobs = self.dataset.jobs
        self._running = {job.id for job in jobs[: config.unfinished]}
        waiting = config.unfinished + config.unlisted_assets
        self._uploading = {job.id for job in jobs[config.unfinished : waiting]}
        self._count = 0
        self.request_log = RequestLog(config.request_log_limit)

    # -- runner protocol ---------------------------------------------------------------

    def applications(self) -> dict[str, web.Application]:
        api = web.Application(middlewares=[self.request_log.recorder("api"), self._gate])
        api.router.add_get(RDC_JOBS, self._rdc_list)
        api.router.add_get(RDC_JOBS + "/{job_id}", self._rdc_job)
        api.router.add_get(RDC_JOBS + "/{job_id}/{name}", self._rdc_asset)
        vdc = VDC_JOBS.format(username="{username}")
        api.router.add_get(vdc, self._vdc_list)
        api.router.add_get(vdc + "/{job_id}", self._vdc_job)
        api.router.add_get(vdc + "/{job_id}/assets", self._vdc_assets)
        api.router.add_get(vdc + "/{job_id}/assets/{name}", self._vdc_asset)
        api.router.add_get("/_sim/requests", self.request_log.serve)
        files = web.Application(middlewares=[self.request_log.recorder("files")])
        files.router.add_get(FILES_PREFIX + "{job_id}/{name}", self._file)
        return {"api": api, "files": files}

    def bind(self, base_urls: Mapping[str, str]) -> None:
        self._urls = dict(base_urls)

    @property
    def api_url(self) -> str:
        return self._urls["api"]

    @property
    def files_url(self) -> str:
        return self._urls["files"]

    @property
    def vdc_jobs_path(self) -> str:
        return VDC_JOBS.format(username=self.config.username)

    # -- control (thread-safe) -----------------------------------------------------------

    def state(self, job_id: str) -> JobState:
        self.job(job_id)
        with self._lock:
            if job_id in self._running:
                return "running"
            return "uploading" if job_id in self._uploading else "done"

    def finish(self, job_id: str) -> None:
        """End a running job and upload its assets."""
        self.job(job_id)
        with self._lock:
            self._running.discard(job_id)
            self._uploading.discard(job_id)

    def finish_all(self) -> None:
        with self._lock:
            self._running.clear()
            self._uploading.clear()

    # -- the dataset as clients see it -------------------------------------------------

    def job(self, job_id: str) -> SimJob:
        try:
            return self.dataset.by_id[job_id]
        except KeyError:
            raise KeyError(f"no simulated job {job_id!r}") from None

    def done(self) -> set[str]:
        """The jobs that have ended with their assets uploaded."""
        return {job.id for job in self.dataset.jobs if self.state(job.id) == "done"}

    def files(self, job_id: str) -> tuple[SimFile, ...]:
        """Every file of the job (once done), in no particular order."""
        return tuple(asset.file for asset in self.dataset.assets[job_id].values())

    def record(self, job_id: str) -> JSONDict:
        """The job as its listing shows it right now (full records for virtual jobs)."""
        job = self.job(job_id)
        if job.cloud == REAL_DEVICES:
            return _rdc_entity(job, self.state(job_id), self.config.username)
        return self._vdc_record(job)

    def details(self, job_id: str) -> JSONDict:
        """``GET /v1/rdc/jobs/{id}`` or ``GET /rest/v1/{username}/jobs/{id}`` right now."""
        job = self.job(job_id)
        if job.cloud == REAL_DEVICES:
            return self._rdc_details(job)
        return self._vdc_record(job)

    def asset_list(self, job_id: str) -> JSONDict:
        """The documented asset list of a virtual job."""
        job = self.job(job_id)
        names = self.dataset.assets[job_id]
        listed: JSONDict = {}
        if "video.mp4" in names:
            listed.update({"video": "video.mp4", "video.mp4": "video.mp4"})
        if "log.json" in names:
            listed["sauce-log"] = "log.json"
        listed["selenium-log"] = "selenium-server.log"
        if "network.har" in names:
            listed["network.har"] = "network.har"
        listed["screenshots"] = list(job.screenshots)
        return listed

    def signed_url(self, job_id: str, name: str) -> str:
        path = f"{FILES_PREFIX}{job_id}/{name}"
        return f"{self.files_url}{path}?sig={self._signature(path)}"

    # -- HTTP handlers ---------------------------------------------------------------------

    async def _rdc_list(self, request: web.Request) -> web.Response:
        offset = _int_query(request, "offset", 1, minimum=1)
        limit = _int_query(request, "limit", DEFAULT_RDC_LIMIT, minimum=1)
        jobs = self.dataset.of_cloud(REAL_DEVICES)
        chosen = jobs[offset - 1 : offset - 1 + limit]
        entities = [_rdc_entity(job, self.state(job.id), self.config.username) for job in chosen]
        metadata = {
            "offset": offset,
            "limit": limit,
            "searchTerm": None,
            "sortDirection": "DESCENDING",
            "moreAvailable": offset - 1 + len(chosen) < len(jobs),
        }
        return json_response({"entities": entities, "metaData": metadata})

    async def _rdc_job(self, request: web.Request) -> web.Response:
        job = self._job_of(request, REAL_DEVICES)
        return json_response(self._rdc_details(job))

    async def _rdc_asset(self, request: web.Request) -> web.StreamResponse:
        job = self._job_of(request, REAL_DEVICES)
        return await self._asset(request, job, request.match_info["name"])

    async def _vdc_list(self, request: web.Request) -> web.Response:
        self._check_user(request)
        limit = _int_query(request, "limit", DEFAULT_VDC_LIMIT, minimum=1)
        skip = _int_query(request, "skip", 0, minimum=0)
        earliest = _int_query(request, "from", 0, minimum=0)
        latest = _int_query(request, "to", 2**62, minimum=0)
        full = request.query.get("full", "").lower() == "true"
        matching = [
            job for job in self.dataset.of_cloud(VIRTUAL) if earliest <= job.start <= latest
        ]
        chosen = matching[skip : skip + limit]
        return json_response([self._vdc_record(job) if full else {"id": job.id} for job in chosen])

    async def _vdc_job(self, request: web.Request) -> web.Response:
        self._check_user(request)
        return json_response(self._vdc_record(self._job_of(request, VIRTUAL)))

    async def _vdc_assets(self, request: web.Request) -> web.Response:
        self._check_user(request)
        job = self._job_of(request, VIRTUAL)
        if self.state(job.id) != "done":
            return _error(404, "Not found")
        return json_response(self.asset_list(job.id))

    async def _vdc_asset(self, request: web.Request) -> web.StreamResponse:
        self._check_user(request)
        job = self._job_of(request, VIRTUAL)
        return await self._asset(request, job, request.match_info["name"])

    async def _asset(self, request: web.Request, job: SimJob, name: str) -> web.StreamResponse:
        asset = self.dataset.assets[job.id].get(name)
        if asset is None or self.state(job.id) != "done":
            return _error(404, "Not found")
        if asset.redirected:
            raise web.HTTPFound(self.signed_url(job.id, name))
        return await send_file(request, asset.file)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        job = self.dataset.by_id.get(request.match_info["job_id"])
        asset = self.dataset.assets[job.id].get(request.match_info["name"]) if job else None
        if job is None or asset is None or not asset.redirected:
            return s3_error(404, "NoSuchKey")
        if "Authorization" in request.headers:
            return s3_error(400, "InvalidArgument")  # only one auth mechanism allowed
        if not hmac.compare_digest(request.query.get("sig", ""), self._signature(request.path)):
            return s3_error(403, "AccessDenied")
        if self.state(job.id) != "done":
            return s3_error(404, "NoSuchKey")
        return await send_file(request, asset.file)

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Basic auth and the periodic 429 before the handler; 400 for bad parameters."""
        if request.path.startswith("/_sim/"):
            return await handler(request)
        if not self._authorized(request.headers.get("Authorization", "")):
            response = _error(401, "Not authorized")
            response.headers["WWW-Authenticate"] = 'Basic realm="Sauce Labs"'
            return response
        with self._lock:
            self._count += 1
            count = self._count
        every = self.config.rate_limit_every
        if every and count % every == 0:
            response = _error(429, "Too many requests")
            response.headers["Retry-After"] = str(self.config.retry_after)
            return response
        try:
            return await handler(request)
        except _BadRequest as refused:
            return _error(400, str(refused))

    # -- internals -----------------------------------------------------------------------

    def _job_of(self, request: web.Request, cloud: str) -> SimJob:
        job = self.dataset.by_id.get(request.match_info["job_id"])
        if job is None or job.cloud != cloud:
            raise web.HTTPNotFound(
                text=json.dumps({"message": "Not found"}), content_type="application/json"
            )
        return job

    def _check_user(self, request: web.Request) -> None:
        if request.match_info["username"] != self.config.username:
            raise web.HTTPNotFound(
                text=json.dumps({"message": "User not found"}), content_type="application/json"
            )

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = f"{self.config.username}:{self.config.access_key}".encode()
        return hmac.compare_digest(decoded, expected)

    def _signature(self, path: str) -> str:
        return hmac.new(self._key, path.encode(), hashlib.sha256).hexdigest()[:32]

    def _rdc_details(self, job: SimJob) -> JSONDict:
        state = self.state(job.id)
        names = self.dataset.assets[job.id] if state == "done" else {}
        base = f"{self.api_url}{RDC_JOBS}/{job.id}"

        def url(name: str) -> str | None:
            return f"{base}/{name}" if name in names else None

        return {
            **_rdc_entity(job, state, self.config.username),
            "application_summary": None,
            "base_config": {},
            "build": None,
            "collects_automator_log": False,
            "device_descriptor": {
                "id": job.device.replace(" ", "_") + "_real",
                "name": job.device,
                "os": job.platform.upper(),
                "osVersion": job.os_version,
            },
            "error": None,
            "video_url": url("video.mp4"),
            "device_log_url": url("deviceLogs"),
            "framework_log_url": url("appiumLogs"),
            "requests_url": None,
            "network_log_url": url("network.har"),
            "crash_log_url": None,
            "testfairy_log_url": None,
            "junit_log_url": None,
            "test_cases_url": None,
            "manual": False,
            "modification_time": (job.end if state != "running" else job.start) * 1000,
            "passed": job.passed if state != "running" else None,
            "proxied": False,
            "record_screenshots": job.record_screenshots,
            "screenshots": list(job.screenshots) if state == "done" else [],
            "record_video": job.record_video,
            "tags": [],
            "remote_app_file_url": None,
            "appium_session_id": job.id[:8] if job.automation_backend == "APPIUM" else None,
            "device_session_id": None,
        }

    def _vdc_record(self, job: SimJob) -> JSONDict:
        running = self.state(job.id) == "running"
        capabilities: JSONDict = {
            "username": self.config.username,
            "accesskey": "******",
            "name": job.name,
            "platform": job.platform,
            "browserName": job.device,
            "version": job.os_version,
        }
        if not job.record_video:
            capabilities["recordVideo"] = False
        if not job.record_screenshots:
            capabilities["recordScreenshots"] = False
        if not job.record_logs:
            capabilities["recordLogs"] = False
        if job.network_capture:
            capabilities["extendedDebugging"] = True
        files = f"{self.files_url}{FILES_PREFIX}{job.id}"
        return {
            "id": job.id,
            "owner": self.config.username,
            "name": job.name,
            "status": "in progress" if running else "complete",
            "consolidated_status": "in progress" if running else _verdict(job),
            "passed": None if running else job.passed,
            "error": None,
            "creation_time": job.start - 1,
            "start_time": job.start,
            "end_time": None if running else job.end,
            "modification_time": job.start if running else job.end,
            "os": job.platform,
            "browser": job.device,
            "browser_version": job.os_version,
            "browser_short_version": job.os_version.split(".")[0],
            "automation_backend": job.automation_backend,
            "base_config": capabilities,
            "record_video": job.record_video,
            "record_screenshots": job.record_screenshots,
            "video_url": f"{files}/video.mp4" if job.record_video else None,
            "log_url": f"{files}/selenium-server.log",
            "build": None,
            "tags": [],
            "custom-data": None,
            "public": "team",
            "proxied": False,
            "manual": False,
            "breakpointed": None,
            "commands_not_successful": 0 if job.passed else 1,
            "assigned_tunnel_id": None,
            "deletion_time": None,
        }


def _rdc_entity(job: SimJob, state: JobState, owner: str) -> JSONDict:
    """A real-device job as the documented listing lays it out."""
    running = state == "running"
    return {
        "assigned_tunnel_id": None,
        "device_type": "real_device",
        "owner_sauce": owner,
        "consolidated_status": "in progress" if running else _verdict(job),
        "end_time": None if running else job.end * 1000,
        "id": job.id,
        "name": job.name,
        "os": job.platform,
        "os_version": job.os_version,
        "device_name": job.device,
        "start_time": job.start * 1000,
        "status": "in progress" if running else _verdict(job),
        "creation_time": job.start * 1000,
        "automation_backend": job.automation_backend,
        "automated": True,
    }


def _verdict(job: SimJob) -> str:
    return "passed" if job.passed else "failed"


# -- HTTP helpers --------------------------------------------------------------------------


def _int_query(request: web.Request, name: str, default: int, *, minimum: int) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise _BadRequest(f"{name} must be an integer") from None
    if value < minimum:
        raise _BadRequest(f"{name} must be {minimum} or more")
    return value


def _error(status: int, message: str) -> web.Response:
    return json_response({"message": message}, status=status)
