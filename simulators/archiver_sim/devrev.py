"""A DevRev observability API simulator, for ``archiver demo`` and the tests.

Two origins: the **API origin** (``POST /observability.sessions.list`` and
``POST /observability.sessions.data.get``, ``Authorization: Bearer <token>``, JSON errors
``{type, message, detail}``, ``X-Ratelimit-*`` headers on every answer) and a **files
origin** standing in for pre-signed media URLs (``/media/...?X-Amz-Signature=...``, no
token, refused once expired).

The sessions, their recordings and which still record are the dataset,
:class:`~archiver_sim.devrev_data.DevRevData`, built from :class:`DevRevSimConfig`; this
module serves it. Every filter combination is a precomputed list there, so a cursor is an
offset into it and a page costs the same with 10 or 100,000 sessions. The media signing
time follows the clock unless ``signed_at_ms`` is set.

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
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from archiver_sim.base import FinishControl, SimulatorBase
from archiver_sim.devrev_data import (
    PLATFORMS,
    TYPES,
    DevRevData,
    DevRevSession,
    DevRevSimConfig,
    JSONDict,
    hex_id,
    rfc3339,
)
from archiver_sim.http import json_response, s3_error, send_file
from archiver_sim.perfecto_data import SimFile

__all__ = ["DATA_PATH", "LIST_PATH", "DevRevSimConfig", "DevRevSimulator"]

LIST_PATH = "/observability.sessions.list"
DATA_PATH = "/observability.sessions.data.get"
MEDIA_PREFIX = "/media/"
SORTS = {"created_at:desc": True, "created_at:asc": False}  # value: newest first
DEFAULT_LIMIT = 50
MAX_LIMIT = 100


class _BadRequest(Exception):
    """A request the API answers with 400 ``bad_request`` and this message."""


class DevRevSimulator(FinishControl[str], SimulatorBase):
    """Both origins' applications over a :class:`DevRevData` (control methods thread-safe)."""

    data: DevRevData

    def __init__(self, config: DevRevSimConfig | None = None) -> None:
        self.config = config = config or DevRevSimConfig()
        super().__init__(config.request_log_limit)
        now = _now_ms()
        newest = now - 5 * 60_000 if config.newest_created_ms is None else config.newest_created_ms
        self.data = DevRevData(config, newest)
        self.sessions: tuple[DevRevSession, ...] = self.data.sessions
        self._signed_ms = now if config.signed_at_ms is None else config.signed_at_ms
        self._key = f"devrev-sim-{config.seed}".encode()
        self._lock = threading.Lock()  # the request count and the rate window
        self._count = 0
        self._window = (time.monotonic(), 0)  # (start, requests used in it)

    # -- runner protocol ---------------------------------------------------------------

    def applications(self) -> dict[str, web.Application]:
        api = self.api_application(self._gate)
        api.router.add_post(LIST_PATH, self._list)
        api.router.add_post(DATA_PATH, self._data)
        files = web.Application(middlewares=[self.request_log.recorder("files")])
        files.router.add_get(MEDIA_PREFIX + "{session_id}/{filename}", self._media)
        return {"api": api, "files": files}

    def bind(self, base_urls: Mapping[str, str]) -> None:
        super().bind(base_urls)
        with self._lock:
            self._window = (time.monotonic(), 0)

    # -- the dataset as clients see it -------------------------------------------------

    def session(self, session_id: str) -> DevRevSession:
        return self.data.session(session_id)

    def record(self, session_id: str) -> JSONDict:
        """The session as ``sessions.list`` shows it right now."""
        return self._record(self.session(session_id), self.is_unfinished(session_id))

    def recording_ids(self, session_id: str) -> tuple[str, ...]:
        """The recording (or tab) ids listed right now: only the first while recording."""
        return self.data.recording_ids(self.session(session_id), self.is_unfinished(session_id))

    def recording(self, session_id: str, recording_id: str) -> JSONDict:
        """What ``sessions.data.get`` returns for one recording (or tab) of the session."""
        session = self.session(session_id)
        timeline, logs = self.data.recording_content(session, recording_id)
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
        return self.data.media_files(session_id)

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

    def served_file(self, url: str) -> SimFile | None:
        return self._file_at(urlsplit(url).path)

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
        pool = self.data.listing(version_key, session_type or "", platform)
        query = f"{version_key}|{session_type}|{platform}|{newest_first}"
        cursor = body.get("cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise _BadRequest("cursor must be a string")
        offset = self._offset(cursor, query) if cursor else (0 if mode == "after" else len(pool))
        start, end = (offset, offset + limit) if mode == "after" else (offset - limit, offset)
        start, end = max(0, min(start, len(pool))), max(0, min(end, len(pool)))
        recording = self.data.unfinished.snapshot()
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
        session = self.data.find(session_id)
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
            reference = f"ref-{config.seed}-{count:06d}-{hex_id(config.seed, 'ref', count, 4)}"
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
            "created_at": rfc3339(session.created_ms),
            "device_metadata": dict(session.device),
            "has_exception_occurred": exception,
            "is_anr": anr,
            "is_crash": crash,
            "rage_tap": rage,
            "recording_ids": list(self.data.recording_ids(session, recording)),
            "rev_org_id": f"REV-{hex_id(self.config.seed, 'org', session.index % 3, 4)}",
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
        return rfc3339(self._signed_ms + int(self.config.media_ttl / timedelta(milliseconds=1)))

    def _file_at(self, path: str) -> SimFile | None:
        if not path.startswith(MEDIA_PREFIX):
            return None
        session_id, _, filename = path[len(MEDIA_PREFIX) :].partition("/")
        return self.data.media_file(session_id, unquote(filename))


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


def _amz_date(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms // 1000, UTC):%Y%m%dT%H%M%SZ}"


def _now_ms() -> int:
    return int(time.time() * 1000)
