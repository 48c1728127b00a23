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

import base64
import binascii
import functools
import hashlib
import hmac
import json
import random
import threading
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from archiver_sim.http import json_response, send_file
from archiver_sim.perfecto import SimFile
from archiver_sim.requestlog import RequestLog, RequestLogged

LIST_PATH = "/rest/v1/users/{user_id}/session/reports"
REPORT_PREFIX = "/v2/reports/"
VIDEO_PREFIX = "/v2/video/"
SCREENSHOT_PREFIX = "/v2/screenshots/"
LOG_PREFIX = "/v2/logs/"
LOG_KINDS = ("appium", "device", "vitals")
USAGES = ("APPIUM", "ESPRESSO", "XCUITEST", "MANUAL")
DEFAULT_OFFSET = 1
DEFAULT_LIMIT = 50
DEFAULT_LAST_DAYS = 30
MAX_LAST_DAYS = 30  # "information about user sessions since the last 30 days"
KIB = 1024

JSONDict = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class TestObjectSimConfig:
    """The simulated account. Defaults suit a demo: two dozen sessions over 20 days.

    Sessions cycle through ``usages`` and ``project_ids``; they start over ``span`` up to
    ``newest_start`` (UTC; naive values are read as UTC; None: an hour before the simulator
    is built). ``api_key`` is the basic-auth password. APPIUM sessions have one test report,
    ESPRESSO and XCUITEST one to three (a batch), MANUAL none. Each report has a video,
    ``screenshots_per_report`` screenshots and its logs.
    """

    __test__ = False  # not a pytest test class, whatever its name says

    seed: int = 5
    sessions: int = 24
    span: timedelta = timedelta(days=20)
    newest_start: datetime | None = None
    username: str = "foobar"
    api_key: str = "testobject-sim-api-key"
    project_ids: tuple[str, ...] = ("calculator-0223", "shop-android")
    usages: tuple[str, ...] = ("APPIUM", "ESPRESSO", "APPIUM", "XCUITEST", "MANUAL")
    unfinished: int = 0
    more_available_instead_of_count: bool = False
    screenshots_per_report: int = 2
    video_size: int = 96 * KIB
    screenshot_size: int = 12 * KIB
    log_size: int = 6 * KIB
    rate_limit_every: int = 0
    retry_after: int = 1
    request_log_limit: int = 50_000

    def __post_init__(self) -> None:
        counts = (
            self.sessions,
            self.unfinished,
            self.screenshots_per_report,
            self.video_size,
            self.screenshot_size,
            self.log_size,
            self.rate_limit_every,
            self.retry_after,
        )
        if min(counts) < 0:
            raise ValueError("sessions, counts, sizes, rate_limit_every, retry_after must be >= 0")
        if not self.project_ids or not all(self.project_ids):
            raise ValueError("project_ids must hold at least one non-empty id")
        if not self.usages or not set(self.usages) <= set(USAGES):
            raise ValueError(f"usages must be a non-empty sequence of {', '.join(USAGES)}")
        if not self.username or ":" in self.username or "/" in self.username:
            raise ValueError("username must be non-empty, without ':' or '/'")
        if self.span <= timedelta(0):
            raise ValueError("span must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class TestObjectSession:
    """One simulated session report; ``index`` is its position, newest first.

    ``start`` and ``end`` are naive UTC datetimes (whole seconds).
    """

    __test__ = False  # not a pytest test class, whatever its name says

    index: int
    id: str
    project_id: str
    device: str
    usage: str
    app_id: int
    framework_app_id: int
    framework_type: str | None
    framework_version: str | None
    report_ids: tuple[int, ...]
    test_ids: tuple[int, ...]
    batch_id: int
    start: datetime
    duration_s: int

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.duration_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class TestObjectTestReport:
    """One legacy test report of a session."""

    __test__ = False  # not a pytest test class, whatever its name says

    id: int
    session_id: str
    status: str
    video_id: int
    screenshot_ids: tuple[int, ...]
    log_kinds: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TextFile(SimFile):
    """A file whose body is the given text (logs), instead of generated bytes."""

    text: bytes

    def chunks(self, chunk_size: int = 256 * KIB) -> Iterator[bytes]:
        for start in range(0, len(self.text), chunk_size):
            yield self.text[start : start + chunk_size]

    def digest(self) -> str:
        return hashlib.sha256(self.text).hexdigest()


class _BadRequest(Exception):
    """A request the API answers with 400 and this message."""


class TestObjectSimulator(RequestLogged):
    """The dataset, the running sessions and both origins' applications (thread-safe)."""

    __test__ = False  # not a pytest test class, whatever its name says

    def __init__(self, config: TestObjectSimConfig | None = None) -> None:
        self.config = config = config or TestObjectSimConfig()
        newest = _naive_utc(config.newest_start) if config.newest_start else None
        newest = newest or _utcnow().replace(microsecond=0) - timedelta(hours=1)
        self.reports: tuple[TestObjectSession, ...] = _build_sessions(config, newest)
        self._by_id = {session.id: session for session in self.reports}
        self._starts_ascending = [session.start for session in reversed(self.reports)]
        self._test_reports: dict[int, TestObjectTestReport] = {}
        self._by_video: dict[int, TestObjectTestReport] = {}
        for session in self.reports:
            for report in _build_test_reports(config, session):
                self._test_reports[report.id] = report
                self._by_video[report.video_id] = report
        self._key = f"testobject-sim-{config.seed}".encode()
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()
        self._unfinished = {session.id for session in self.reports[: config.unfinished]}
        self._count = 0
        self.request_log = RequestLog(config.request_log_limit)

    # -- runner protocol ---------------------------------------------------------------

    def applications(self) -> dict[str, web.Application]:
        api = web.Application(middlewares=[self.request_log.recorder("api"), self._gate])
        api.router.add_get(LIST_PATH.format(user_id="{user_id}"), self._list)
        api.router.add_get(REPORT_PREFIX + "{report_id}", self._report)
        api.router.add_get("/_sim/requests", self.request_log.serve)
        files = web.Application(middlewares=[self.request_log.recorder("files")])
        files.router.add_get("/v2/{tail:.+}", self._file)
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
    def list_path(self) -> str:
        """The session reports path of the configured user."""
        return LIST_PATH.format(user_id=self.config.username)

    # -- control (thread-safe) -----------------------------------------------------------

    def is_unfinished(self, session_id: str) -> bool:
        self.session(session_id)
        with self._lock:
            return session_id in self._unfinished

    def finish(self, session_id: str) -> None:
        """End a still running session: it gets its ``endDateTime``, its video appears."""
        self.session(session_id)
        with self._lock:
            self._unfinished.discard(session_id)

    def finish_all(self) -> None:
        with self._lock:
            self._unfinished.clear()

    # -- the dataset as clients see it -------------------------------------------------

    def session(self, session_id: str) -> TestObjectSession:
        try:
            return self._by_id[session_id]
        except KeyError:
            raise KeyError(f"no simulated session {session_id!r}") from None

    def entity(self, session_id: str) -> JSONDict:
        """The session as the listing shows it right now."""
        session = self.session(session_id)
        return _entity(session, self.config.username, self.is_unfinished(session_id))

    def test_report(self, test_report_id: int) -> TestObjectTestReport:
        try:
            return self._test_reports[test_report_id]
        except KeyError:
            raise KeyError(f"no simulated test report {test_report_id!r}") from None

    def report(self, test_report_id: int) -> JSONDict:
        """What ``GET /v2/reports/{id}`` returns right now (URLs need a bound simulator)."""
        report = self.test_report(test_report_id)
        running = self.is_unfinished(report.session_id)
        video = self._video_file(report)
        document: JSONDict = {
            "id": report.id,
            "sessionId": report.session_id,
            "status": "RUNNING" if running else report.status,
            "video": None if running else {"id": report.video_id, "url": self.url(video)},
            "screenshots": [
                {"id": shot_id, "url": self.url(self._screenshot_file(report, shot_id))}
                for shot_id in report.screenshot_ids
            ],
            "logs": {kind: self.url(self._log_file(report, kind)) for kind in report.log_kinds},
        }
        return document

    def files(self, session_id: str) -> tuple[SimFile, ...]:
        """Every file the session's test reports link to once it has finished."""
        session = self.session(session_id)
        found: list[SimFile] = []
        for report_id in session.report_ids:
            report = self._test_reports[report_id]
            found.append(self._video_file(report))
            found += [self._screenshot_file(report, shot) for shot in report.screenshot_ids]
            found += [self._log_file(report, kind) for kind in report.log_kinds]
        return tuple(found)

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

    def expected_digest(self, url: str) -> tuple[int, str]:
        """``(size, sha256 hex)`` of what ``url`` serves, without a download."""
        file = self._file_at(urlsplit(url).path)
        if file is None:
            raise KeyError(f"the simulator serves no file at {url}")
        return file.size, file.digest()

    # -- HTTP handlers ---------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.Response:
        if request.match_info["user_id"] != self.config.username:
            return _error(403, "Forbidden", "you may only read your own session reports")
        offset = _int_query(request, "offset", DEFAULT_OFFSET, minimum=1)
        limit = _int_query(request, "limit", DEFAULT_LIMIT, minimum=1)
        last_days = _int_query(request, "lastDays", DEFAULT_LAST_DAYS, minimum=1)
        if last_days > MAX_LAST_DAYS:
            raise _BadRequest(f"lastDays must be {MAX_LAST_DAYS} or less")
        cutoff = _utcnow() - timedelta(days=last_days)
        total = len(self._starts_ascending) - bisect_left(self._starts_ascending, cutoff)
        start = min(offset - 1, total)
        chosen = self.reports[start : min(total, start + limit)]
        with self._lock:
            running = set(self._unfinished)
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
        report = self._test_reports.get(int(text)) if text.isdigit() else None
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
        report = self._test_reports[int(file.execution_id)]
        if file.kind == "video" and self.is_unfinished(report.session_id):
            return _error(404, "Not Found", "the video is not available yet")
        return await send_file(request, file)

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Basic auth and the periodic 429 before the handler; 400 for bad parameters."""
        if request.path.startswith("/_sim/"):
            return await handler(request)
        if not self._authorized(request.headers.get("Authorization", "")):
            response = _error(401, "Unauthorized", "missing or invalid credentials")
            response.headers["WWW-Authenticate"] = 'Basic realm="TestObject"'
            return response
        with self._lock:
            self._count += 1
            count = self._count
        every = self.config.rate_limit_every
        if every and count % every == 0:
            response = _error(429, "Too Many Requests", "rate limit exceeded")
            response.headers["Retry-After"] = str(self.config.retry_after)
            return response
        try:
            return await handler(request)
        except _BadRequest as refused:
            return _error(400, "Bad Request", str(refused))
        except web.HTTPException as exc:
            return _error(exc.status, exc.reason, exc.reason)

    # -- internals -----------------------------------------------------------------------

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = f"{self.config.username}:{self.config.api_key}".encode()
        return hmac.compare_digest(decoded, expected)

    def _signature(self, path: str) -> str:
        return hmac.new(self._key, path.encode(), hashlib.sha256).hexdigest()[:32]

    def _video_file(self, report: TestObjectTestReport) -> SimFile:
        return SimFile(
            execution_id=str(report.id),
            kind="video",
            filename=f"{report.video_id}.mp4",
            size=self.config.video_size,
            content_type="video/mp4",
            delivery="signed",
            body=f"testobject/{self.config.seed}/video/{report.video_id}",
        )

    def _screenshot_file(self, report: TestObjectTestReport, shot_id: int) -> SimFile:
        return SimFile(
            execution_id=str(report.id),
            kind="screenshot",
            filename=f"{shot_id}.png",
            size=self.config.screenshot_size,
            content_type="image/png",
            delivery="signed",
            body=f"testobject/{self.config.seed}/screenshot/{report.id}/{shot_id}",
        )

    def _log_file(self, report: TestObjectTestReport, kind: str) -> SimFile:
        session = self._by_id[report.session_id]
        text = _log_text(self.config, session, report.id, kind)
        return TextFile(
            execution_id=str(report.id),
            kind=f"{kind}_log",
            filename=kind,
            size=len(text),
            content_type="text/plain",
            delivery="signed",
            body=f"testobject/{self.config.seed}/log/{report.id}/{kind}",
            text=text,
        )

    def _file_at(self, path: str) -> SimFile | None:
        """The file served at ``path`` on the files origin, if any."""
        if path.startswith(VIDEO_PREFIX):
            name = path[len(VIDEO_PREFIX) :]
            number = name.removesuffix(".mp4")
            if not name.endswith(".mp4") or not number.isdigit():
                return None
            report = self._by_video.get(int(number))
            return None if report is None else self._video_file(report)
        for prefix in (SCREENSHOT_PREFIX, LOG_PREFIX):
            if not path.startswith(prefix):
                continue
            report_text, _, name = path[len(prefix) :].partition("/")
            found = self._test_reports.get(int(report_text)) if report_text.isdigit() else None
            if found is None:
                return None
            if prefix == LOG_PREFIX:
                return self._log_file(found, name) if name in found.log_kinds else None
            number = name.removesuffix(".png")
            if name.endswith(".png") and number.isdigit() and int(number) in found.screenshot_ids:
                return self._screenshot_file(found, int(number))
            return None
        return None


# -- the dataset ---------------------------------------------------------------------------

DEVICES = {
    "android": ("Dell_Venue_8_real", "Samsung_Galaxy_S7_real", "Google_Pixel_real",
                "LG_Nexus_5X_real", "HTC_One_M8_real"),
    "ios": ("iPhone_7_real", "iPhone_6S_real", "iPad_Air_2_real", "iPhone_SE_real"),
}  # fmt: skip
VERSIONS = {
    "APPIUM": ("1.4.8", "1.5.3", "1.6.3", "1.6.5"),
    "ESPRESSO": ("2.2.2", "3.0.0"),
    "XCUITEST": ("8.3", "9.0"),
}
STATUSES = ("SUCCESS", "SUCCESS", "SUCCESS", "FAILURE", "ERROR")
MONTHS = ("JANUARY", "FEBRUARY", "MARCH", "APRIL", "MAY", "JUNE", "JULY", "AUGUST",
          "SEPTEMBER", "OCTOBER", "NOVEMBER", "DECEMBER")  # fmt: skip
DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")


def _build_sessions(config: TestObjectSimConfig, newest: datetime) -> tuple[TestObjectSession, ...]:
    """The dataset, newest first; start times strictly decrease with the index.

    Test report ids grow with time, as the vendor's database ids did.
    """
    rng = random.Random(f"testobject:{config.seed}")
    step = max(1, int(config.span.total_seconds()) // max(1, config.sessions))
    sessions: list[TestObjectSession] = []
    next_report = 78 + config.seed * 1000
    next_test = 1
    oldest_first = range(config.sessions - 1, -1, -1)
    starts = {index: newest - timedelta(seconds=index * step) for index in range(config.sessions)}
    for index in oldest_first:
        usage = config.usages[index % len(config.usages)]
        platform = (
            "ios" if usage == "XCUITEST" or (usage != "ESPRESSO" and index % 3 == 0) else "android"
        )
        jitter = rng.randrange(step) if step > 1 and index > 0 else 0  # newest: exact
        count = {"APPIUM": 1, "MANUAL": 0}.get(usage, rng.randint(1, 3))
        report_ids = tuple(range(next_report, next_report + count))
        next_report += count
        if usage in ("ESPRESSO", "XCUITEST"):
            test_ids = tuple(range(next_test, next_test + count))
            next_test += count
            batch_id = 500 + index
            framework_app_id = 2 + index % 4
        else:
            test_ids = (-1,) * count
            batch_id = -1
            framework_app_id = 0
        manual = usage == "MANUAL"
        sessions.append(
            TestObjectSession(
                index=index,
                id=_uuid(config.seed, "session", index),
                project_id=config.project_ids[index % len(config.project_ids)],
                device=rng.choice(DEVICES[platform]),
                usage=usage,
                app_id=1 + index % 7,
                framework_app_id=framework_app_id,
                framework_type=None if manual else usage,
                framework_version=None if manual else rng.choice(VERSIONS[usage]),
                report_ids=report_ids,
                test_ids=test_ids,
                batch_id=batch_id,
                start=starts[index] - timedelta(seconds=jitter),
                duration_s=rng.randint(20, 1_800),
            )
        )
    sessions.reverse()
    return tuple(sessions)


def _build_test_reports(
    config: TestObjectSimConfig, session: TestObjectSession
) -> Iterator[TestObjectTestReport]:
    rng = random.Random(f"testobject:{config.seed}:{session.id}")
    kinds = LOG_KINDS if session.usage == "APPIUM" else LOG_KINDS[1:]
    for report_id in session.report_ids:
        yield TestObjectTestReport(
            id=report_id,
            session_id=session.id,
            status=rng.choice(STATUSES),
            video_id=100_000 + report_id,
            screenshot_ids=tuple(
                report_id * 100 + number for number in range(1, config.screenshots_per_report + 1)
            ),
            log_kinds=kinds,
        )


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


@functools.lru_cache(maxsize=1024)
def _log_text(
    config: TestObjectSimConfig, session: TestObjectSession, report_id: int, kind: str
) -> bytes:
    """A deterministic log of about ``log_size`` bytes (never cut inside the first lines)."""
    rng = random.Random(f"testobject:{config.seed}:log:{report_id}:{kind}")
    moment = session.start
    lines: list[str] = []
    if kind == "appium":
        capabilities = {
            "testobject_api_key": config.api_key,
            "testobject_device": session.device,
            "testobject_app_id": str(session.app_id),
            "testobject_test_report_id": report_id,
            "platformName": "iOS" if session.device.startswith("iP") else "Android",
        }
        lines.append(f"{_stamp(moment)} - info: Welcome to Appium v{session.framework_version}")
        lines.append(
            f"{_stamp(moment)} - info: --> POST /wd/hub/session "
            + json.dumps({"desiredCapabilities": capabilities})
        )
    elif kind == "vitals":
        lines.append("timestamp,cpuPercent,memoryKb,networkRxKb,networkTxKb")
    size = len("\n".join(lines))
    while size < config.log_size:
        moment += timedelta(milliseconds=rng.randint(5, 900))
        if kind == "appium":
            verb = rng.choice(("GET", "POST"))
            line = f"{_stamp(moment)} - info: --> {verb} /wd/hub/session/{session.id}/element"
        elif kind == "device":
            tag = rng.choice(("ActivityManager", "WindowManager", "dalvikvm", "SimApp"))
            line = f"{_stamp(moment)} I/{tag}({rng.randint(100, 9999)}): event {rng.random():.6f}"
        else:
            line = (
                f"{int(moment.replace(tzinfo=UTC).timestamp() * 1000)},{rng.randint(1, 100)},"
                f"{rng.randint(50_000, 900_000)},{rng.randint(0, 999)},{rng.randint(0, 999)}"
            )
        lines.append(line)
        size += len(line) + 1
    return ("\n".join(lines) + "\n").encode()


def _stamp(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}:{moment.microsecond // 1000:03d}"


def _uuid(seed: int, kind: str, number: int) -> str:
    h = hashlib.blake2b(f"{seed}:{kind}:{number}".encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


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


def _error(status: int, error: str, message: str) -> web.Response:
    return json_response({"status": status, "error": error, "message": message}, status=status)


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
