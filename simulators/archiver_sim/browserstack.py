"""A BrowserStack REST API simulator (App Automate and Automate), for ``archiver demo`` and tests.

Written from BrowserStack's API reference: App Automate
(https://www.browserstack.com/docs/app-automate/api-reference/appium/builds and
.../appium/sessions) and Automate
(https://www.browserstack.com/docs/automate/api-reference/selenium/build and
.../selenium/session). Two origins.

The **API origin** wants HTTP basic auth (user name, access key; otherwise 401 with
``HTTP Basic: Access denied.``) and answers, for ``{product}`` ``app-automate`` or
``automate``:

* ``GET /{product}/builds.json``: ``[{"automation_build": {name, duration, status,
  hashed_id, build_tag}}]``, newest build first (by creation: a build that gains a session
  later keeps its place), ``limit`` (default 10, at most 100; more is 422), ``offset``,
  ``status`` (running, done, timeout, failed);
* ``GET /{product}/builds/{build_id}/sessions.json``: ``[{"automation_session": {...}}]``,
  newest first, the same ``limit``/``offset``/``status`` (404 for an unknown build);
* ``GET /{product}/sessions/{id}.json``: ``{"automation_session": {...}}`` (404 unknown);
* the logs the records link to: ``/{product}/builds/{b}/sessions/{s}/logs`` (text logs) and
  ``appiumlogs``, ``devicelogs``, ``networklogs`` (App Automate) or ``seleniumlogs``,
  ``consolelogs``, ``networklogs`` (Automate); network logs are HAR (JSON).

The **files origin** stands in for the hosts videos come from: ``video_url`` is
``/sessions/{id}/video?token=...`` there, which redirects (302) to a pre-signed
``/s3/{id}.mp4?X-Amz-Signature=...``. Neither takes credentials: like S3 with a query
signature, a request that carries an ``Authorization`` header is refused (400), and a
missing or wrong token or signature is 403.

Sessions carry ``created_at``, ``status`` (the verdict), ``browserstack_status`` (``done``,
``error``, ``timeout``; ``running`` while unfinished) and a link per captured log; a log
the session did not capture (network logs without ``browserstack.networkLogs``, device
logs without ``browserstack.deviceLogs``, console logs off, video off) is ``null``. The
newest ``unfinished`` sessions of each product are running (no duration, no video, their
build ``running``) until :meth:`BrowserStackSimulator.finish` or ``finish_all``.
:meth:`BrowserStackSimulator.add_session` adds a session to an existing build, however old,
as a run reusing a build name does.

The builds and sessions are :mod:`archiver_sim.browserstack_data` (:class:`BrowserStackData`,
built from :class:`BrowserStackSimConfig`); the handlers only read it. Every
``rate_limit_every``-th authenticated request answers 429 (no Retry-After: BrowserStack
documents none). Routes under ``/_sim/`` are test helpers.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from archiver_sim.base import FinishControl, RequestCounter, SimulatorBase, newest_start
from archiver_sim.browserstack_data import (
    APP_AUTOMATE,
    AUTOMATE,
    LOGS,
    PRODUCTS,
    BrowserStackData,
    BrowserStackDataset,
    BrowserStackSimConfig,
    JSONDict,
    SimBody,
    SimBuild,
    SimSession,
    build_dataset,
    hashed_id,
)
from archiver_sim.http import (
    BadQuery,
    basic_auth_matches,
    int_query,
    json_response,
    s3_error,
    send_file,
)

__all__ = [
    "APP_AUTOMATE",
    "AUTOMATE",
    "PRODUCTS",
    "BrowserStackDataset",
    "BrowserStackSimConfig",
    "BrowserStackSimulator",
    "SimBody",
    "SimBuild",
    "SimSession",
    "build_dataset",
]

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
FILTERS = ("running", "done", "timeout", "failed")

DASHBOARD = {
    APP_AUTOMATE: "https://app-automate.browserstack.com",
    AUTOMATE: "https://automate.browserstack.com",
}

# -- the simulator ---------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BrowserStackSimulator(FinishControl[str], SimulatorBase):
    """Both origins' applications over a :class:`BrowserStackData` (control methods
    thread-safe)."""

    data: BrowserStackData

    def __init__(self, config: BrowserStackSimConfig | None = None) -> None:
        self.config = config = config or BrowserStackSimConfig()
        super().__init__(config.request_log_limit)
        self.data = BrowserStackData(
            config, newest_start(config.newest_start, timedelta(minutes=30))
        )
        self._key = f"browserstack-sim-{config.seed}".encode()
        self._requests = RequestCounter()

    # -- runner protocol -----------------------------------------------------------------

    def applications(self) -> dict[str, web.Application]:
        api = self.api_application(self._gate)
        api.router.add_get("/{product}/builds.json", self._builds)
        api.router.add_get("/{product}/builds/{build}/sessions.json", self._build_sessions)
        api.router.add_get("/{product}/sessions/{session}.json", self._session)
        api.router.add_get("/{product}/builds/{build}/sessions/{session}/{log}", self._log)
        files = web.Application(middlewares=[self.request_log.recorder("files")])
        files.router.add_get("/sessions/{session}/video", self._video_link)
        files.router.add_get("/s3/{name}", self._video)
        return {"api": api, "files": files}

    # -- control (thread-safe) -----------------------------------------------------------

    # is_unfinished, finish, set_unfinished and finish_all come from FinishControl.

    def add_session(self, build_id: str, *, unfinished: bool = False) -> SimSession:
        """A new session, created now, in the existing build ``build_id``."""
        return self.data.add_session(build_id, unfinished=unfinished)

    # -- the data as clients see it --------------------------------------------------------

    @property
    def dataset(self) -> BrowserStackDataset:
        """The builds and sessions now (a new object once a session is added)."""
        return self.data.dataset

    def session(self, session_id: str) -> SimSession:
        return self.data.session(session_id)

    def session_ids(self, *, finished_only: bool = False) -> set[str]:
        ids = set(self.dataset.sessions)
        return {i for i in ids if not self.is_unfinished(i)} if finished_only else ids

    def record(self, session_id: str) -> JSONDict:
        """The ``automation_session`` object as the API shows it now."""
        session = self.session(session_id)
        return self._record(session, self.is_unfinished(session_id))

    def files(self, session_id: str) -> dict[str, SimBody]:
        """What each link of a finished session serves, by record field."""
        return self.data.files(session_id)

    def build_status(self, build: SimBuild) -> str:
        return self.data.build_status(build)

    # -- HTTP handlers ---------------------------------------------------------------------

    async def _builds(self, request: web.Request) -> web.Response:
        product = _product(request)
        builds = [
            b
            for b in self.dataset.builds.get(product, ())
            if _matches(request, self.build_status(b))
        ]
        entries = [{"automation_build": self._build_record(b)} for b in _page(request, builds)]
        return json_response(entries)

    async def _build_sessions(self, request: web.Request) -> web.Response:
        product = _product(request)
        build = self.dataset.build(product, request.match_info["build"])
        if build is None:
            raise _Refused(404, "Build not found")
        records = [self._record(s, self.is_unfinished(s.hashed_id)) for s in build.sessions]
        chosen = [r for r in records if _matches(request, r["browserstack_status"])]
        return json_response([{"automation_session": r} for r in _page(request, chosen)])

    async def _session(self, request: web.Request) -> web.Response:
        product = _product(request)
        session = self.dataset.sessions.get(request.match_info["session"])
        if session is None or session.product != product:
            raise _Refused(404, "Session not found")
        return json_response({"automation_session": self.record(session.hashed_id)})

    async def _log(self, request: web.Request) -> web.StreamResponse:
        product = _product(request)
        session = self.dataset.sessions.get(request.match_info["session"])
        endpoint = request.match_info["log"]
        names = [n for n, (path, _) in LOGS[product].items() if path == endpoint]
        if (
            session is None
            or session.product != product
            or session.build_id != request.match_info["build"]
            or not names
            or names[0] not in session.captured
        ):
            raise _Refused(404, "Logs not found")
        return await send_file(request, self.data.log_body(session, names[0]))

    async def _video_link(self, request: web.Request) -> web.StreamResponse:
        session_id = request.match_info["session"]
        if "Authorization" in request.headers:
            return s3_error(400, "InvalidArgument")
        token = request.query.get("token", "")
        if not hmac.compare_digest(token, self._signature(f"video:{session_id}")):
            return s3_error(403, "AccessDenied")
        target = f"/s3/{session_id}.mp4"
        raise web.HTTPFound(f"{target}?X-Amz-Signature={self._signature(target)}")

    async def _video(self, request: web.Request) -> web.StreamResponse:
        if "Authorization" in request.headers:
            return s3_error(400, "InvalidArgument")
        if not hmac.compare_digest(
            request.query.get("X-Amz-Signature", ""), self._signature(request.path)
        ):
            return s3_error(403, "AccessDenied")
        session = self.dataset.sessions.get(request.match_info["name"].removesuffix(".mp4"))
        if session is None or "video_url" not in session.captured:
            return s3_error(404, "NoSuchKey")
        if self.is_unfinished(session.hashed_id):
            return s3_error(404, "NoSuchKey")
        return await send_file(request, self.data.video_body(session))

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Basic auth and the periodic 429 before the handler; refusals as JSON."""
        if request.path.startswith("/_sim/"):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        if not basic_auth_matches(header, self.config.username, self.config.access_key):
            return web.Response(
                status=401,
                text="HTTP Basic: Access denied.\n",
                headers={"WWW-Authenticate": 'Basic realm="Application"'},
            )
        if RequestCounter.hits(self._requests.next(), self.config.rate_limit_every):
            return json_response({"message": "Too many requests"}, status=429)
        try:
            return await handler(request)
        except _Refused as refused:
            return json_response({"message": refused.message}, status=refused.status)

    # -- internals -----------------------------------------------------------------------

    def _signature(self, what: str) -> str:
        return hmac.new(self._key, what.encode(), hashlib.sha256).hexdigest()[:40]

    def _build_record(self, build: SimBuild) -> JSONDict:
        return {
            "name": build.name,
            "duration": sum(
                s.duration for s in build.sessions if not self.is_unfinished(s.hashed_id)
            ),
            "status": self.build_status(build),
            "hashed_id": build.hashed_id,
            "build_tag": None,
        }

    def _record(self, session: SimSession, running: bool) -> JSONDict:
        product, sid, bid = session.product, session.hashed_id, session.build_id
        api = f"{self.api_url}/{product}/builds/{bid}/sessions/{sid}"
        dashboard = f"{DASHBOARD[product]}/builds/{bid}/sessions/{sid}"
        links = {name: f"{api}/{path}" for name, (path, _) in LOGS[product].items()}
        links["video_url"] = f"{self.files_url}/sessions/{sid}/video?token=" + self._signature(
            f"video:{sid}"
        )
        record: JSONDict = {
            "name": session.name,
            "duration": None if running else session.duration,
            "os": session.os,
            "os_version": session.os_version,
            "browser_version": session.browser_version,
            "browser": session.browser,
            "device": session.device,
            "status": "running" if running else session.verdict,
            "hashed_id": sid,
            "reason": "" if running else session.reason,
            "build_name": session.build_name,
            "project_name": session.project_name,
            "build_hashed_id": bid,
            "browserstack_status": "running" if running else session.browserstack_status,
            "created_at": session.created_at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "browser_url": dashboard,
            "public_url": f"{dashboard}?auth_token={self._signature(f'public:{sid}')}",
        }
        for name in (*LOGS[product], "video_url"):
            captured = name in session.captured and not (running and name == "video_url")
            record[name] = links[name] if captured else None
        if product == APP_AUTOMATE:
            record["app_details"] = {
                "app_url": f"bs://{hashed_id(self.config.seed, 'app', bid)}",
                "app_name": "com.example.shop",
                "app_version": "4.2.0",
                "app_custom_id": "ShopApp",
                "uploaded_at": "2026-11-01T09:00:00.000Z",
            }
        return record


def _product(request: web.Request) -> str:
    product = request.match_info["product"]
    if product not in PRODUCTS:
        raise _Refused(404, "Not found")
    return product


def _page(request: web.Request, items: list[Any]) -> list[Any]:
    try:
        limit = int_query(request, "limit", DEFAULT_LIMIT)
        offset = int_query(request, "offset", 0)
    except BadQuery as refused:
        raise _Refused(422, str(refused)) from None
    if not 1 <= limit <= MAX_LIMIT:
        raise _Refused(422, f"limit must be between 1 and {MAX_LIMIT}")
    return items[offset : offset + limit]


def _matches(request: web.Request, status: str) -> bool:
    """Whether a build or session in ``status`` passes the ``status`` filter, if any."""
    wanted = request.query.get("status")
    if wanted is None:
        return True
    if wanted not in FILTERS:
        raise _Refused(422, f"status must be one of {', '.join(FILTERS)}")
    return wanted == ("failed" if status == "error" else status)
