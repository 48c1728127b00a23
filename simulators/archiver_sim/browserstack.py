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

The data (:class:`BrowserStackDataset`, built from :class:`BrowserStackSimConfig`) is
immutable; the simulator swaps in a new one when a session is added, and the handlers only
read it. Every ``rate_limit_every``-th authenticated request answers 429 (no Retry-After:
BrowserStack documents none). Routes under ``/_sim/`` are test helpers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import random
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from archiver_sim.content import digest, iter_chunks, magic_for
from archiver_sim.http import json_response, s3_error, send_file
from archiver_sim.requestlog import RequestLog, RequestLogged

APP_AUTOMATE = "app-automate"
AUTOMATE = "automate"
PRODUCTS = (APP_AUTOMATE, AUTOMATE)
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
FILTERS = ("running", "done", "timeout", "failed")
# Per product: the log endpoint of each record field, and its content type.
LOGS: Mapping[str, Mapping[str, tuple[str, str]]] = {
    APP_AUTOMATE: {
        "logs": ("logs", "text/plain"),
        "appium_logs_url": ("appiumlogs", "text/plain"),
        "device_logs_url": ("devicelogs", "text/plain"),
        "network_logs_url": ("networklogs", "application/json"),
    },
    AUTOMATE: {
        "logs": ("logs", "text/plain"),
        "selenium_logs_url": ("seleniumlogs", "text/plain"),
        "browser_console_logs_url": ("consolelogs", "text/plain"),
        "har_logs_url": ("networklogs", "application/json"),
    },
}
DASHBOARD = {
    APP_AUTOMATE: "https://app-automate.browserstack.com",
    AUTOMATE: "https://automate.browserstack.com",
}
KIB = 1024

JSONDict = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class BrowserStackSimConfig:
    """The simulated account. Defaults suit a demo: a dozen sessions per product.

    Each product has ``sessions_per_product`` sessions, created over ``span`` up to
    ``newest_start`` (None: 30 minutes before the simulator is built), grouped
    ``sessions_per_build`` to a build. Every ``network_logs_every``-th session captured
    network logs, every ``device_logs_every``-th device logs (App Automate), all but every
    ``no_console_every``-th console logs and all but every ``no_video_every``-th a video
    (0: never / always). The newest ``unfinished`` sessions of each product are running.
    """

    seed: int = 3
    products: tuple[str, ...] = PRODUCTS
    sessions_per_product: int = 12
    sessions_per_build: int = 4
    span: timedelta = timedelta(days=10)
    newest_start: datetime | None = None
    username: str = "sim_user_Xk3d9"
    access_key: str = "browserstack-sim-access-key"
    unfinished: int = 0
    network_logs_every: int = 3
    device_logs_every: int = 2
    no_console_every: int = 4
    no_video_every: int = 7
    video_size: int = 48 * KIB
    log_size: int = 4 * KIB
    rate_limit_every: int = 0
    request_log_limit: int = 50_000

    def __post_init__(self) -> None:
        counts = (
            self.sessions_per_product,
            self.unfinished,
            self.network_logs_every,
            self.device_logs_every,
            self.no_console_every,
            self.no_video_every,
            self.video_size,
            self.log_size,
            self.rate_limit_every,
        )
        if min(counts) < 0 or self.sessions_per_build < 1:
            raise ValueError("counts and sizes must be >= 0, sessions_per_build >= 1")
        if not self.products or not set(self.products) <= set(PRODUCTS):
            raise ValueError(f"products must be a non-empty subset of {PRODUCTS}")
        if not self.username or ":" in self.username:
            raise ValueError("username must be non-empty, without ':'")
        if self.span <= timedelta(0):
            raise ValueError("span must be positive")


# -- the dataset -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SimSession:
    """One session as generated; ``captured`` names the record fields it has a file for."""

    product: str
    hashed_id: str
    build_id: str
    build_name: str
    project_name: str
    name: str
    created_at: datetime
    duration: int
    os: str
    os_version: str
    browser: str | None
    browser_version: str
    device: str | None
    verdict: str
    browserstack_status: str
    reason: str
    captured: frozenset[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class SimBuild:
    product: str
    hashed_id: str
    name: str
    sessions: tuple[SimSession, ...]  # newest first


@dataclass(frozen=True, slots=True, kw_only=True)
class BrowserStackDataset:
    """Every build and session, by product (newest build first), and by id."""

    builds: Mapping[str, tuple[SimBuild, ...]]
    sessions: Mapping[str, SimSession] = field(init=False)

    def __post_init__(self) -> None:
        found = {s.hashed_id: s for bs in self.builds.values() for b in bs for s in b.sessions}
        object.__setattr__(self, "sessions", found)

    def build(self, product: str, build_id: str) -> SimBuild | None:
        return next((b for b in self.builds.get(product, ()) if b.hashed_id == build_id), None)

    def newest_sessions(self, product: str, count: int) -> list[SimSession]:
        """The ``count`` newest sessions of ``product`` (as generated, newest first)."""
        return [s for build in self.builds.get(product, ()) for s in build.sessions][:count]

    def with_session(self, session: SimSession) -> BrowserStackDataset:
        """The same data with ``session`` added (newest) to its build."""
        builds = {
            product: tuple(
                replace(b, sessions=(session, *b.sessions))
                if b.hashed_id == session.build_id
                else b
                for b in listed
            )
            for product, listed in self.builds.items()
        }
        return BrowserStackDataset(builds=builds)


DEVICES = (("android", "12.0", "Samsung Galaxy S22"), ("ios", "16", "iPhone 14"),
           ("android", "13.0", "Google Pixel 7"), ("ios", "15", "iPhone 13"))  # fmt: skip
BROWSERS = (("Windows", "11", "chrome", "119.0"), ("OS X", "Ventura", "safari", "16.5"),
            ("Windows", "10", "firefox", "120.0"), ("OS X", "Sonoma", "edge", "119.0"))  # fmt: skip
ENDINGS = (
    ("passed", "done", "CLIENT_STOPPED_SESSION"),
    ("failed", "done", "assertion failed"),
    ("passed", "done", "CLIENT_STOPPED_SESSION"),
    ("unmarked", "timeout", "BROWSERSTACK_IDLE_TIMEOUT"),
    ("unmarked", "error", "start-error"),
)


def build_dataset(config: BrowserStackSimConfig, newest: datetime) -> BrowserStackDataset:
    step = config.span / max(1, config.sessions_per_product)
    builds: dict[str, tuple[SimBuild, ...]] = {}
    for product in config.products:
        sessions = [
            _generated_session(config, product, index, newest - step * index)
            for index in range(config.sessions_per_product)
        ]
        per = config.sessions_per_build
        groups = [sessions[start : start + per] for start in range(0, len(sessions), per)]
        builds[product] = tuple(
            SimBuild(
                product=product,
                hashed_id=group[0].build_id,
                name=group[0].build_name,
                sessions=tuple(group),
            )
            for group in groups
        )
    return BrowserStackDataset(builds=builds)


def _generated_session(
    config: BrowserStackSimConfig, product: str, index: int, created: datetime
) -> SimSession:
    rng = random.Random(f"browserstack:{config.seed}:{product}:{index}")
    build_number = index // config.sessions_per_build
    verdict, status, reason = ENDINGS[index % len(ENDINGS)]
    captured = {"logs"}
    if not _every(config.no_video_every, index):
        captured.add("video_url")
    if product == APP_AUTOMATE:
        os_name, os_version, device = DEVICES[index % len(DEVICES)]
        browser, browser_version = None, "app"
        captured.add("appium_logs_url")
        if _every(config.device_logs_every, index):
            captured.add("device_logs_url")
        if _every(config.network_logs_every, index):
            captured.add("network_logs_url")
    else:
        os_name, os_version, browser, browser_version = BROWSERS[index % len(BROWSERS)]
        device = None
        captured.add("selenium_logs_url")
        if not _every(config.no_console_every, index):
            captured.add("browser_console_logs_url")
        if _every(config.network_logs_every, index):
            captured.add("har_logs_url")
    return SimSession(
        product=product,
        hashed_id=_hashed_id(config.seed, product, "session", index),
        build_id=_hashed_id(config.seed, product, "build", build_number),
        build_name=f"{'mobile' if product == APP_AUTOMATE else 'web'}-build-{build_number}",
        project_name="shop" if build_number % 2 == 0 else "checkout",
        name=f"test_{rng.choice(('login', 'search', 'cart', 'pay'))}_{index}",
        created_at=created.replace(microsecond=0),
        duration=rng.randint(20, 900),
        os=os_name,
        os_version=os_version,
        browser=browser,
        browser_version=browser_version,
        device=device,
        verdict=verdict,
        browserstack_status=status,
        reason=reason,
        captured=frozenset(captured),
    )


def _every(every: int, index: int) -> bool:
    return every > 0 and index % every == 0


def _hashed_id(seed: int, *parts: object) -> str:
    return hashlib.sha1(":".join(map(str, (seed, *parts))).encode()).hexdigest()  # noqa: S324


# -- files -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimBody:
    """A body the simulator serves: generated video bytes or a text/JSON log."""

    content_type: str
    size: int
    name: str
    text: bytes | None = None

    def chunks(self) -> Iterator[bytes]:
        if self.text is not None:
            yield self.text
            return
        yield from iter_chunks(self.name, self.size, magic=magic_for(self.content_type))

    def sha256(self) -> str:
        if self.text is not None:
            return hashlib.sha256(self.text).hexdigest()
        return digest(self.name, self.size, magic=magic_for(self.content_type))


def _log_text(config: BrowserStackSimConfig, session: SimSession, field_name: str) -> bytes:
    rng = random.Random(f"browserstack:{config.seed}:{session.hashed_id}:{field_name}")
    moment = session.created_at
    if LOGS[session.product][field_name][1] == "application/json":
        entries: list[JSONDict] = []
        while len(json.dumps(entries)) < config.log_size:
            moment += timedelta(milliseconds=rng.randint(5, 900))
            entries.append(
                {
                    "startedDateTime": moment.isoformat().replace("+00:00", "Z"),
                    "time": rng.randint(1, 800),
                    "request": {"method": "GET", "url": f"https://shop.example/{rng.random():.6f}"},
                    "response": {"status": rng.choice((200, 200, 304, 404))},
                }
            )
        har = {"log": {"version": "1.2", "creator": {"name": "BrowserStack"}, "entries": entries}}
        return json.dumps(har, indent=1).encode()
    lines: list[str] = []
    size = 0
    while size < config.log_size:
        moment += timedelta(milliseconds=rng.randint(5, 900))
        line = f"{moment:%Y-%m-%d %H:%M:%S} [{field_name}] {session.name} step {rng.random():.6f}"
        lines.append(line)
        size += len(line) + 1
    return ("\n".join(lines) + "\n").encode()


# -- the simulator ---------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BrowserStackSimulator(RequestLogged):
    """The dataset, which sessions still run, and both origins (thread-safe)."""

    def __init__(self, config: BrowserStackSimConfig | None = None) -> None:
        self.config = config = config or BrowserStackSimConfig()
        newest = config.newest_start or datetime.now(UTC) - timedelta(minutes=30)
        newest = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
        self.dataset = build_dataset(config, newest)
        self._unfinished = {
            session.hashed_id
            for product in config.products
            for session in self.dataset.newest_sessions(product, config.unfinished)
        }
        self._key = f"browserstack-sim-{config.seed}".encode()
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()
        self._count = 0
        self._added = 0
        self.request_log = RequestLog(config.request_log_limit)

    # -- runner protocol -----------------------------------------------------------------

    def applications(self) -> dict[str, web.Application]:
        api = web.Application(middlewares=[self.request_log.recorder("api"), self._gate])
        api.router.add_get("/{product}/builds.json", self._builds)
        api.router.add_get("/{product}/builds/{build}/sessions.json", self._build_sessions)
        api.router.add_get("/{product}/sessions/{session}.json", self._session)
        api.router.add_get("/{product}/builds/{build}/sessions/{session}/{log}", self._log)
        api.router.add_get("/_sim/requests", self.request_log.serve)
        files = web.Application(middlewares=[self.request_log.recorder("files")])
        files.router.add_get("/sessions/{session}/video", self._video_link)
        files.router.add_get("/s3/{name}", self._video)
        return {"api": api, "files": files}

    def bind(self, base_urls: Mapping[str, str]) -> None:
        self._urls = dict(base_urls)

    @property
    def api_url(self) -> str:
        return self._urls["api"]

    @property
    def files_url(self) -> str:
        return self._urls["files"]

    # -- control (thread-safe) -----------------------------------------------------------

    def is_unfinished(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._unfinished

    def finish(self, session_id: str) -> None:
        self.session(session_id)
        with self._lock:
            self._unfinished.discard(session_id)

    def finish_all(self) -> None:
        with self._lock:
            self._unfinished.clear()

    def add_session(self, build_id: str, *, unfinished: bool = False) -> SimSession:
        """A new session, created now, in the existing build ``build_id``."""
        with self._lock:
            build = next(
                (b for bs in self.dataset.builds.values() for b in bs if b.hashed_id == build_id),
                None,
            )
            if build is None:
                raise KeyError(f"no simulated build {build_id!r}")
            self._added += 1
            template = build.sessions[-1]
            session = replace(
                template,
                hashed_id=_hashed_id(self.config.seed, "added", self._added),
                name=f"{template.name}_rerun_{self._added}",
                created_at=datetime.now(UTC).replace(microsecond=0),
            )
            self.dataset = self.dataset.with_session(session)
            if unfinished:
                self._unfinished.add(session.hashed_id)
        return session

    # -- the data as clients see it --------------------------------------------------------

    def session(self, session_id: str) -> SimSession:
        try:
            return self.dataset.sessions[session_id]
        except KeyError:
            raise KeyError(f"no simulated session {session_id!r}") from None

    def session_ids(self, *, finished_only: bool = False) -> set[str]:
        ids = set(self.dataset.sessions)
        return {i for i in ids if not self.is_unfinished(i)} if finished_only else ids

    def record(self, session_id: str) -> JSONDict:
        """The ``automation_session`` object as the API shows it now."""
        session = self.session(session_id)
        return self._record(session, self.is_unfinished(session_id))

    def files(self, session_id: str) -> dict[str, SimBody]:
        """What each link of a finished session serves, by record field."""
        session = self.session(session_id)
        found = {name: self._log_body(session, name) for name in LOGS[session.product]}
        found["video_url"] = self._video_body(session)
        return {name: body for name, body in found.items() if name in session.captured}

    def build_status(self, build: SimBuild) -> str:
        if any(self.is_unfinished(s.hashed_id) for s in build.sessions):
            return "running"
        states = {s.browserstack_status for s in build.sessions}
        return "failed" if "error" in states else "timeout" if "timeout" in states else "done"

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
        return await send_file(request, self._log_body(session, names[0]))

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
        return await send_file(request, self._video_body(session))

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Basic auth and the periodic 429 before the handler; refusals as JSON."""
        if request.path.startswith("/_sim/"):
            return await handler(request)
        if not self._authorized(request.headers.get("Authorization", "")):
            return web.Response(
                status=401,
                text="HTTP Basic: Access denied.\n",
                headers={"WWW-Authenticate": 'Basic realm="Application"'},
            )
        with self._lock:
            self._count += 1
            count = self._count
        every = self.config.rate_limit_every
        if every and count % every == 0:
            return json_response({"message": "Too many requests"}, status=429)
        try:
            return await handler(request)
        except _Refused as refused:
            return json_response({"message": refused.message}, status=refused.status)

    # -- internals -----------------------------------------------------------------------

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
                "app_url": f"bs://{_hashed_id(self.config.seed, 'app', bid)}",
                "app_name": "com.example.shop",
                "app_version": "4.2.0",
                "app_custom_id": "ShopApp",
                "uploaded_at": "2026-11-01T09:00:00.000Z",
            }
        return record

    def _log_body(self, session: SimSession, name: str) -> SimBody:
        text = _log_text(self.config, session, name)
        content_type = LOGS[session.product][name][1]
        return SimBody(content_type, len(text), f"{session.hashed_id}/{name}", text)

    def _video_body(self, session: SimSession) -> SimBody:
        name = f"browserstack/{self.config.seed}/video/{session.hashed_id}"
        return SimBody("video/mp4", self.config.video_size, name)


def _product(request: web.Request) -> str:
    product = request.match_info["product"]
    if product not in PRODUCTS:
        raise _Refused(404, "Not found")
    return product


def _int_query(request: web.Request, name: str, default: int) -> int:
    text = request.query.get(name, "")
    if not text:
        return default
    if not text.isdigit():
        raise _Refused(422, f"{name} must be a non-negative integer")
    return int(text)


def _page(request: web.Request, items: list[Any]) -> list[Any]:
    limit = _int_query(request, "limit", DEFAULT_LIMIT)
    if not 1 <= limit <= MAX_LIMIT:
        raise _Refused(422, f"limit must be between 1 and {MAX_LIMIT}")
    offset = _int_query(request, "offset", 0)
    return items[offset : offset + limit]


def _matches(request: web.Request, status: str) -> bool:
    """Whether a build or session in ``status`` passes the ``status`` filter, if any."""
    wanted = request.query.get("status")
    if wanted is None:
        return True
    if wanted not in FILTERS:
        raise _Refused(422, f"status must be one of {', '.join(FILTERS)}")
    return wanted == ("failed" if status == "error" else status)
