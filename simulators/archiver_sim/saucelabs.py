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

The jobs and their files are :mod:`archiver_sim.saucelabs_data` (:class:`SauceLabsData`,
built once from :class:`SauceLabsSimConfig`); the handlers only read it, and the only state
they share is which jobs are not done yet.
Every ``rate_limit_every``-th authenticated API request answers 429 with ``Retry-After``.
Routes under ``/_sim/`` are test helpers, not part of the vendor API.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

from aiohttp import web
from aiohttp.typedefs import Handler

from archiver_sim.base import FinishControl, RequestCounter, SimulatorBase, newest_start
from archiver_sim.http import (
    BadQuery,
    basic_auth_matches,
    int_query,
    json_response,
    s3_error,
    send_file,
)
from archiver_sim.perfecto_data import SimFile
from archiver_sim.saucelabs_data import (
    CLOUDS,
    REAL_DEVICES,
    VIRTUAL,
    JobState,
    JSONDict,
    SauceLabsData,
    SauceLabsDataset,
    SauceLabsSimConfig,
    SimAsset,
    SimJob,
)

__all__ = [
    "CLOUDS",
    "REAL_DEVICES",
    "VIRTUAL",
    "SauceLabsDataset",
    "SauceLabsSimConfig",
    "SauceLabsSimulator",
    "SimAsset",
    "SimJob",
]

RDC_JOBS = "/v1/rdc/jobs"
VDC_JOBS = "/rest/v1/{username}/jobs"
FILES_PREFIX = "/jobs/"
DEFAULT_RDC_LIMIT = 25
DEFAULT_VDC_LIMIT = 100


class SauceLabsSimulator(FinishControl[str], SimulatorBase):
    """Both origins' applications over a :class:`SauceLabsData` (control methods
    thread-safe)."""

    data: SauceLabsData

    def __init__(self, config: SauceLabsSimConfig | None = None) -> None:
        self.config = config = config or SauceLabsSimConfig()
        super().__init__(config.request_log_limit)
        newest = newest_start(config.newest_start, timedelta(hours=1))
        self.data = SauceLabsData(config, int(newest.timestamp()))
        self._key = f"saucelabs-sim-{config.seed}".encode()
        self._requests = RequestCounter()

    # -- runner protocol ---------------------------------------------------------------

    def applications(self) -> dict[str, web.Application]:
        api = self.api_application(self._gate)
        api.router.add_get(RDC_JOBS, self._rdc_list)
        api.router.add_get(RDC_JOBS + "/{job_id}", self._rdc_job)
        api.router.add_get(RDC_JOBS + "/{job_id}/{name}", self._rdc_asset)
        vdc = VDC_JOBS.format(username="{username}")
        api.router.add_get(vdc, self._vdc_list)
        api.router.add_get(vdc + "/{job_id}", self._vdc_job)
        api.router.add_get(vdc + "/{job_id}/assets", self._vdc_assets)
        api.router.add_get(vdc + "/{job_id}/assets/{name}", self._vdc_asset)
        files = web.Application(middlewares=[self.request_log.recorder("files")])
        files.router.add_get(FILES_PREFIX + "{job_id}/{name}", self._file)
        return {"api": api, "files": files}

    @property
    def vdc_jobs_path(self) -> str:
        return VDC_JOBS.format(username=self.config.username)

    # -- control (thread-safe) -----------------------------------------------------------
    # A job that is not done is "unfinished" (FinishControl's word); one that has not even
    # ended is also in ``data.running``, so ending it ends both.

    def state(self, job_id: str) -> JobState:
        return self.data.state(job_id)

    def finish(self, job_id: str) -> None:
        """End a running job and upload its assets."""
        super().finish(job_id)
        self.data.running.discard(job_id)

    def set_unfinished(self, job_id: str) -> None:
        """The job runs again: no end time, no assets, until finished."""
        self.data.session(job_id)
        self.data.running.add(job_id)
        super().set_unfinished(job_id)

    def finish_all(self) -> list[str]:
        finished = super().finish_all()
        self.data.running.clear()
        return finished

    # -- the dataset as clients see it -------------------------------------------------

    @property
    def dataset(self) -> SauceLabsDataset:
        return self.data.dataset

    def job(self, job_id: str) -> SimJob:
        return self.data.session(job_id)

    def done(self) -> set[str]:
        """The jobs that have ended with their assets uploaded."""
        return {job.id for job in self.dataset.jobs if self.state(job.id) == "done"}

    def files(self, job_id: str) -> tuple[SimFile, ...]:
        """Every file of the job (once done), in no particular order."""
        return self.data.files(job_id)

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
        return self.data.asset_list(job_id)

    def signed_url(self, job_id: str, name: str) -> str:
        path = f"{FILES_PREFIX}{job_id}/{name}"
        return f"{self.files_url}{path}?sig={self._signature(path)}"

    # -- HTTP handlers ---------------------------------------------------------------------

    async def _rdc_list(self, request: web.Request) -> web.Response:
        offset = int_query(request, "offset", 1, minimum=1)
        limit = int_query(request, "limit", DEFAULT_RDC_LIMIT, minimum=1)
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
        limit = int_query(request, "limit", DEFAULT_VDC_LIMIT, minimum=1)
        skip = int_query(request, "skip", 0, minimum=0)
        earliest = int_query(request, "from", 0, minimum=0)
        latest = int_query(request, "to", 2**62, minimum=0)
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
        header = request.headers.get("Authorization", "")
        if not basic_auth_matches(header, self.config.username, self.config.access_key):
            response = _error(401, "Not authorized")
            response.headers["WWW-Authenticate"] = 'Basic realm="Sauce Labs"'
            return response
        if RequestCounter.hits(self._requests.next(), self.config.rate_limit_every):
            response = _error(429, "Too many requests")
            response.headers["Retry-After"] = str(self.config.retry_after)
            return response
        try:
            return await handler(request)
        except BadQuery as refused:
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


def _error(status: int, message: str) -> web.Response:
    return json_response({"message": message}, status=status)
