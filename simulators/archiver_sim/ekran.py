"""An Ekran System sessions API simulator, for ``archiver demo`` and the tests.

One origin, ``api``, serving ``POST /ekranapi/sessions`` (the on-premises API; SaaS has
none) with a JSON body of optional ``start``, ``end``, ``sessionCount`` and ``pageIndex``.
The vendor reference documents the request and little of the answer; where it is silent the
simulator makes a choice, listed here, and a client should not depend on more than that.

Request, as documented:

* ``start``/``end`` are strings without a time zone, ``"2021-04-01"``,
  ``"2021-04-01T12:00"`` or ``"2021-04-01T12:00:00"`` (the simulator also takes a fraction
  of a second, up to 7 digits); they are read as UTC. Anything else, including a time zone
  designator, answers 400 (the real server would probably convert it silently).
* Selection: a session is selected when it has an activity inside ``[start, end]``
  (inclusive; a missing bound is open). That covers "started or finished after ``start``"
  and "started or finished before ``end``"; a session that spans the whole window with no
  activity inside it has nothing to report and is left out. With neither bound, every
  session in the database comes back.
* Clipping: a session started before ``start`` reports the first activity at or after
  ``start`` as its ``startTime``; one finished after ``end`` reports the last activity at or
  before ``end`` as its ``endTime``; ``duration``, ``productivityTime`` and ``idleTime``
  cover only the clipped part. The same ``sessionId`` thus comes back with different times
  in different windows. ``isFinished`` describes the session, not the window: a clipped
  finished session still says ``true``.
* ``sessionCount``: 0 to 1000, default 1000; above 1000 (or negative) answers 400.
  ``pageIndex``: 0-based, default 0; a page past the end is empty. Both must be JSON
  integers (or null for the default).
* Property names are matched case-insensitively, as ASP.NET model binding does; unknown
  properties are ignored; an empty body means no parameters.

Response (the reference elides the session fields; these are the simulator's choice):
``{"sessions": [...], "totalCount": <int>}`` with ``totalCount`` the number of selected
sessions (all pages), the sessions ordered by their real (unclipped) start, oldest first,
then by ``sessionId``. Each session carries, in this order:

* ``duration``, ``productivityTime``, ``idleTime``: .NET ``TimeSpan`` strings in the
  constant ("c") format, ``[d.]hh:mm:ss[.fffffff]``: ``"20:20:40.0020000"``,
  ``"1.02:03:04.5000000"``; as .NET does, the fraction is left out when it is zero
  (``"00:00:00"``). A gap of more than ``idle_threshold`` between two activities is idle
  time, every other gap productive; the two add up to ``duration``.
* ``sessionId`` (a GUID string), ``clientName`` (the monitored computer), ``userName``,
  ``domain`` (empty for local accounts), ``osType`` (``"Windows"``, ``"Linux"``,
  ``"macOS"``), ``ipAddress``.
* ``startTime``, ``endTime``: .NET ``DateTime`` without a time zone (UTC), with the
  fraction trimmed of trailing zeros and left out when zero (``"2021-04-01T12:00:00"``,
  ``"2021-04-01T12:00:00.12"``), as Json.NET writes them.
* ``isFinished``: false for the newest ``unfinished`` sessions until :meth:`finish` or
  :meth:`finish_all`; such a live session shows only its activities so far (the first half)
  and its ``endTime`` is the last of them, or null with ``live_end_null``.

Auth is undocumented: a token in a configurable header (``X-Ekran-Token`` by default);
missing or wrong answers 401 with an empty body. Errors 400 are ASP.NET Core problem details
(``{type, title, status, errors, traceId}``); every ``fail_every``-th authenticated request
answers 500 with IIS's HTML error page. Routes under ``/_sim/`` are test helpers.

The sessions, their activities and which are live are the dataset,
:class:`~archiver_sim.ekran_data.EkranData`, built from :class:`EkranSimConfig`; this module
serves it (a page costs a slice even with 100,000 sessions).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from archiver_sim.base import FinishControl, SimulatorBase
from archiver_sim.ekran_data import EkranData, EkranSession, EkranSimConfig, inside
from archiver_sim.http import json_response

__all__ = [
    "SESSIONS_PATH",
    "EkranSimConfig",
    "EkranSimulator",
    "dotnet_datetime",
    "parse_moment",
    "timespan",
]

SESSIONS_PATH = "/ekranapi/sessions"
DEFAULT_SESSION_COUNT = 1000
MAX_SESSION_COUNT = 1000

JSONDict = dict[str, Any]


class _BadRequest(Exception):
    """A request answered with 400; ``field`` names the offending property."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class EkranSimulator(FinishControl[str], SimulatorBase):
    """The API origin's application over an :class:`EkranData` (control methods
    thread-safe)."""

    data: EkranData

    def __init__(self, config: EkranSimConfig | None = None) -> None:
        self.config = config = config or EkranSimConfig()
        super().__init__(config.request_log_limit)
        newest = _now_ms() - 3600_000 if config.newest_start_ms is None else config.newest_start_ms
        self.data = EkranData(config, newest)
        self.sessions: tuple[EkranSession, ...] = self.data.sessions
        self._idle_ms = int(config.idle_threshold / timedelta(milliseconds=1))
        self._lock = threading.Lock()  # the request count
        self._count = 0

    # -- runner protocol ---------------------------------------------------------------

    def applications(self) -> dict[str, web.Application]:
        api = self.api_application(self._gate)
        api.router.add_post(SESSIONS_PATH, self._list)
        return {"api": api}

    @property
    def sessions_url(self) -> str:
        return self.api_url + SESSIONS_PATH

    # -- the dataset as clients see it -------------------------------------------------

    def session(self, session_id: str) -> EkranSession:
        return self.data.session(session_id)

    def record(self, session_id: str) -> JSONDict:
        """The session as a request without ``start``/``end`` shows it right now (unclipped)."""
        record = self._record(self.session(session_id), self.is_unfinished(session_id), None, None)
        assert record is not None  # without a window, every session has its activities
        return record

    def activities(self, session_id: str) -> tuple[int, ...]:
        """The session's activity times (ms) visible right now."""
        return self.data.visible(self.session(session_id), self.is_unfinished(session_id))

    # -- HTTP handlers ---------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.Response:
        body = await _body(request)
        start = _moment(body.get("start"), "start", ceil=True)
        end = _moment(body.get("end"), "end", ceil=False)
        count = _integer(body, "sessionCount", DEFAULT_SESSION_COUNT)
        if not 0 <= count <= MAX_SESSION_COUNT:
            raise _BadRequest(
                "sessionCount", f"sessionCount must be from 0 to {MAX_SESSION_COUNT}."
            )
        page_index = _integer(body, "pageIndex", 0)
        if page_index < 0:
            raise _BadRequest("pageIndex", "pageIndex must be 0 or more.")
        selected = self.data.selection(start, end)
        live = self.data.unfinished.snapshot()
        chosen = selected[page_index * count : (page_index + 1) * count] if count else []
        records = [self._record(s, s.session_id in live, start, end) for s in chosen]
        return json_response({"sessions": records, "totalCount": len(selected)})

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Auth and faults before the handler; IIS headers on every answer."""
        if request.path.startswith("/_sim/"):
            return await handler(request)
        response: web.StreamResponse
        token = request.headers.get(self.config.token_header, "")
        if not hmac.compare_digest(token.encode(), self.config.token.encode()):
            response = web.Response(status=401)
        else:
            with self._lock:
                self._count += 1
                count = self._count
            if self.config.fail_every and count % self.config.fail_every == 0:
                response = web.Response(status=500, text=IIS_500, content_type="text/html")
            else:
                try:
                    response = await handler(request)
                except _BadRequest as refused:
                    response = _problem(refused.field, str(refused), count)
                except web.HTTPException as exc:
                    response = web.Response(status=exc.status, text=exc.reason)
        response.headers.update({"Server": "Microsoft-IIS/10.0", "X-Powered-By": "ASP.NET"})
        return response

    # -- internals -----------------------------------------------------------------------

    def _record(
        self, session: EkranSession, live: bool, start: int | None, end: int | None
    ) -> JSONDict | None:
        visible = self.data.visible(session, live)
        first, last = inside(visible, start, end) or (None, None)
        if first is None or last is None:
            return None
        moments = visible[first : last + 1]
        gaps = (later - earlier for earlier, later in itertools.pairwise(moments))
        idle = sum(gap for gap in gaps if gap > self._idle_ms)
        duration = moments[-1] - moments[0]
        open_end = live and self.config.live_end_null and last == len(visible) - 1
        return {
            "duration": timespan(duration),
            "productivityTime": timespan(duration - idle),
            "idleTime": timespan(idle),
            "sessionId": session.session_id,
            "clientName": session.client_name,
            "userName": session.user_name,
            "domain": session.domain,
            "osType": session.os_type,
            "ipAddress": session.ip_address,
            "startTime": dotnet_datetime(moments[0]),
            "endTime": None if open_end else dotnet_datetime(moments[-1]),
            "isFinished": not live,
        }


# -- formats -------------------------------------------------------------------------------


def timespan(ms: int) -> str:
    """A duration as .NET's ``TimeSpan.ToString()`` writes it: ``[d.]hh:mm:ss[.fffffff]``."""
    days, rest = divmod(ms, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if days:
        text = f"{days}.{text}"
    if millis:
        text += f".{millis:03d}0000"
    return text


def dotnet_datetime(ms: int) -> str:
    """A UTC moment as Json.NET writes an unspecified-kind ``DateTime``."""
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    text = f"{moment:%Y-%m-%dT%H:%M:%S}"
    fraction = f"{ms % 1000:03d}".rstrip("0")
    return f"{text}.{fraction}" if fraction else text


_MOMENT = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)(?:T(\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,7}))?)?)?", re.ASCII
)


def parse_moment(text: str, *, ceil: bool = False) -> int:
    """A documented ``start``/``end`` string (no time zone, read as UTC) in ms since the epoch.

    A fraction finer than a millisecond rounds up with ``ceil`` (a lower bound) and down
    otherwise, so that comparing with millisecond activity times stays exact.
    """
    match = _MOMENT.fullmatch(text)
    if match is None:
        raise ValueError(f"not a date or date and time without a time zone: {text!r}")
    year, month, day, hour, minute, second = (int(part or 0) for part in match.groups()[:6])
    moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    ticks = int((match.group(7) or "").ljust(7, "0"))
    millis, rest = divmod(ticks, 10_000)
    return int(moment.timestamp()) * 1000 + millis + (1 if ceil and rest else 0)


# -- HTTP helpers --------------------------------------------------------------------------

IIS_500 = """\
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" \
"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<html xmlns="http://www.w3.org/1999/xhtml">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"/>
<title>500 - Internal server error.</title>
</head>
<body>
<div id="header"><h1>Server Error</h1></div>
<div id="content">
 <div class="content-container"><fieldset>
  <h2>500 - Internal server error.</h2>
  <h3>There is a problem with the resource you are looking for, and it cannot be displayed.</h3>
 </fieldset></div>
</div>
</body>
</html>
"""


async def _body(request: web.Request) -> JSONDict:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise _BadRequest("$", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _BadRequest("$", "The request body must be a JSON object.")
    return {str(name).lower(): value for name, value in body.items()}  # names: any case


def _moment(value: Any, name: str, *, ceil: bool) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _BadRequest(name, f"{name} must be a date string such as 2021-04-01T12:00:00.")
    try:
        return parse_moment(value, ceil=ceil)
    except ValueError:
        raise _BadRequest(name, f"The value '{value}' is not valid for {name}.") from None


def _integer(body: Mapping[str, Any], name: str, default: int) -> int:
    value = body.get(name.lower())
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not -(2**31) <= value < 2**31:
        raise _BadRequest(name, f"{name} must be a 32-bit integer.")
    return value


def _problem(field: str, message: str, count: int) -> web.Response:
    trace = hashlib.blake2b(f"trace:{count}".encode(), digest_size=16).hexdigest()
    body = {
        "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        "title": "One or more validation errors occurred.",
        "status": 400,
        "errors": {field: [message]},
        "traceId": f"00-{trace}-{trace[:16]}-00",
    }
    response = json_response(body, status=400)
    response.content_type = "application/problem+json"
    return response


def _now_ms() -> int:
    return int(time.time() * 1000)
