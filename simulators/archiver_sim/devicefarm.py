"""An AWS Device Farm simulator (projects, runs and their artifacts), for ``archiver demo``
and the tests.

It follows botocore's service model of Device Farm (``botocore/data/devicefarm/2015-06-23``:
``service-2.json`` for the shapes, ``paginators-1.json`` for ``nextToken``) and AWS's pages
"AWS Device Farm API Reference" (ListProjects, ListRuns, GetRun, ListJobs, ListSuites,
ListTests, ListArtifacts, Common Errors) and "Downloading artifacts in Device Farm" (the
project → run → job → suite → test hierarchy; files, logs and screenshots per test).

Two origins:

* ``api`` speaks the AWS JSON 1.1 protocol, so boto3's ``devicefarm`` client with
  ``endpoint_url`` talks to it unchanged: ``POST /`` with ``X-Amz-Target:
  DeviceFarm_20150623.<Operation>``, ``Content-Type: application/x-amz-json-1.1``, a SigV4
  ``Authorization`` header whose credential scope must name the simulator's access key, a
  region and the ``devicefarm`` service (the signature itself is not recomputed). Times are
  epoch seconds. Errors are HTTP 400 ``{"__type": ..., "message": ...}``
  (``ArgumentException``, ``NotFoundException``, ``ThrottlingException``,
  ``UnrecognizedClientException``...) or 5xx. Listings page ``page_size`` items at a time
  behind an opaque ``nextToken``.
* ``files`` serves each artifact behind a pre-signed S3-style URL (``X-Amz-Algorithm``,
  ``X-Amz-Credential`` of the service's own key, ``X-Amz-Date``, ``X-Amz-Expires``,
  ``X-Amz-Signature``): 403 ``AccessDenied`` "Request has expired" once the URL has
  expired, 403 ``SignatureDoesNotMatch`` for a URL it did not issue.

The dataset is :mod:`archiver_sim.devicefarm_data` (:class:`DeviceFarmData`, built from
:class:`DeviceFarmSimConfig`), apart from the request handlers (:class:`DeviceFarmSimulator`).
Runs are listed newest first; the newest ``unfinished`` runs are ``RUNNING`` until
:meth:`DeviceFarmSimulator.finish` or :meth:`DeviceFarmSimulator.finish_all`.
Every ``video_disabled_every``-th job ran with video capture off (``videoCapture: false``)
and has no ``VIDEO`` artifact. URL expiry is under the tests' control: ``url_lifetime_s``,
``expired_issues`` (the first URLs issued for each artifact are expired already) and
:meth:`DeviceFarmSimulator.expire_urls`. Throttling: ``throttle_every`` (every n-th API
request answers 400 ``ThrottlingException``) and :meth:`DeviceFarmSimulator.fail_next`.
Routes under ``/_sim/`` are test helpers, not part of the vendor API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from aiohttp import web

from archiver_sim.base import FinishControl, RequestCounter, SimulatorBase
from archiver_sim.devicefarm_data import (
    CATEGORIES,
    FILES_PREFIX,
    DeviceFarmData,
    DeviceFarmDataset,
    DeviceFarmSimConfig,
    SimArtifact,
    SimJob,
    SimProject,
    SimRun,
    SimSuite,
    SimTest,
    artifacts_under,
)
from archiver_sim.http import s3_error, send_file

__all__ = [
    "CATEGORIES",
    "DeviceFarmDataset",
    "DeviceFarmSimConfig",
    "DeviceFarmSimulator",
    "SimArtifact",
    "SimJob",
    "SimProject",
    "SimRun",
    "SimSuite",
    "SimTest",
]

TARGET_PREFIX = "DeviceFarm_20150623."
JSON_TYPE = "application/x-amz-json-1.1"
# The key the artifact host's URLs are signed with: Device Farm's, never the caller's.
SERVICE_KEY_ID = "AKIADEVICEFARMSERVICE"

JSONDict = dict[str, Any]
ItemT = TypeVar("ItemT")


# -- records: the shapes of botocore's service model -----------------------------------


def _counters(total: int, *, done: bool) -> JSONDict:
    passed = total if done else 0
    return {
        "total": total,
        "passed": passed,
        "failed": 0,
        "warned": 0,
        "errored": 0,
        "stopped": 0,
        "skipped": 0,
    }


def _device(job: SimJob) -> JSONDict:
    name, maker, platform, os_version = job.device
    return {
        "arn": "arn:aws:devicefarm:us-west-2::device:"
        + hashlib.sha256(name.encode()).hexdigest()[:32].upper(),
        "name": name,
        "manufacturer": maker,
        "model": name.split(" ", 1)[1],
        "formFactor": "PHONE",
        "platform": platform,
        "os": os_version,
        "resolution": {"width": 1080, "height": 2400},
        "fleetType": "PUBLIC",
        "availability": "HIGHLY_AVAILABLE",
    }


def _execution(arn: str, name: str, created: int, *, done: bool, total: int) -> JSONDict:
    record: JSONDict = {
        "arn": arn,
        "name": name,
        "type": "APPIUM_PYTHON",
        "created": created,
        "status": "COMPLETED" if done else "RUNNING",
        "result": "PASSED" if done else "PENDING",
        "started": created + 30,
        "counters": _counters(total, done=done),
        "message": "",
        "deviceMinutes": {"total": 4.5, "metered": 4.5, "unmetered": 0.0},
    }
    if done:
        record["stopped"] = created + 300
    return record


# -- the API and the files origin -------------------------------------------------------


class _Refused(Exception):
    """Answer ``status`` with an AWS JSON error of ``kind``."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


@dataclass(slots=True)
class _Issued:
    artifact: SimArtifact
    expires_at: float
    serial: int


@dataclass(slots=True)
class _Control:
    """The pre-signed URLs issued, and the failures the tests asked for."""

    failures: list[int] = field(default_factory=list)  # statuses of the next API answers
    issued: dict[str, _Issued] = field(default_factory=dict)
    issues_by_artifact: dict[str, int] = field(default_factory=dict)
    serial: int = 0
    expired_below: int = 0


class DeviceFarmSimulator(FinishControl[str], SimulatorBase):
    """Both origins over a :class:`DeviceFarmData`, and the pre-signed URLs issued (control
    methods thread-safe).

    The API origin takes no ``api_application`` middleware: AWS JSON 1.1 names the
    operation in a header and answers every refusal, the signature's too, with an
    ``__type`` body, so one handler reads the request and maps each refusal.
    """

    data: DeviceFarmData

    def __init__(self, config: DeviceFarmSimConfig | None = None) -> None:
        self.config = config = config or DeviceFarmSimConfig()
        super().__init__(config.request_log_limit)
        newest = (
            int(time.time()) - 30 * 60
            if config.newest_created_s is None
            else config.newest_created_s
        )
        self.data = DeviceFarmData(config, newest)
        self._control = _Control()
        self._lock = threading.Lock()  # the URLs issued and the failures asked for
        self._requests = RequestCounter()
        self._operations = {
            "ListProjects": self._list_projects,
            "ListRuns": self._list_runs,
            "GetRun": self._get_run,
            "ListJobs": self._list_jobs,
            "ListSuites": self._list_suites,
            "ListTests": self._list_tests,
            "ListArtifacts": self._list_artifacts,
        }

    # -- runner protocol ---------------------------------------------------------------

    def applications(self) -> dict[str, web.Application]:
        api = self.api_application()
        api.router.add_post("/", self._api)
        files = web.Application(middlewares=[self.request_log.recorder("files")])
        files.router.add_get(FILES_PREFIX + "/{path:.+}", self._file)
        return {"api": api, "files": files}

    # api_url is the endpoint boto3 is pointed at (a real one:
    # https://devicefarm.us-west-2.amazonaws.com); files_url the artifact host (a real one
    # is an S3 bucket's).

    # -- control (thread-safe) -----------------------------------------------------------

    # is_unfinished, finish, set_unfinished and finish_all (which returns the ARNs of the
    # runs it completed) come from FinishControl, over the runs.

    def expire_urls(self) -> int:
        """Every pre-signed URL issued so far expires now; returns how many there were."""
        with self._lock:
            self._control.expired_below = self._control.serial + 1
            return len(self._control.issued)

    def fail_next(self, count: int, status: int = 400) -> None:
        """The next ``count`` API requests answer ``status``: 400 ThrottlingException, 500
        InternalFailure or 503 ServiceUnavailable."""
        with self._lock:
            self._control.failures.extend([status] * count)

    def urls_issued(self, artifact_arn: str) -> int:
        with self._lock:
            return self._control.issues_by_artifact.get(artifact_arn, 0)

    # -- the dataset as clients see it -------------------------------------------------

    def runs_of(self, project_arn: str) -> list[SimRun]:
        return self.data.runs_of(project_arn)

    def complete_runs(self) -> list[SimRun]:
        return [run for run in self.data.runs if not self.is_unfinished(run.arn)]

    def project_record(self, project: SimProject) -> JSONDict:
        return {
            "arn": project.arn,
            "name": project.name,
            "defaultJobTimeoutMinutes": 150,
            "created": project.created,
        }

    def run_record(self, run: SimRun) -> JSONDict:
        done = not self.is_unfinished(run.arn)
        record = _execution(
            run.arn, run.name, run.created, done=done, total=len(run.jobs) * self._tests_per_job
        )
        record.update(
            {
                "platform": run.platform,
                "totalJobs": len(run.jobs),
                "completedJobs": len(run.jobs) if done else 0,
                "billingMethod": "METERED",
                "networkProfile": {"name": "Full", "type": "CURATED"},
                "appUpload": run.project_arn.replace(":project:", ":upload:") + "/app",
                "jobTimeoutMinutes": 150,
                "devicePoolArn": run.project_arn.replace(":project:", ":devicepool:") + "/top",
                "locale": "en_US",
                "radios": {"wifi": True, "bluetooth": False, "nfc": True, "gps": True},
                "skipAppResign": False,
                "webUrl": "https://us-west-2.console.aws.amazon.com/devicefarm/home#/projects/"
                + run.arn.rsplit(":", 1)[1],
            }
        )
        return record

    @property
    def _tests_per_job(self) -> int:
        return self.config.tests_per_job + 2  # with the setup and teardown tests

    def job_record(self, run: SimRun, job: SimJob) -> JSONDict:
        done = not self.is_unfinished(run.arn)
        record = _execution(
            job.arn, job.device[0], run.created + 5, done=done, total=self._tests_per_job
        )
        record.update({"device": _device(job), "videoCapture": job.video_capture})
        return record

    def suite_record(self, run: SimRun, suite: SimSuite) -> JSONDict:
        done = not self.is_unfinished(run.arn)
        return _execution(
            suite.arn, suite.name, run.created + 10, done=done, total=len(suite.tests)
        )

    def test_record(self, run: SimRun, test: SimTest) -> JSONDict:
        done = not self.is_unfinished(run.arn)
        return _execution(test.arn, test.name, run.created + 15, done=done, total=1)

    def artifact_record(self, artifact: SimArtifact) -> JSONDict:
        return {
            "arn": artifact.arn,
            "name": artifact.name,
            "type": artifact.type,
            "extension": artifact.extension,
            "url": self._presign(artifact),
        }

    # -- HTTP handlers: the API ------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        try:
            operation = self._operation(request)
            self._check_signature(request)
            self._maybe_fail()
            try:
                body = json.loads(await request.read() or b"{}")
            except ValueError:
                raise _Refused(400, "SerializationException", "body is not JSON") from None
            if not isinstance(body, dict):
                raise _Refused(400, "SerializationException", "body is not a JSON object")
            result = self._operations[operation](body)
        except _Refused as refused:
            return _aws_error(refused)
        return web.Response(body=json.dumps(result).encode(), content_type=JSON_TYPE)

    def _operation(self, request: web.Request) -> str:
        target = request.headers.get("X-Amz-Target", "")
        if not target.startswith(TARGET_PREFIX):
            raise _Refused(400, "UnknownOperationException", "no DeviceFarm X-Amz-Target")
        name = target.removeprefix(TARGET_PREFIX)
        if name not in self._operations:
            raise _Refused(400, "UnknownOperationException", f"{name} is not simulated")
        if request.content_type != JSON_TYPE:
            raise _Refused(400, "SerializationException", f"expected {JSON_TYPE}")
        return name

    def _check_signature(self, request: web.Request) -> None:
        authorization = request.headers.get("Authorization", "")
        scheme, _, rest = authorization.partition(" ")
        parts = dict(item.strip().split("=", 1) for item in rest.split(",") if "=" in item)
        scope = parts.get("Credential", "").split("/")
        if scheme != "AWS4-HMAC-SHA256" or len(scope) != 5 or not parts.get("Signature"):
            raise _Refused(400, "MissingAuthenticationTokenException", "request is not signed")
        key_id, _date, region, service, terminal = scope
        if key_id != self.config.access_key_id:
            raise _Refused(
                400,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        if (region, service, terminal) != (self.config.region, "devicefarm", "aws4_request"):
            raise _Refused(400, "InvalidSignatureException", "credential scope does not match")
        if "X-Amz-Date" not in request.headers:
            raise _Refused(400, "IncompleteSignatureException", "X-Amz-Date is missing")

    def _maybe_fail(self) -> None:
        count = self._requests.next()
        with self._lock:
            failures = self._control.failures
            status = failures.pop(0) if failures else None
        if status is None and RequestCounter.hits(count, self.config.throttle_every):
            status = 400
        if status == 400:
            raise _Refused(400, "ThrottlingException", "Rate exceeded")
        if status == 503:
            raise _Refused(503, "ServiceUnavailableException", "Service unavailable")
        if status is not None:
            raise _Refused(status, "InternalFailure", "We encountered an internal error.")

    def _list_projects(self, body: JSONDict) -> JSONDict:
        projects = self.data.projects
        if "arn" in body:
            projects = tuple(p for p in projects if p.arn == body["arn"])
        return self._page("projects", projects, body, self.project_record)

    def _list_runs(self, body: JSONDict) -> JSONDict:
        project = self._find(body, SimProject)
        return self._page("runs", self.runs_of(project.arn), body, self.run_record)

    def _get_run(self, body: JSONDict) -> JSONDict:
        return {"run": self.run_record(self._find(body, SimRun))}

    def _list_jobs(self, body: JSONDict) -> JSONDict:
        run = self._find(body, SimRun)
        return self._page("jobs", run.jobs, body, lambda job: self.job_record(run, job))

    def _list_suites(self, body: JSONDict) -> JSONDict:
        job = self._find(body, SimJob)
        run = self._run_of(job.arn)
        return self._page("suites", job.suites, body, lambda s: self.suite_record(run, s))

    def _list_tests(self, body: JSONDict) -> JSONDict:
        suite = self._find(body, SimSuite)
        run = self._run_of(suite.arn)
        return self._page("tests", suite.tests, body, lambda t: self.test_record(run, t))

    def _list_artifacts(self, body: JSONDict) -> JSONDict:
        category = body.get("type")
        if category not in CATEGORIES:
            raise _Refused(400, "ArgumentException", "type must be one of SCREENSHOT, FILE, LOG")
        found = self._find(body, object)
        if isinstance(found, SimTest):
            artifacts = list(found.artifacts)
        elif isinstance(found, SimSuite | SimJob | SimRun):
            artifacts = list(artifacts_under(found))
        else:
            raise _Refused(400, "ArgumentException", "arn must be a run, job, suite or test ARN")
        chosen = [a for a in artifacts if a.category == category]
        return self._page("artifacts", chosen, body, self.artifact_record)

    def _find(self, body: JSONDict, kind: type) -> Any:
        arn = body.get("arn")
        if not isinstance(arn, str) or len(arn) < 32 or not arn.startswith("arn:aws:devicefarm:"):
            raise _Refused(400, "ArgumentException", "Invalid arn")
        found = self.data.by_arn.get(arn)
        if found is None or not isinstance(found, kind):
            raise _Refused(400, "NotFoundException", f"{arn} was not found")
        return found

    def _run_of(self, arn: str) -> SimRun:
        return self.data.run_of[arn]

    def _page(
        self, key: str, items: Sequence[ItemT], body: JSONDict, record: Callable[[ItemT], JSONDict]
    ) -> JSONDict:
        """One page of ``items`` under ``key``, with a ``nextToken`` while more follow. Only
        the page's items become records (an artifact's record issues a pre-signed URL)."""
        start = self._start(body, key, len(items))
        page = items[start : start + self.config.page_size]
        result: JSONDict = {key: [record(item) for item in page]}
        if start + len(page) < len(items):
            result["nextToken"] = _token(key, body, start + len(page))
        return result

    def _start(self, body: JSONDict, key: str, total: int) -> int:
        token = body.get("nextToken")
        if token is None:
            return 0
        try:
            decoded = json.loads(base64.urlsafe_b64decode(str(token).encode()))
            start = int(decoded["at"])
            valid = decoded["list"] == key and decoded["arn"] == body.get("arn") and start <= total
        except (ValueError, KeyError, TypeError):
            valid = False
        if not valid:
            raise _Refused(400, "ArgumentException", "Invalid nextToken")
        return start

    # -- HTTP handlers: the files origin ----------------------------------------------------

    def _presign(self, artifact: SimArtifact) -> str:
        now = time.time()
        with self._lock:
            control = self._control
            control.serial += 1
            issued_before = control.issues_by_artifact.get(artifact.arn, 0)
            control.issues_by_artifact[artifact.arn] = issued_before + 1
            born_expired = issued_before < self.config.expired_issues
            lifetime = self.config.url_lifetime_s
            signed_at = now - lifetime - 1 if born_expired else now
            query = {
                "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                "X-Amz-Credential": f"{SERVICE_KEY_ID}/{_day(signed_at)}/{self.config.region}"
                "/s3/aws4_request",
                "X-Amz-Date": _amz_date(signed_at),
                "X-Amz-Expires": str(lifetime),
                "X-Amz-SignedHeaders": "host",
                "x-id": str(control.serial),
            }
            signature = hmac.new(
                self.config.secret_access_key.encode(),
                f"{artifact.path}?{urlencode(query)}".encode(),
                hashlib.sha256,
            ).hexdigest()
            control.issued[signature] = _Issued(artifact, signed_at + lifetime, control.serial)
        query["X-Amz-Signature"] = signature
        return f"{self.files_url}{quote(artifact.path)}?{urlencode(query)}"

    async def _file(self, request: web.Request) -> web.StreamResponse:
        artifact = self.data.by_path.get(request.path)
        signature = request.query.get("X-Amz-Signature", "")
        with self._lock:
            issued = self._control.issued.get(signature)
            expired_below = self._control.expired_below
        if artifact is None or issued is None or issued.artifact is not artifact:
            return s3_error(403, "SignatureDoesNotMatch")
        if time.time() > issued.expires_at or issued.serial < expired_below:
            return s3_error(403, "AccessDenied")  # "Request has expired"
        return await send_file(request, artifact)


def _token(key: str, body: JSONDict, at: int) -> str:
    raw = json.dumps({"list": key, "arn": body.get("arn"), "at": at}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _aws_error(refused: _Refused) -> web.Response:
    body = {"__type": refused.kind, "message": refused.message}
    return web.Response(
        body=json.dumps(body).encode(),
        status=refused.status,
        content_type=JSON_TYPE,
        headers={"x-amzn-RequestId": str(uuid.uuid4()), "x-amzn-ErrorType": refused.kind},
    )


def _amz_date(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y%m%dT%H%M%SZ")


def _day(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y%m%d")
