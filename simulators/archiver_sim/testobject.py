"""A TestObject (legacy Sauce Labs RDC) simulator, for ``archiver demo`` and the tests.

Two origins. The **API origin** answers, with HTTP basic auth (user name and API key):

* ``GET /rest/v1/users/{userId}/session/reports`` with ``offset`` (default 1, **1-based**:
  offset 1 is the newest entity), ``limit`` (default 50) and ``lastDays`` (default 30: only
  sessions whose ``startDateTime`` lies within the last N days; the reports cover "the last
  30 days", so the simulator answers 400 to more). The answer is
  ``{"entities": [...], "metaData": {offset, limit, searchTerm: null, sortDirection:
  "DESCENDING", count}}``, newest first; ``count`` is the number of matching sessions, or,
  with ``more_available_instead_of_count``, ``moreAvailable`` (bool) takes its place as in
  some real responses. Only the configured user exists: another ``userId`` is 403.
* ``GET /v2/reports/{testReportId}``: one legacy test report, ``{id, sessionId, status,
  video: {id, url}, screenshots: [{id, url}], logs: {appium?, device, vitals}}`` (the
  ``appium`` log only for APPIUM sessions). Unknown ids are 404.

The **files origin** serves what those URLs point to (``/v2/video/{videoId}.mp4``,
``/v2/screenshots/{reportId}/{id}.png``, ``/v2/logs/{reportId}/{appium|device|vitals}``),
with a Content-Length. It stands in for another host handing out signed URLs: it takes
**no** credentials, and checks a ``sig`` query parameter instead (missing or wrong: 403).
Videos and screenshots are deterministic bytes (:mod:`archiver_sim.content`); logs are
deterministic text, and every Appium log echoes the desired capabilities with
``"testobject_api_key": "<the configured api_key>"``, as real Appium logs did, so a client's
"never log secrets" rule can be tested.

``startDateTime``/``endDateTime`` are Java ``LocalDateTime`` objects as Jackson writes them,
with no time zone: the simulator generates them in UTC. The newest ``unfinished`` sessions
are still running: they have ``endDateTime: null`` and ``durationInSeconds: 0`` (their
reports say ``RUNNING``, with no video yet, and their videos are 404) until :meth:`finish`
or :meth:`finish_all`.

Everything derives from :class:`TestObjectSimConfig`; the dataset is built once, newest
first, so a page costs O(limit) whatever the number of sessions. Every
``rate_limit_every``-th authenticated API request answers 429 with ``Retry-After``. Routes
under ``/_sim/`` are test helpers, not part of the vendor API.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from archiver_sim.base import FinishControl, RequestCounter, SimulatorBase
from archiver_sim.http import BadQuery, basic_auth_matches, int_query, json_response, send_file
from archiver_sim.perfecto_data import SimFile
from archiver_sim.testobject_data import (
    JSONDict,
    TestObjectData,
    TestObjectSession,
    TestObjectSimConfig,
    TestObjectTestReport,
    TextFile,
)

__all__ = ["TestObjectSimConfig", "TestObjectSimulator", "TextFile"]

LIST_PATH = "/rest/v1/users/{user_id}/session/reports"
REPORT_PREFIX = "/v2/reports/"
VIDEO_PREFIX = "/v2/video/"
SCREENSHOT_PREFIX = "/v2/screenshots/"
LOG_PREFIX = "/v2/logs/"
DEFAULT_OFFSET = 1
DEFAULT_LIMIT = 50
DEFAULT_LAST_DAYS = 30
MAX_LAST_DAYS = 30  # "information about user sessions since the last 30 days"


class TestObjectSimulator(FinishControl[str], SimulatorBase):
    """Both origins' applications over a :class:`TestObjectData` (control methods
    thread-safe)."""

    __test__ = False  # not a pytest test class, whatever its name says
    data: TestObjectData

    def __init__(self, config: TestObjectSimConfig | None = None) -> None:
        self.config = config = config or TestObjectSimConfig()
        super().__init__(config.request_log_limit)
        newest = _naive_utc(config.newest_start) if config.newest_start else None
        newest = newest or _utcnow().replace(microsecond=0) - timedelta(hours=1)
        self.data = TestObjectData(config, newest)
        self.reports: tuple[TestObjectSession, ...] = self.data.sessions
        self._key = f"testobject-sim-{config.seed}".encode()
        self._requests = RequestCounter()

    # -- runner protocol ---------------------------------------------------------------

    def applications(self) -> dict[str, web.Application]:
        api = self.api_application(self._gate)
        api.router.add_get(LIST_PATH.format(user_id="{user_id}"), self._list)
        api.router.add_get(REPORT_PREFIX + "{report_id}", self._report)
        files = web.Application(middlewares=[self.request_log.recorder("files")])
        files.router.add_get("/v2/{tail:.+}", self._file)
        return {"api": api, "files": files}

    @property
    def list_path(self) -> str:
        """The session reports path of the configured user."""
        return LIST_PATH.format(user_id=self.config.username)

    # -- the dataset as clients see it -------------------------------------------------

    def session(self, session_id: str) -> TestObjectSession:
        return self.data.session(session_id)

    def entity(self, session_id: str) -> JSONDict:
        """The session as the listing shows it right now."""
        session = self.session(session_id)
        return _entity(session, self.config.username, self.is_unfinished(session_id))

    def test_report(self, test_report_id: int) -> TestObjectTestReport:
        return self.data.test_report(test_report_id)

    def report(self, test_report_id: int) -> JSONDict:
        """What ``GET /v2/reports/{id}`` returns right now (URLs need a bound simulator)."""
        report = self.test_report(test_report_id)
        running = self.is_unfinished(report.session_id)
        video = self.data.video_file(report)
        document: JSONDict = {
            "id": report.id,
            "sessionId": report.session_id,
            "status": "RUNNING" if running else report.status,
            "video": None if running else {"id": report.video_id, "url": self.url(video)},
            "screenshots": [
                {"id": shot_id, "url": self.url(self.data.screenshot_file(report, shot_id))}
                for shot_id in report.screenshot_ids
            ],
            "logs": {kind: self.url(self.data.log_file(report, kind)) for kind in report.log_kinds},
        }
        return document

    def files(self, session_id: str) -> tuple[SimFile, ...]:
        """Every file the session's test reports link to once it has finished."""
        return self.data.files(session_id)

    def file_path(self, file: SimFile) -> str:
        """The path (on the files origin) ``file`` is served at."""
        report_id = file.execution_id
        if file.kind == "video":
            return f"{VIDEO_PREFIX}{file.filename}"
        if file.kind == "screenshot":
            return f"{SCREENSHOT_PREFIX}{report_id}/{file.filename}"
        return f"{LOG_PREFIX}{report_id}/{file.filename}"

    def url(self, file: SimFile) -> str:
        """The signed URL of ``file`` on the files origin."""
        path = self.file_path(file)
        return f"{self.files_url}{path}?sig={self._signature(path)}"

    def served_file(self, url: str) -> SimFile | None:
        return self._file_at(urlsplit(url).path)

    # -- HTTP handlers ---------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.Response:
        if request.match_info["user_id"] != self.config.username:
            return _error(403, "Forbidden", "you may only read your own session reports")
        offset = int_query(request, "offset", DEFAULT_OFFSET, minimum=1)
        limit = int_query(request, "limit", DEFAULT_LIMIT, minimum=1)
        last_days = int_query(request, "lastDays", DEFAULT_LAST_DAYS, minimum=1)
        if last_days > MAX_LAST_DAYS:
            raise BadQuery(f"lastDays must be {MAX_LAST_DAYS} or less")
        cutoff = _utcnow() - timedelta(days=last_days)
        total = self.data.started_since(cutoff)
        start = min(offset - 1, total)
        chosen = self.reports[start : min(total, start + limit)]
        running = self.data.unfinished.snapshot()
        metadata: JSONDict = {
            "offset": offset,
            "limit": limit,
            "searchTerm": None,
            "sortDirection": "DESCENDING",
        }
        if self.config.more_available_instead_of_count:
            metadata["moreAvailable"] = start + len(chosen) < total
        else:
            metadata["count"] = total
        entities = [_entity(s, self.config.username, s.id in running) for s in chosen]
        return json_response({"entities": entities, "metaData": metadata})

    async def _report(self, request: web.Request) -> web.Response:
        text = request.match_info["report_id"]
        report = self.data.find_test_report(int(text)) if text.isdigit() else None
        if report is None:
            return _error(404, "Not Found", f"test report {text} was not found")
        return json_response(self.report(report.id))

    async def _file(self, request: web.Request) -> web.StreamResponse:
        file = self._file_at(request.path)
        if file is None:
            return _error(404, "Not Found", "no such file")
        signature = request.query.get("sig", "")
        if not hmac.compare_digest(signature, self._signature(request.path)):
            return _error(403, "Forbidden", "missing or invalid signature")
        report = self.data.test_report(int(file.execution_id))
        if file.kind == "video" and self.is_unfinished(report.session_id):
            return _error(404, "Not Found", "the video is not available yet")
        return await send_file(request, file)

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Basic auth and the periodic 429 before the handler; 400 for bad parameters."""
        if request.path.startswith("/_sim/"):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        if not basic_auth_matches(header, self.config.username, self.config.api_key):
            response = _error(401, "Unauthorized", "missing or invalid credentials")
            response.headers["WWW-Authenticate"] = 'Basic realm="TestObject"'
            return response
        if RequestCounter.hits(self._requests.next(), self.config.rate_limit_every):
            response = _error(429, "Too Many Requests", "rate limit exceeded")
            response.headers["Retry-After"] = str(self.config.retry_after)
            return response
        try:
            return await handler(request)
        except BadQuery as refused:
            return _error(400, "Bad Request", str(refused))
        except web.HTTPException as exc:
            return _error(exc.status, exc.reason, exc.reason)

    # -- internals -----------------------------------------------------------------------

    def _signature(self, path: str) -> str:
        return hmac.new(self._key, path.encode(), hashlib.sha256).hexdigest()[:32]

    def _file_at(self, path: str) -> SimFile | None:
        """The file served at ``path`` on the files origin, if any."""
        if path.startswith(VIDEO_PREFIX):
            name = path[len(VIDEO_PREFIX) :]
            number = name.removesuffix(".mp4")
            if not name.endswith(".mp4") or not number.isdigit():
                return None
            report = self.data.with_video(int(number))
            return None if report is None else self.data.video_file(report)
        for prefix in (SCREENSHOT_PREFIX, LOG_PREFIX):
            if not path.startswith(prefix):
                continue
            report_text, _, name = path[len(prefix) :].partition("/")
            found = self.data.find_test_report(int(report_text)) if report_text.isdigit() else None
            if found is None:
                return None
            if prefix == LOG_PREFIX:
                return self.data.log_file(found, name) if name in found.log_kinds else None
            number = name.removesuffix(".png")
            if name.endswith(".png") and number.isdigit() and int(number) in found.screenshot_ids:
                return self.data.screenshot_file(found, int(number))
            return None
        return None


MONTHS = ("JANUARY", "FEBRUARY", "MARCH", "APRIL", "MAY", "JUNE", "JULY", "AUGUST",
          "SEPTEMBER", "OCTOBER", "NOVEMBER", "DECEMBER")  # fmt: skip
DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")


def _entity(session: TestObjectSession, user_id: str, running: bool) -> JSONDict:
    """The session report exactly as the documented sample lays it out."""
    return {
        "id": session.id,
        "projectId": session.project_id,
        "userId": user_id,
        "deviceDescriptorId": session.device,
        "usage": session.usage,
        "appId": session.app_id,
        "frameworkAppId": session.framework_app_id,
        "testFrameworkType": session.framework_type,
        "testFrameworkVersion": session.framework_version,
        "testReportIds": list(session.report_ids),
        "testIds": list(session.test_ids),
        "batchId": session.batch_id,
        "startDateTime": local_date_time(session.start),
        "endDateTime": None if running else local_date_time(session.end),
        "durationInSeconds": 0 if running else session.duration_s,
    }


def local_date_time(moment: datetime) -> JSONDict:
    """A Java ``LocalDateTime`` as Jackson serialises it (no time zone), in the sample's order."""
    return {
        "second": moment.second,
        "hour": moment.hour,
        "minute": moment.minute,
        "nano": moment.microsecond * 1000,
        "dayOfYear": moment.timetuple().tm_yday,
        "dayOfWeek": DAYS[moment.weekday()],
        "month": MONTHS[moment.month - 1],
        "dayOfMonth": moment.day,
        "year": moment.year,
        "monthValue": moment.month,
        "chronology": {"calendarType": "iso8601", "id": "ISO"},
    }


# -- HTTP helpers --------------------------------------------------------------------------


def _error(status: int, error: str, message: str) -> web.Response:
    return json_response({"status": status, "error": error, "message": message}, status=status)


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
