"""A DevRev observability API simulator, for ``archiver demo`` and the tests.

Two origins: the **API origin** (``POST /observability.sessions.list`` and
``POST /observability.sessions.data.get``, ``Authorization: Bearer <token>``, JSON errors
``{type, message, detail}``, ``X-Ratelimit-*`` headers on every answer) and a **files
origin** standing in for pre-signed media URLs (``/media/...?X-Amz-Signature=...``, no
token, refused once expired).

Everything derives from :class:`DevRevSimConfig`: the same config gives the same ids, JSON
and bytes (only ``created_at`` and the media signing time follow the clock, unless
``newest_created_ms`` and ``signed_at_ms`` are set). Sessions are built once, newest first,
and every filter combination is a precomputed list, so a cursor is an offset into it and a
page costs the same with 10 or 100,000 sessions.

Faults are counted per authenticated API request (1, 2, 3...): every ``rate_limit_every``-th
answers 429, every ``fail_every``-th 500 and every ``unavailable_every``-th 503. Routes under
``/_sim/`` are test helpers, not part of the vendor API.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from archiver_sim.http import json_response, s3_error, send_file
from archiver_sim.perfecto import SimFile
from archiver_sim.requestlog import RequestLog, RequestLogged

LIST_PATH = "/observability.sessions.list"
DATA_PATH = "/observability.sessions.data.get"
MEDIA_PREFIX = "/media/"
TYPES = ("mobile", "web")
PLATFORMS = ("android", "ios", "web")
SORTS = {"created_at:desc": True, "created_at:asc": False}  # value: newest first
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
KIB = 1024

JSONDict = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class DevRevSimConfig:
    """The simulated Dev org. Defaults suit a demo: two apps, two dozen sessions.

    Sessions cycle through ``version_keys`` and then through the platforms (android, ios:
    type "mobile"; web: type "web"). ``unfinished``: the newest K sessions are still
    recording: they report no duration and only their first recording until ``finish`` or
    ``finish_all``. ``media_every``: every Nth recording has a video on the files origin
    (0: none). ``retry_after_header`` (None: no header) and ``retry_after_body`` are what the
    periodic 429s announce.
    """

    seed: int = 7
    sessions: int = 24
    version_keys: tuple[str, ...] = ("com.example.shop", "portal-web")
    span: timedelta = timedelta(hours=6)
    newest_created_ms: int | None = None  # None: five minutes before the simulator is built
    token: str = "devrev-sim-token"  # noqa: S105 (the simulator's own)
    dev_org: str = "DEV-sim"
    forbidden: bool = False
    unfinished: int = 0
    media_every: int = 2
    media_size: int = 64 * KIB
    media_ttl: timedelta = timedelta(hours=1)
    signed_at_ms: int | None = None  # None: when the simulator is built
    rate_limit: int = 10_000  # requests per window; beyond it, 429 until the window resets
    rate_window_seconds: float = 300.0
    rate_limit_every: int = 0
    retry_after_header: int | None = 0
    retry_after_body: int = 1
    fail_every: int = 0
    unavailable_every: int = 0
    request_log_limit: int = 50_000

    def __post_init__(self) -> None:
        every = (self.media_every, self.rate_limit_every, self.fail_every, self.unavailable_every)
        if self.sessions < 0 or self.media_size < 0 or min(every) < 0 or self.rate_limit < 0:
            raise ValueError("sessions, sizes, counts and rate_limit must be >= 0")
        if not self.version_keys or not all(self.version_keys):
            raise ValueError("version_keys must hold at least one non-empty app id")
        if self.rate_window_seconds <= 0:
            raise ValueError("rate_window_seconds must be > 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class DevRevSession:
    """One simulated session; ``index`` is its position in the newest-first dataset."""

    index: int
    session_id: str
    version_key: str
    type: str
    platform: str
    created_ms: int
    duration_ms: int
    recording_ids: tuple[str, ...]  # tab ids for web sessions
    device: JSONDict = field(compare=False)
    flags: tuple[bool, bool, bool, bool]  # has_exception_occurred, is_anr, is_crash, rage_tap
    rev_user_id: str


class _BadRequest(Exception):
    """A request the API answers with 400 ``bad_request`` and this message."""


class DevRevSimulator(RequestLogged):
    """The dataset, its recording state and both origins' applications (thread-safe)."""

    def __init__(self, config: DevRevSimConfig | None = None) -> None:
        self.config = config = config or DevRevSimConfig()
        now = _now_ms()
        newest = now - 5 * 60_000 if config.newest_created_ms is None else config.newest_created_ms
        self.sessions: tuple[DevRevSession, ...] = _build_sessions(config, newest)
        self._by_id = {session.session_id: session for session in self.sessions}
        self._lists: dict[tuple[str, str, str | None], list[DevRevSession]] = {}
        for session in self.sessions:
            for platform in (None, session.platform):
                key = (session.version_key, session.type, platform)
                self._lists.setdefault(key, []).append(session)
        self._signed_ms = now if config.signed_at_ms is None else config.signed_at_ms
        self._key = f"devrev-sim-{config.seed}".encode()
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()
        self._unfinished = {s.session_id for s in self.sessions[: config.unfinished]}
        self._count = 0
        self._window = (time.monotonic(), 0)  # (start, requests used in it)
        self.request_log = RequestLog(config.request_log_limit)

    # -- runner protocol ---------------------------------------------------------------

    def applications(self) -> dict[str, web.Application]:
        api = web.Application(middlewares=[self.request_log.recorder("api"), self._gate])
        api.router.add_post(LIST_PATH, self._list)
        api.router.add_post(DATA_PATH, self._data)
        api.router.add_get("/_sim/requests", self.request_log.serve)
        files = web.Application(middlewares=[self.request_log.recorder("files")])
        files.router.add_get(MEDIA_PREFIX + "{session_id}/{filename}", self._media)
        return {"api": api, "files": files}

    def bind(self, base_urls: Mapping[str, str]) -> None:
        self._urls = dict(base_urls)
        with self._lock:
            self._window = (time.monotonic(), 0)

    @property
    def api_url(self) -> str:
        return self._urls["api"]

    @property
    def files_url(self) -> str:
        return self._urls["files"]

    # -- control (thread-safe) -----------------------------------------------------------

    def is_unfinished(self, session_id: str) -> bool:
        self.session(session_id)
        with self._lock:
            return session_id in self._unfinished

    def set_unfinished(self, session_id: str) -> None:
        self.session(session_id)
        with self._lock:
            self._unfinished.add(session_id)

    def finish(self, session_id: str) -> None:
        self.session(session_id)
        with self._lock:
            self._unfinished.discard(session_id)

    def finish_all(self) -> None:
        with self._lock:
            self._unfinished.clear()

    # -- the dataset as clients see it -------------------------------------------------

    def session(self, session_id: str) -> DevRevSession:
        try:
            return self._by_id[session_id]
        except KeyError:
            raise KeyError(f"no simulated session {session_id!r}") from None

    def record(self, session_id: str) -> JSONDict:
        """The session as ``sessions.list`` shows it right now."""
        session = self.session(session_id)
        return self._record(session, self.is_unfinished(session_id))

    def recording_ids(self, session_id: str) -> tuple[str, ...]:
        """The recording (or tab) ids listed right now: only the first while recording."""
        session = self.session(session_id)
        return (
            session.recording_ids[:1] if self.is_unfinished(session_id) else session.recording_ids
        )

    def recording(self, session_id: str, recording_id: str) -> JSONDict:
        """What ``sessions.data.get`` returns for one recording (or tab) of the session."""
        session = self.session(session_id)
        if recording_id not in session.recording_ids:
            raise KeyError(f"session {session_id!r} has no recording {recording_id!r}")
        number = session.recording_ids.index(recording_id)
        rng = random.Random(f"devrev:{self.config.seed}:{session_id}:{recording_id}")
        start = session.created_ms + number * 1_000
        timeline, logs = _timeline(rng, session, start), _logs(rng, session, start)
        document: JSONDict = {
            "session_id": session_id,
            "tab_id" if session.type == "web" else "recording_id": recording_id,
            "device_metadata": dict(session.device),
            "timeline": timeline,
            "logs": logs,
        }
        media = [m for m in self.media_files(session_id) if m.filename.startswith(recording_id)]
        if media:
            document["media"] = [
                {"type": "video", "url": self.media_url(m), "expires_at": self._expires_at()}
                for m in media
            ]
        return document

    def media_files(self, session_id: str) -> tuple[SimFile, ...]:
        """The videos the session's recordings point to (``execution_id`` is the session id)."""
        session = self.session(session_id)
        every = self.config.media_every
        return tuple(
            SimFile(
                execution_id=session_id,
                kind="video",
                filename=f"{recording_id}.mp4",
                size=self.config.media_size,
                content_type="video/mp4",
                delivery="signed",
                body=f"devrev/{self.config.seed}/{session_id}/{recording_id}.mp4",
            )
            for number, recording_id in enumerate(session.recording_ids)
            if every and (session.index + number) % every == 0
        )

    def media_url(self, file: SimFile) -> str:
        path = f"{MEDIA_PREFIX}{file.execution_id}/{file.filename}"
        query = urlencode(
            {
                "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                "X-Amz-Credential": "SIMULATOR/us-east-1/s3/aws4_request",
                "X-Amz-Date": _amz_date(self._signed_ms),
                "X-Amz-Expires": str(int(self.config.media_ttl.total_seconds())),
                "X-Amz-SignedHeaders": "host",
                "X-Amz-Signature": self._signature(path),
            }
        )
        return f"{self.files_url}{path}?{query}"

    def expected_digest(self, url: str) -> tuple[int, str]:
        """``(size, sha256 hex)`` of what ``url`` serves, without a download."""
        file = self._file_at(urlsplit(url).path)
        if file is None:
            raise KeyError(f"the simulator serves no file at {url}")
        return file.size, file.digest()

    # -- HTTP handlers ---------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.Response:
        body = await _body(request)
        session_type = _choice(body, "type", TYPES, required=True)
        platform = _choice(body, "platform", PLATFORMS)
        version_key = body.get("version_key")
        if not isinstance(version_key, str) or not version_key:
            raise _BadRequest("version_key is required (length >= 1)")
        limit = body.get("limit", DEFAULT_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise _BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}")
        mode = _choice(body, "mode", ("after", "before")) or "after"
        sort_by = body.get("sort_by", ["created_at:desc"])
        if not isinstance(sort_by, list) or not sort_by or sort_by[0] not in SORTS:
            raise _BadRequest(f"sort_by must be a list starting with one of {sorted(SORTS)}")
        newest_first = SORTS[sort_by[0]]
        pool = self._lists.get((version_key, session_type or "", platform), [])
        query = f"{version_key}|{session_type}|{platform}|{newest_first}"
        cursor = body.get("cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise _BadRequest("cursor must be a string")
        offset = self._offset(cursor, query) if cursor else (0 if mode == "after" else len(pool))
        start, end = (offset, offset + limit) if mode == "after" else (offset - limit, offset)
        start, end = max(0, min(start, len(pool))), max(0, min(end, len(pool)))
        with self._lock:
            recording = set(self._unfinished)
        page: JSONDict = {}
        if end < len(pool):
            page["next_cursor"] = self._cursor(end, query)
        if start > 0:
            page["prev_cursor"] = self._cursor(start, query)
        # the list is kept newest first; oldest first, offsets count from its end
        chosen = (
            pool[start:end] if newest_first else pool[len(pool) - end : len(pool) - start][::-1]
        )
        page["sessions"] = [self._record(s, s.session_id in recording) for s in chosen]
        return json_response(page)

    async def _data(self, request: web.Request) -> web.Response:
        body = await _body(request)
        session_id, version_key = body.get("session_id"), body.get("version_key")
        if not isinstance(session_id, str) or not session_id:
            raise _BadRequest("session_id is required")
        if not isinstance(version_key, str) or not version_key:
            raise _BadRequest("version_key is required (length >= 1)")
        session = self._by_id.get(session_id)
        if session is None or session.version_key != version_key:
            return _error(404, "not_found", f"session {session_id} was not found")
        field_name = "tab_id" if session.type == "web" else "recording_id"
        recording_id = body.get(field_name)
        if not isinstance(recording_id, str) or not recording_id:
            raise _BadRequest(f"{field_name} is required for {session.type} sessions")
        if recording_id not in self.recording_ids(session_id):
            return _error(404, "not_found", f"{field_name} {recording_id} was not found")
        return json_response(self.recording(session_id, recording_id))

    async def _media(self, request: web.Request) -> web.StreamResponse:
        file = self._file_at(request.path)
        if file is None:
            return s3_error(404, "NoSuchKey")
        signature = request.query.get("X-Amz-Signature", "")
        if not hmac.compare_digest(signature, self._signature(request.path)):
            return s3_error(403, "SignatureDoesNotMatch")
        if _now_ms() > self._signed_ms + self.config.media_ttl / timedelta(milliseconds=1):
            return s3_error(403, "AccessDenied")  # "Request has expired"
        return await send_file(request, file)

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Auth, rate limits and faults before the handler; rate headers on every answer."""
        if request.path.startswith("/_sim/"):
            return await handler(request)
        refusal = self._refusal(request)
        try:
            response = refusal or await handler(request)
        except _BadRequest as refused:
            response = _error(400, "bad_request", str(refused))
        except web.HTTPException as exc:
            kind = "not_found" if exc.status == 404 else "bad_request"
            response = _error(exc.status, kind, exc.reason)
        response.headers.update(self._rate_headers())
        return response

    # -- internals -----------------------------------------------------------------------

    def _refusal(self, request: web.Request) -> web.Response | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self.config.token.encode()
        ):
            return _error(401, "unauthenticated", "missing or invalid bearer token")
        if self.config.forbidden:
            return _error(403, "forbidden", "the token may not use observability APIs")
        config = self.config
        with self._lock:
            started, used = self._current_window_locked()
            if used >= config.rate_limit:
                wait = math.ceil(self._reset_locked())
                return _too_many(wait, wait)
            self._window = (started, used + 1)
            self._count += 1
            count = self._count
        if config.rate_limit_every and count % config.rate_limit_every == 0:
            return _too_many(config.retry_after_header, config.retry_after_body)
        if config.fail_every and count % config.fail_every == 0:
            reference = f"ref-{config.seed}-{count:06d}-{_hex(config.seed, 'ref', count, 4)}"
            return _error(500, "internal_error", "unexpected failure", reference_id=reference)
        if config.unavailable_every and count % config.unavailable_every == 0:
            return _error(503, "service_unavailable", "the service is temporarily unavailable")
        return None

    def _current_window_locked(self) -> tuple[float, int]:
        started = self._window[0]
        elapsed = time.monotonic() - started
        if elapsed >= self.config.rate_window_seconds:
            windows = elapsed // self.config.rate_window_seconds
            self._window = (started + windows * self.config.rate_window_seconds, 0)
        return self._window

    def _reset_locked(self) -> float:
        return self._window[0] + self.config.rate_window_seconds - time.monotonic()

    def _rate_headers(self) -> dict[str, str]:
        with self._lock:
            _, used = self._current_window_locked()
            reset = self._reset_locked()
        return {
            "X-Ratelimit-Limit": str(self.config.rate_limit),
            "X-Ratelimit-Remaining": str(max(0, self.config.rate_limit - used)),
            "X-Ratelimit-Reset": str(max(0, math.ceil(reset))),
        }

    def _record(self, session: DevRevSession, recording: bool) -> JSONDict:
        exception, anr, crash, rage = session.flags
        return {
            "type": session.type,
            "platform": session.platform,
            "session_id": session.session_id,
            "created_at": _rfc3339(session.created_ms),
            "device_metadata": dict(session.device),
            "has_exception_occurred": exception,
            "is_anr": anr,
            "is_crash": crash,
            "rage_tap": rage,
            "recording_ids": list(
                session.recording_ids[:1] if recording else session.recording_ids
            ),
            "rev_org_id": f"REV-{_hex(self.config.seed, 'org', session.index % 3, 4)}",
            "rev_user_id": session.rev_user_id,
            "session_duration_ms": 0 if recording else session.duration_ms,
        }

    def _cursor(self, offset: int, query: str) -> str:
        raw = f"{offset}:{self._checksum(offset, query)}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _offset(self, cursor: str, query: str) -> int:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            offset_text, _, checksum = raw.partition(":")
            offset = int(offset_text)
        except (ValueError, binascii.Error):
            raise _BadRequest("invalid cursor") from None
        if offset < 0 or not hmac.compare_digest(checksum, self._checksum(offset, query)):
            raise _BadRequest("invalid cursor")
        return offset

    def _checksum(self, offset: int, query: str) -> str:
        return hmac.new(self._key, f"{query}|{offset}".encode(), hashlib.sha256).hexdigest()[:16]

    def _signature(self, path: str) -> str:
        message = f"{path}|{self._signed_ms}|{self.config.media_ttl}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _expires_at(self) -> str:
        return _rfc3339(self._signed_ms + int(self.config.media_ttl / timedelta(milliseconds=1)))

    def _file_at(self, path: str) -> SimFile | None:
        if not path.startswith(MEDIA_PREFIX):
            return None
        session_id, _, filename = path[len(MEDIA_PREFIX) :].partition("/")
        if session_id not in self._by_id:
            return None
        filename = unquote(filename)
        return next((f for f in self.media_files(session_id) if f.filename == filename), None)


# -- the dataset ---------------------------------------------------------------------------

DEVICES: dict[str, tuple[tuple[str, str, str, int, int], ...]] = {
    # (manufacturer, model, os_version, screen_width, screen_height)
    "android": (("samsung", "SM-G991U", "14", 1080, 2340), ("Google", "Pixel 8", "15", 1080, 2400),
                ("Xiaomi", "Redmi Note 12", "13", 1080, 2400)),
    "ios": (("Apple", "iPhone15,2", "17.4", 1179, 2556),
            ("Apple", "iPad13,18", "16.7", 1640, 2360)),
    "web": (("Apple", "Safari 17.4", "macOS 14.4", 1440, 900),
            ("Microsoft", "Chrome 124", "Windows 11", 1920, 1080)),
}  # fmt: skip
NETWORKS = ("wifi", "cellular_5g", "cellular_4g", "ethernet")
SCREENS = ("Home", "Search results", "Product ü/ß", "Checkout", "Settings")
EVENTS = ("screen_view", "tap", "network_request", "scroll")


def _build_sessions(config: DevRevSimConfig, newest_ms: int) -> tuple[DevRevSession, ...]:
    """The dataset, newest first. Creation times strictly decrease with the index."""
    rng = random.Random(f"devrev:{config.seed}")
    span_ms = int(config.span / timedelta(milliseconds=1))
    step = max(1, span_ms // max(1, config.sessions))
    apps = len(config.version_keys)
    sessions = []
    for index in range(config.sessions):
        platform = PLATFORMS[(index // apps) % len(PLATFORMS)]
        web_session = platform == "web"
        maker, model, os_version, width, height = rng.choice(DEVICES[platform])
        device = {
            "app_version": f"{2 + index % 2}.{rng.randint(0, 9)}.{rng.randint(0, 20)}",
            "manufacturer": maker,
            "model": model,
            "network_type": "ethernet" if web_session else rng.choice(NETWORKS[:3]),
            "os_version": os_version,
            "plug_sdk_version": f"1.{rng.randint(2, 6)}.{rng.randint(0, 9)}",
            "screen_height": height,
            "screen_width": width,
            "sdk_version": "web-1.8.0" if web_session else f"{rng.randint(30, 35)}",
        }
        crash = index % 5 == 3
        sessions.append(
            DevRevSession(
                index=index,
                session_id=_uuid(config.seed, "session", index),
                version_key=config.version_keys[index % apps],
                type="web" if web_session else "mobile",
                platform=platform,
                created_ms=newest_ms - index * step - rng.randrange(step),
                duration_ms=rng.randint(5_000, 900_000),
                recording_ids=tuple(
                    ("tab-" if web_session else "") + _uuid(config.seed, f"rec{index}", n)
                    for n in range(rng.choice((1, 1, 2, 3)))
                ),
                device=device,
                flags=(
                    crash or index % 6 == 1,
                    platform == "android" and index % 11 == 5,
                    crash,
                    index % 4 == 2,
                ),
                rev_user_id=f"don:identity:dvrv-us-1:devo/{config.seed}:revu/"
                + _hex(config.seed, "user", index % 9, 4),
            )
        )
    return tuple(sessions)


def _timeline(rng: random.Random, session: DevRevSession, start_ms: int) -> list[JSONDict]:
    moment, events = start_ms, []
    for number in range(rng.randint(4, 12)):
        event: JSONDict = {
            "timestamp": _rfc3339(moment),
            "type": "screen_view" if number == 0 else rng.choice(EVENTS),
            "screen_name": rng.choice(SCREENS),
        }
        if event["type"] == "network_request":
            event |= {"url": "https://shop.example.com/api/cart", "status_code": 200}
        events.append(event)
        moment += rng.randint(50, 20_000)
    _, anr, crash, rage = session.flags
    for present, kind in ((rage, "rage_tap"), (anr, "anr"), (crash, "crash")):
        if present:
            events.append({"timestamp": _rfc3339(moment), "type": kind, "screen_name": "Checkout"})
            moment += 1
    return events


def _logs(rng: random.Random, session: DevRevSession, start_ms: int) -> list[JSONDict]:
    levels = ("debug", "info", "info", "warn")
    logs = [
        {
            "timestamp": _rfc3339(start_ms + n * rng.randint(10, 5_000)),
            "level": rng.choice(levels),
            "message": f"{session.platform}: step {n} done",
        }
        for n in range(rng.randint(1, 5))
    ]
    if session.flags[0]:
        logs.append({"timestamp": _rfc3339(start_ms), "level": "error", "message": "Exception"})
    return logs


def _hex(seed: int, kind: str, number: int, size: int) -> str:
    return hashlib.blake2b(f"{seed}:{kind}:{number}".encode(), digest_size=size).hexdigest()


def _uuid(seed: int, kind: str, number: int) -> str:
    h = _hex(seed, kind, number, 16)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


# -- HTTP helpers --------------------------------------------------------------------------


async def _body(request: web.Request) -> JSONDict:
    try:
        body = json.loads(await request.read() or b"null")
    except ValueError:
        raise _BadRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _BadRequest("the request body must be a JSON object")
    return body


def _choice(
    body: Mapping[str, Any], name: str, allowed: tuple[str, ...], *, required: bool = False
) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if value not in allowed:
        raise _BadRequest(f"{name} must be one of {', '.join(allowed)}")
    return str(value)


def _error(status: int, kind: str, message: str, **extra: Any) -> web.Response:
    detail = f"{status} {kind}: {message}"
    body = {"type": kind, "message": message, "detail": detail, **extra}
    return json_response(body, status=status)


def _too_many(header: int | None, body: int) -> web.Response:
    response = _error(429, "too_many_requests", "rate limit exceeded", retry_after=body)
    if header is not None:
        response.headers["Retry-After"] = str(header)
    return response


def _rfc3339(ms: int) -> str:
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _amz_date(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms // 1000, UTC):%Y%m%dT%H%M%SZ}"


def _now_ms() -> int:
    return int(time.time() * 1000)
