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

Everything derives from :class:`EkranSimConfig`: the same config gives the same ids and JSON
(times follow the clock unless ``newest_start_ms`` is set). Starts are kept sorted, a window
is found by bisection and its selection is cached per window and live state, so a page costs
a slice even with 100,000 sessions.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import itertools
import json
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from archiver_sim.http import json_response
from archiver_sim.requestlog import RequestLog, RequestLogged

SESSIONS_PATH = "/ekranapi/sessions"
DEFAULT_SESSION_COUNT = 1000
MAX_SESSION_COUNT = 1000
OS_TYPES = ("Windows", "Windows", "Windows", "Linux", "macOS")
MAX_ACTIVITIES = 40
LONG_EVERY = 17  # every 17th session (from the 10th) lasts more than a day
SELECTION_CACHE = 64

JSONDict = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class EkranSimConfig:
    """The simulated Ekran System database. Defaults suit a demo: 40 sessions over a week.

    ``unfinished``: the newest K sessions are still running (live) until ``finish``.
    ``idle_threshold``: a longer gap between activities counts as idle time.
    """

    seed: int = 11
    sessions: int = 40
    span: timedelta = timedelta(days=7)
    newest_start_ms: int | None = None  # None: one hour before the simulator is built
    token: str = "ekran-sim-token"  # noqa: S105 (the simulator's own)
    token_header: str = "X-Ekran-Token"  # noqa: S105 (a header name)
    unfinished: int = 0
    live_end_null: bool = False
    idle_threshold: timedelta = timedelta(minutes=5)
    fail_every: int = 0
    request_log_limit: int = 50_000

    def __post_init__(self) -> None:
        if min(self.sessions, self.unfinished, self.fail_every) < 0:
            raise ValueError("sessions, unfinished and fail_every must be >= 0")
        if not self.token_header or not self.token:
            raise ValueError("token_header and token must not be empty")
        if self.span <= timedelta(0) or self.idle_threshold < timedelta(0):
            raise ValueError("span must be > 0 and idle_threshold >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class EkranSession:
    """One simulated session; ``index`` is its position in the newest-first dataset.

    ``activities`` are the times (ms since the epoch) of its recorded activities, strictly
    increasing: the first is the start, the last the end. While live, only the first
    ``live_visible`` of them exist.
    """

    index: int
    session_id: str
    client_name: str
    user_name: str
    domain: str
    os_type: str
    ip_address: str
    activities: tuple[int, ...]
    live_visible: int

    @property
    def start_ms(self) -> int:
        return self.activities[0]

    @property
    def end_ms(self) -> int:
        return self.activities[-1]


class _BadRequest(Exception):
    """A request answered with 400; ``field`` names the offending property."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class EkranSimulator(RequestLogged):
    """The dataset, its live sessions and the API origin's application (thread-safe)."""

    def __init__(self, config: EkranSimConfig | None = None) -> None:
        self.config = config = config or EkranSimConfig()
        newest = _now_ms() - 3600_000 if config.newest_start_ms is None else config.newest_start_ms
        self.sessions: tuple[EkranSession, ...] = _build_sessions(config, newest)
        self._by_id = {session.session_id: session for session in self.sessions}
        self._ascending = tuple(sorted(self.sessions, key=lambda s: (s.start_ms, s.session_id)))
        self._starts = [session.start_ms for session in self._ascending]
        self._longest = max((s.end_ms - s.start_ms for s in self.sessions), default=0)
        self._idle_ms = int(config.idle_threshold / timedelta(milliseconds=1))
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()
        self._unfinished = {s.session_id for s in self.sessions[: config.unfinished]}
        self._generation = 0  # bumped whenever a live session finishes
        self._selections: OrderedDict[tuple[int | None, int | None, int], list[EkranSession]]
        self._selections = OrderedDict()
        self._count = 0
        self.request_log = RequestLog(config.request_log_limit)

    # -- runner protocol ---------------------------------------------------------------

    def applications(self) -> dict[str, web.Application]:
        api = web.Application(middlewares=[self.request_log.recorder("api"), self._gate])
        api.router.add_post(SESSIONS_PATH, self._list)
        api.router.add_get("/_sim/requests", self.request_log.serve)
        return {"api": api}

    def bind(self, base_urls: Mapping[str, str]) -> None:
        self._urls = dict(base_urls)

    @property
    def api_url(self) -> str:
        return self._urls["api"]

    @property
    def sessions_url(self) -> str:
        return self.api_url + SESSIONS_PATH

    # -- control (thread-safe) -----------------------------------------------------------

    def is_unfinished(self, session_id: str) -> bool:
        self.session(session_id)
        with self._lock:
            return session_id in self._unfinished

    def finish(self, session_id: str) -> None:
        """End a live session: all its activities appear and ``isFinished`` turns true."""
        self.session(session_id)
        with self._lock:
            if session_id in self._unfinished:
                self._unfinished.discard(session_id)
                self._generation += 1

    def finish_all(self) -> None:
        with self._lock:
            if self._unfinished:
                self._unfinished.clear()
                self._generation += 1

    # -- the dataset as clients see it -------------------------------------------------

    def session(self, session_id: str) -> EkranSession:
        try:
            return self._by_id[session_id]
        except KeyError:
            raise KeyError(f"no simulated session {session_id!r}") from None

    def record(self, session_id: str) -> JSONDict:
        """The session as a request without ``start``/``end`` shows it right now (unclipped)."""
        session = self.session(session_id)
        with self._lock:
            live = session_id in self._unfinished
        record = self._record(session, live, None, None)
        assert record is not None  # without a window, every session has its activities
        return record

    def activities(self, session_id: str) -> tuple[int, ...]:
        """The session's activity times (ms) visible right now."""
        session = self.session(session_id)
        return _visible(session, self.is_unfinished(session_id))

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
        with self._lock:
            selected = self._selection_locked(start, end)
            live = set(self._unfinished)
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

    def _selection_locked(self, start: int | None, end: int | None) -> list[EkranSession]:
        """The sessions with a visible activity in ``[start, end]``, oldest first (cached)."""
        key = (start, end, self._generation)
        selected = self._selections.get(key)
        if selected is not None:
            self._selections.move_to_end(key)
            return selected
        # a session with an activity at or after start began at most `longest` before it
        low = 0 if start is None else bisect.bisect_left(self._starts, start - self._longest)
        high = len(self._starts) if end is None else bisect.bisect_right(self._starts, end)
        selected = []
        for session in self._ascending[low:high]:
            visible = _visible(session, session.session_id in self._unfinished)
            if (start is None or visible[0] >= start) and (end is None or visible[-1] <= end):
                selected.append(session)  # entirely inside: no need to look further
            elif _inside(visible, start, end):
                selected.append(session)
        self._selections[key] = selected
        while len(self._selections) > SELECTION_CACHE:
            self._selections.popitem(last=False)
        return selected

    def _record(
        self, session: EkranSession, live: bool, start: int | None, end: int | None
    ) -> JSONDict | None:
        visible = _visible(session, live)
        first, last = _inside(visible, start, end) or (None, None)
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


def _visible(session: EkranSession, live: bool) -> tuple[int, ...]:
    return session.activities[: session.live_visible] if live else session.activities


def _inside(moments: Sequence[int], start: int | None, end: int | None) -> tuple[int, int] | None:
    """Indexes of the first and last of ``moments`` inside ``[start, end]``, if any."""
    first = 0 if start is None else bisect.bisect_left(moments, start)
    last = len(moments) - 1 if end is None else bisect.bisect_right(moments, end) - 1
    return (first, last) if first <= last else None


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


# -- the dataset ---------------------------------------------------------------------------

USERS = ("alice.moreau", "bob", "jürgen.müller", "chen.wei", "svc-backup", "admin", "o.ivanova")


def _build_sessions(config: EkranSimConfig, newest_ms: int) -> tuple[EkranSession, ...]:
    """The dataset, newest first. Starts strictly decrease with the index; nothing ends more
    than an hour after ``newest_ms``."""
    rng = random.Random(f"ekran:{config.seed}")
    span_ms = int(config.span / timedelta(milliseconds=1))
    step = max(1, span_ms // max(1, config.sessions))
    horizon = newest_ms + 3600_000
    sessions = []
    for index in range(config.sessions):
        start = newest_ms - index * step - rng.randrange(step)
        if index % LONG_EVERY == 9:
            duration = rng.randint(24 * 3600_000, 48 * 3600_000)
        else:
            duration = rng.randint(60_000, 10 * 3600_000)
        duration = max(1, min(duration, horizon - start))
        activities = _activities(rng, start, duration)
        os_type = OS_TYPES[rng.randrange(len(OS_TYPES))]
        user = USERS[rng.randrange(len(USERS))]
        local = os_type != "Windows" or user == "admin"
        prefix = {"Windows": "WS", "Linux": "srv", "macOS": "MBP"}[os_type]
        sessions.append(
            EkranSession(
                index=index,
                session_id=_guid(config.seed, index),
                client_name=f"{prefix}-{rng.choice(('FIN', 'OPS', 'DEV', 'HR'))}-{index % 23:03d}",
                user_name=user,
                domain="" if local else rng.choice(("CORP", "EU.CORP")),
                os_type=os_type,
                ip_address=f"10.{rng.randint(0, 40)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}",
                activities=activities,
                live_visible=max(1, (len(activities) + 1) // 2),
            )
        )
    return tuple(sessions)


def _activities(rng: random.Random, start: int, duration: int) -> tuple[int, ...]:
    """Strictly increasing moments from ``start`` to ``start + duration``, some gaps idle."""
    count = max(2, min(MAX_ACTIVITIES, duration // 180_000 + 2))
    weights = [rng.expovariate(1.0) * (15 if rng.random() < 0.15 else 1) for _ in range(count - 1)]
    total = sum(weights) or 1.0
    moments, elapsed = [start], 0.0
    for weight in weights[:-1]:
        elapsed += weight
        moment = start + int(duration * elapsed / total)
        if moments[-1] < moment < start + duration:
            moments.append(moment)
    moments.append(start + duration)
    return tuple(moments)


def _guid(seed: int, index: int) -> str:
    h = hashlib.blake2b(f"ekran:{seed}:session:{index}".encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:]}"


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
