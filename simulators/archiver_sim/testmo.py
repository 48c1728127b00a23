"""A Testmo REST API simulator (sessions), for ``archiver demo`` and the tests.

One origin, ``api``, serving ``GET /api/v1/projects/{project_id}/sessions`` (paged with
``page``/``per_page``, filters ``is_closed``, ``created_after``/``created_before``,
``closed_after``/``closed_before``, ``sort``, ``order``, ``expands``) and
``GET /api/v1/sessions/{session_id}``. Auth is ``Authorization: Bearer <token>``. Error
bodies are undocumented; the simulator answers Laravel-style JSON: ``{"message": ...}``, and
for 422 also ``{"errors": {field: [messages]}}``.

Everything derives from :class:`TestmoSimConfig`: the same config gives the same ids and
JSON (creation times follow the clock unless ``newest_created_s`` is set). Timestamps have
whole-second precision, as a database ``TIMESTAMP`` column has, so several sessions can
share a ``closed_at``. Whether ``*_after``/``*_before`` bounds are inclusive is undocumented:
``inclusive_bounds`` picks (default: inclusive).

Sessions can be closed and re-opened while the simulator runs (closed by
:meth:`TestmoSimulator.finish` and :meth:`TestmoSimulator.finish_all`, re-opened by
:meth:`TestmoSimulator.set_unfinished`); every listing is computed once per filter combination
and state of the dataset, so a page costs a slice even with 100,000 sessions.

Every ``rate_limit_every``-th authenticated request answers 429 (``Retry-After:
retry_after``, or no header when it is None). Routes under ``/_sim/`` are test helpers, not
part of the vendor API.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from archiver_sim.http import json_response
from archiver_sim.requestlog import RequestLog, RequestLogged

API_PREFIX = "/api/v1"
SESSIONS_PATH = API_PREFIX + "/projects/{project_id}/sessions"
SESSION_PATH = API_PREFIX + "/sessions/{session_id}"
PER_PAGE_CHOICES = (15, 25, 50, 100)
DEFAULT_PER_PAGE = 100
SORT_CREATED = "sessions:created_at"
SORT_CLOSED = "sessions:closed_at"
SORTS = (SORT_CREATED, SORT_CLOSED)
ORDERS = ("asc", "desc")
EXPANDS = (
    "configs",
    "field_values",
    "issues",
    "milestones",
    "states",
    "statuses",
    "templates",
    "users",
)
STATUS_COUNT = 24
LISTING_CACHE_SIZE = 256

JSONDict = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class TestmoSimConfig:
    """The simulated Testmo instance. Defaults suit a demo: two projects, two dozen sessions.

    Sessions (ids 1.., oldest first) are spread over ``project_ids`` in turn, created over
    ``span`` up to ``newest_created_s`` (unix seconds; None: 30 minutes before the simulator
    is built). All are closed except the newest ``unfinished``, which are open. Projects in
    ``forbidden_project_ids`` (a subset of ``project_ids``) exist but answer 403.
    ``retry_after`` is the ``Retry-After`` header of the periodic 429s (None: no header).
    """

    __test__ = False  # not a pytest test class

    seed: int = 11
    sessions: int = 24
    project_ids: tuple[int, ...] = (1, 5)
    forbidden_project_ids: tuple[int, ...] = ()
    span: timedelta = timedelta(days=7)
    newest_created_s: int | None = None
    unfinished: int = 0
    users: int = 6
    token: str = "testmo-sim-token"  # noqa: S105 (the simulator's own)
    inclusive_bounds: bool = True
    rate_limit_every: int = 0
    retry_after: int | None = 1
    request_log_limit: int = 50_000

    def __post_init__(self) -> None:
        counts = (self.sessions, self.unfinished, self.rate_limit_every)
        if min(counts) < 0 or (self.retry_after is not None and self.retry_after < 0):
            raise ValueError("sessions, unfinished, rate_limit_every, retry_after must be >= 0")
        if not self.project_ids or min(self.project_ids) < 1:
            raise ValueError("project_ids must hold at least one positive id")
        if len(set(self.project_ids)) != len(self.project_ids):
            raise ValueError("project_ids must be distinct")
        if not set(self.forbidden_project_ids) <= set(self.project_ids):
            raise ValueError("forbidden_project_ids must be a subset of project_ids")
        if self.users < 1:
            raise ValueError("users must be >= 1")
        if self.span <= timedelta(0):
            raise ValueError("span must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class TestmoSession:
    """One simulated session as generated; ``index`` is its position, newest first.

    ``closed_at``/``closed_by``/``updated_at``/``updated_by`` are the generated values (unix
    seconds); :meth:`TestmoSimulator.record` shows the current ones.
    """

    __test__ = False  # not a pytest test class

    index: int
    id: int
    project_id: int
    name: str
    template_id: int
    state_id: int
    config_id: int | None
    milestone_id: int | None
    assignee_id: int | None
    estimate: int | None
    forecast: int | None
    elapsed: int
    tags: tuple[str, ...]
    counts: tuple[int, ...]  # untested, status1 ... status24
    created_at: int
    created_by: int
    updated_at: int | None
    updated_by: int | None
    closed_at: int | None
    closed_by: int | None
    issue_ids: tuple[int, ...]
    field_value_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _State:
    """The mutable part of a session."""

    closed_at: int | None
    closed_by: int | None
    updated_at: int | None
    updated_by: int | None


@dataclass(frozen=True, slots=True)
class _Query:
    """One listing's filters and order (bounds in microseconds since the epoch)."""

    project_id: int
    is_closed: bool | None
    created_after: int | None
    created_before: int | None
    closed_after: int | None
    closed_before: int | None
    sort: str
    descending: bool


class _Refused(Exception):
    """Answer ``status`` with ``{"message": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Invalid(Exception):
    """A 422 validation failure: messages by parameter."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        super().__init__("invalid request")
        self.errors = dict(errors)


class TestmoSimulator(RequestLogged):
    """The dataset, its open/closed state and the API application (thread-safe)."""

    __test__ = False  # not a pytest test class

    def __init__(self, config: TestmoSimConfig | None = None) -> None:
        self.config = config = config or TestmoSimConfig()
        now = int(time.time())
        newest = now - 30 * 60 if config.newest_created_s is None else config.newest_created_s
        self.sessions: tuple[TestmoSession, ...] = _build_sessions(config, newest)
        self._by_id = {session.id: session for session in self.sessions}
        self._by_project: dict[int, list[TestmoSession]] = {p: [] for p in config.project_ids}
        for session in self.sessions:
            self._by_project[session.project_id].append(session)
        self._state = {
            s.id: _State(s.closed_at, s.closed_by, s.updated_at, s.updated_by)
            for s in self.sessions
        }
        self._listings: OrderedDict[_Query, list[TestmoSession]] = OrderedDict()
        self._last_closed: dict[int, int] = {}  # the closed_at before the latest re-opening
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()
        self._count = 0
        self.request_log = RequestLog(config.request_log_limit)

    # -- runner protocol ---------------------------------------------------------------

    def applications(self) -> dict[str, web.Application]:
        api = web.Application(middlewares=[self.request_log.recorder("api"), self._gate])
        api.router.add_get(SESSIONS_PATH.replace("{project_id}", r"{project_id:\d+}"), self._list)
        api.router.add_get(SESSION_PATH.replace("{session_id}", r"{session_id:\d+}"), self._get)
        api.router.add_get("/_sim/requests", self.request_log.serve)
        return {"api": api}

    def bind(self, base_urls: Mapping[str, str]) -> None:
        self._urls = dict(base_urls)

    @property
    def api_url(self) -> str:
        """The origin, ``http://127.0.0.1:PORT`` (a real one is ``https://NAME.testmo.net``)."""
        return self._urls["api"]

    @property
    def base_url(self) -> str:
        """The API base, ``{api_url}/api/v1``."""
        return self.api_url + API_PREFIX

    # -- control (thread-safe) -----------------------------------------------------------

    def is_unfinished(self, session_id: int) -> bool:
        """Whether the session is open (``closed_at`` null)."""
        self.session(session_id)
        with self._lock:
            return self._state[session_id].closed_at is None

    def finish(self, session_id: int, *, by: int = 1) -> str:
        """Close the session now (no-op when closed); returns its ``closed_at``.

        Re-closing a re-opened session always gives a later ``closed_at`` than before.
        """
        session = self.session(session_id)
        with self._lock:
            closed_at = self._close_locked(session, by, int(time.time()))
        return _format_time(closed_at)

    def finish_all(self, *, by: int = 1) -> list[int]:
        """Close every open session; returns their ids."""
        now = int(time.time())
        with self._lock:
            opened = [s for s in self.sessions if self._state[s.id].closed_at is None]
            for session in opened:
                self._close_locked(session, by, now)
        return [session.id for session in opened]

    def set_unfinished(self, session_id: int, *, by: int = 1) -> None:
        """Re-open the session (no-op when open): ``closed_at``/``closed_by`` become null."""
        self.session(session_id)
        now = int(time.time())
        with self._lock:
            state = self._state[session_id]
            if state.closed_at is not None:
                self._set_locked(session_id, _State(None, None, max(now, state.closed_at), by))
                self._last_closed[session_id] = state.closed_at

    # -- the dataset as clients see it -------------------------------------------------

    def session(self, session_id: int) -> TestmoSession:
        try:
            return self._by_id[session_id]
        except KeyError:
            raise KeyError(f"no simulated session {session_id!r}") from None

    def project_sessions(self, project_id: int) -> list[TestmoSession]:
        """The project's sessions, newest first."""
        return list(self._by_project[project_id])

    def record(self, session_id: int) -> JSONDict:
        """The session as listings and ``GET /sessions/{id}`` show it right now."""
        session = self.session(session_id)
        with self._lock:
            return _record(session, self._state[session_id])

    def full_record(self, session_id: int, expands: Iterable[str] = ()) -> JSONDict:
        """What ``GET /sessions/{id}?expands=...`` returns right now."""
        names = _expand_names(expands)
        record = self.record(session_id)
        return {"result": record, "expands": self._expands([record], names)}

    # -- HTTP handlers ---------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.Response:
        project_id = int(request.match_info["project_id"])
        self._check_project(project_id)
        query, page, per_page, names = self._parse_listing(project_id, request.query)
        start = (page - 1) * per_page
        with self._lock:
            matching = self._listing_locked(query)
            total = len(matching)
            records = [_record(s, self._state[s.id]) for s in matching[start : start + per_page]]
        last_page = max(1, math.ceil(total / per_page))
        return json_response(
            {
                "page": page,
                "prev_page": page - 1 if page > 1 else None,
                "next_page": page + 1 if page < last_page else None,
                "last_page": last_page,
                "per_page": per_page,
                "total": total,
                "result": records,
                "expands": self._expands(records, names),
            }
        )

    async def _get(self, request: web.Request) -> web.Response:
        session = self._by_id.get(int(request.match_info["session_id"]))
        if session is None:
            raise _Refused(404, "Not found.")
        self._check_project(session.project_id)
        errors: dict[str, list[str]] = {}
        names = _parse_expands(request.query, errors)
        if errors:
            raise _Invalid(errors)
        record = self.record(session.id)
        return json_response({"result": record, "expands": self._expands([record], names)})

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Auth and the periodic 429 before the handler; JSON for every error."""
        if request.path.startswith("/_sim/"):
            return await handler(request)
        try:
            self._admit(request)
            return await handler(request)
        except _Refused as refused:
            response = json_response({"message": refused.message}, status=refused.status)
            if refused.status == 429 and self.config.retry_after is not None:
                response.headers["Retry-After"] = str(self.config.retry_after)
            return response
        except _Invalid as invalid:
            return json_response(_invalid_body(invalid.errors), status=422)
        except web.HTTPException as exc:
            message = "Not found." if exc.status == 404 else exc.reason
            return json_response({"message": message}, status=exc.status)

    # -- internals -----------------------------------------------------------------------

    def _admit(self, request: web.Request) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self.config.token.encode()
        ):
            raise _Refused(401, "Unauthenticated.")
        with self._lock:
            self._count += 1
            count = self._count
        every = self.config.rate_limit_every
        if every and count % every == 0:
            raise _Refused(429, "Too Many Attempts.")

    def _check_project(self, project_id: int) -> None:
        if project_id not in self._by_project:
            raise _Refused(404, "Not found.")
        if project_id in self.config.forbidden_project_ids:
            raise _Refused(403, "This action is unauthorized.")

    def _parse_listing(
        self, project_id: int, params: Mapping[str, str]
    ) -> tuple[_Query, int, int, tuple[str, ...]]:
        errors: dict[str, list[str]] = {}
        page = _integer(params, "page", 1, errors)
        if page is not None and page < 1:
            errors["page"] = ["The page must be at least 1."]
        per_page = _integer(params, "per_page", DEFAULT_PER_PAGE, errors)
        if per_page is not None and per_page not in PER_PAGE_CHOICES:
            errors["per_page"] = ["The selected per page is invalid."]
        is_closed: bool | None = None
        if "is_closed" in params:
            flag = params["is_closed"]
            if flag not in ("0", "1"):
                errors["is_closed"] = ["The is closed field must be true or false."]
            is_closed = flag == "1"
        bounds = {
            name: _time_param(params, name, errors)
            for name in ("created_after", "created_before", "closed_after", "closed_before")
        }
        sort = params.get("sort", SORT_CREATED)
        if sort not in SORTS:
            errors["sort"] = ["The selected sort is invalid."]
        order = params.get("order", "desc")
        if order not in ORDERS:
            errors["order"] = ["The selected order is invalid."]
        names = _parse_expands(params, errors)
        if errors or page is None or per_page is None:
            raise _Invalid(errors)
        query = _Query(
            project_id,
            is_closed,
            bounds["created_after"],
            bounds["created_before"],
            bounds["closed_after"],
            bounds["closed_before"],
            sort,
            order == "desc",
        )
        return query, page, per_page, names

    def _listing_locked(self, query: _Query) -> list[TestmoSession]:
        """The sessions matching ``query``, in order; computed once per dataset state."""
        cached = self._listings.get(query)
        if cached is not None:
            self._listings.move_to_end(query)
            return cached
        state, inclusive = self._state, self.config.inclusive_bounds

        def within(moment: int | None, after: int | None, before: int | None) -> bool:
            if after is None and before is None:
                return True
            if moment is None:
                return False
            micros = moment * 1_000_000
            if inclusive:
                return (after is None or micros >= after) and (before is None or micros <= before)
            return (after is None or micros > after) and (before is None or micros < before)

        chosen = [
            s
            for s in self._by_project[query.project_id]
            if (query.is_closed is None or (state[s.id].closed_at is not None) == query.is_closed)
            and within(s.created_at, query.created_after, query.created_before)
            and within(state[s.id].closed_at, query.closed_after, query.closed_before)
        ]  # newest created first
        if query.sort == SORT_CLOSED:
            # as MySQL orders: nulls (open sessions) first ascending, last descending
            def closed_key(session: TestmoSession) -> tuple[bool, int, int]:
                closed_at = state[session.id].closed_at
                return closed_at is not None, closed_at or 0, session.id

            chosen.sort(key=closed_key, reverse=query.descending)
        elif not query.descending:
            chosen.reverse()
        self._listings[query] = chosen
        if len(self._listings) > LISTING_CACHE_SIZE:
            self._listings.popitem(last=False)
        return chosen

    def _close_locked(self, session: TestmoSession, by: int, now: int) -> int:
        state = self._state[session.id]
        if state.closed_at is not None:
            return state.closed_at
        floor = max(session.created_at, self._last_closed.get(session.id, session.created_at))
        closed_at = max(now, floor + 1)
        self._set_locked(session.id, _State(closed_at, by, closed_at, by))
        return closed_at

    def _set_locked(self, session_id: int, state: _State) -> None:
        self._state[session_id] = state
        self._listings.clear()

    def _expands(self, records: Sequence[JSONDict], names: tuple[str, ...]) -> JSONDict:
        expands: JSONDict = {}
        sessions = [self._by_id[record["id"]] for record in records]
        for name in names:
            objects: dict[int, JSONDict] = {}
            if name == "users":
                for record in records:
                    for key in ("assignee_id", "created_by", "updated_by", "closed_by"):
                        if record[key] is not None:
                            objects[record[key]] = _user(record[key])
            elif name == "milestones":
                for s in sessions:
                    if s.milestone_id is not None:
                        objects[s.milestone_id] = _milestone(s.milestone_id, s.project_id)
            elif name == "configs":
                for s in sessions:
                    if s.config_id is not None:
                        objects[s.config_id] = _config(s.config_id)
            elif name == "states":
                objects = {s.state_id: _workflow_state(s.state_id) for s in sessions}
            elif name == "statuses":
                for s in sessions:
                    for number, count in enumerate(s.counts[1:], start=1):
                        if count:
                            objects[number] = _status(number)
            elif name == "templates":
                objects = {s.template_id: _template(s.template_id) for s in sessions}
            elif name == "issues":
                for s in sessions:
                    objects |= {i: _issue(i, s) for i in s.issue_ids}
            elif name == "field_values":
                for s in sessions:
                    objects |= {i: _field_value(i, s) for i in s.field_value_ids}
            expands[name] = {str(key): objects[key] for key in sorted(objects)}
        return expands


# -- the dataset ---------------------------------------------------------------------------

TOPICS = (
    "Checkout flow",
    "Onboarding",
    "Search filters",
    "Payments ü/ß",
    "Accessibility pass",
    "Offline mode",
    "Release smoke",
)
TAGS = ("exploratory", "regression", "mobile", "web", "release", "a11y")
USER_NAMES = ("Ada Admin", "Bo Tester", "Chen Li", "Dana Ölund", "Eli Ruiz", "Fay Noor")
STATUSES = (  # (name, color, is_success, is_failure) for status ids 1..5; then custom ones
    ("Passed", "#4caf50", True, False),
    ("Failed", "#f44336", False, True),
    ("Retest", "#ff9800", False, False),
    ("Blocked", "#9c27b0", False, True),
    ("Skipped", "#9e9e9e", False, False),
)
STATES = ("New", "In progress", "Review", "Done")
TEMPLATES = ("Exploratory session", "Bug bash")
CONFIGS = ("Chrome / Windows 11", "Safari / macOS 14", "iOS 17 / iPhone 15", "Android 14")


def _build_sessions(config: TestmoSimConfig, newest_s: int) -> tuple[TestmoSession, ...]:
    """The dataset, newest first: creation times strictly decrease with the index."""
    rng = random.Random(f"testmo:{config.seed}")
    count = config.sessions
    as_of = newest_s + 30 * 60  # no generated time is later than this
    step = max(1, int(config.span.total_seconds()) // max(1, count))
    sessions = []
    projects = config.project_ids
    for index in range(count):
        session_id = count - index
        project_id = projects[(session_id - 1) % len(projects)]
        created = newest_s - index * step - (rng.randrange(step) if index else 0)
        is_open = index < config.unfinished
        total = rng.randint(0, 12)
        untested = rng.randint(0, total) if is_open else (total // 5 if index % 7 == 3 else 0)
        counts = [untested] + [0] * STATUS_COUNT
        for _ in range(total - untested):
            counts[rng.choice((1, 1, 1, 2, 3, 4, 5, 7))] += 1
        elapsed = rng.randint(60, max(60, min(4 * 3600, as_of - created - 1)))
        user = 1 + rng.randrange(config.users)
        closed_at = closed_by = None
        if not is_open:
            closed_at, closed_by = created + elapsed, 1 + rng.randrange(config.users)
        updated_at = updated_by = None
        if index % 4 == 1:
            updated_at, updated_by = created + elapsed // 2, user
        sessions.append(
            TestmoSession(
                index=index,
                id=session_id,
                project_id=project_id,
                name=f"{rng.choice(TOPICS)} {session_id}",
                template_id=1 + session_id % len(TEMPLATES),
                state_id=1 + rng.randrange(len(STATES)),
                config_id=None if index % 5 == 4 else 1 + rng.randrange(len(CONFIGS)),
                milestone_id=None if index % 3 == 2 else project_id * 100 + 1 + index % 3,
                assignee_id=None if index % 6 == 5 else user,
                estimate=None if index % 4 == 3 else rng.choice((1800, 3600, 5400, 7200)),
                forecast=None if index % 4 == 3 else rng.randint(1200, 7200),
                elapsed=elapsed,
                tags=tuple(sorted(rng.sample(TAGS, rng.randint(0, 2)))),
                counts=tuple(counts),
                created_at=created,
                created_by=user,
                updated_at=updated_at,
                updated_by=updated_by,
                closed_at=closed_at,
                closed_by=closed_by,
                issue_ids=tuple(session_id * 4 + n for n in range(index % 3)),
                field_value_ids=tuple(session_id * 2 + n for n in range(1 + index % 2)),
            )
        )
    return tuple(sessions)


def _record(session: TestmoSession, state: _State) -> JSONDict:
    untested, *statuses = session.counts
    success = sum(c for n, c in enumerate(statuses, start=1) if _status_flags(n)[0])
    failure = sum(c for n, c in enumerate(statuses, start=1) if _status_flags(n)[1])
    total = sum(session.counts)
    record: JSONDict = {
        "id": session.id,
        "project_id": session.project_id,
        "name": session.name,
        "template_id": session.template_id,
        "state_id": session.state_id,
        "config_id": session.config_id,
        "milestone_id": session.milestone_id,
        "assignee_id": session.assignee_id,
        "estimate": session.estimate,
        "forecast": session.forecast,
        "elapsed": session.elapsed,
        "tags": list(session.tags),
        "is_closed": state.closed_at is not None,
        "untested_count": untested,
    }
    for number, count in enumerate(statuses, start=1):
        record[f"status{number}_count"] = count
    record |= {
        "success_count": success,
        "failure_count": failure,
        "completed_count": total - untested,
        "total_count": total,
        "created_at": _timestamp(session.created_at),
        "created_by": session.created_by,
        "updated_at": _timestamp(state.updated_at),
        "updated_by": state.updated_by,
        "closed_at": _timestamp(state.closed_at),
        "closed_by": state.closed_by,
    }
    return record


def _status_flags(number: int) -> tuple[bool, bool]:
    if number <= len(STATUSES):
        _, _, success, failure = STATUSES[number - 1]
        return success, failure
    return False, False


def _user(user_id: int) -> JSONDict:
    name = USER_NAMES[(user_id - 1) % len(USER_NAMES)]
    handle = name.split()[0].lower()
    return {
        "id": user_id,
        "name": name,
        "email": f"{handle}{user_id}@example.com",
        "is_active": True,
        "role_id": 1 if user_id == 1 else 3,
        "timezone": "UTC",
    }


def _milestone(milestone_id: int, project_id: int) -> JSONDict:
    number = milestone_id % 100
    return {
        "id": milestone_id,
        "project_id": project_id,
        "name": f"Release 2.{number}",
        "is_started": True,
        "is_completed": number == 1,
    }


def _config(config_id: int) -> JSONDict:
    return {"id": config_id, "name": CONFIGS[(config_id - 1) % len(CONFIGS)]}


def _workflow_state(state_id: int) -> JSONDict:
    return {"id": state_id, "name": STATES[(state_id - 1) % len(STATES)]}


def _status(number: int) -> JSONDict:
    if number <= len(STATUSES):
        name, color, success, failure = STATUSES[number - 1]
    else:
        name, color, success, failure = f"Custom {number}", "#607d8b", False, False
    return {
        "id": number,
        "name": name,
        "system_name": name.lower().replace(" ", "_"),
        "color": color,
        "is_success": success,
        "is_failure": failure,
        "is_final": number != 3,
    }


def _template(template_id: int) -> JSONDict:
    return {"id": template_id, "name": TEMPLATES[(template_id - 1) % len(TEMPLATES)]}


def _issue(issue_id: int, session: TestmoSession) -> JSONDict:
    key = f"SHOP-{issue_id}"
    return {
        "id": issue_id,
        "session_id": session.id,
        "integration_id": 1,
        "display_id": key,
        "name": f"{session.name}: defect {key}",
        "url": f"https://issues.example.com/browse/{key}",
    }


def _field_value(value_id: int, session: TestmoSession) -> JSONDict:
    digest = hashlib.blake2b(f"field:{value_id}".encode(), digest_size=3).hexdigest()
    return {
        "id": value_id,
        "session_id": session.id,
        "field_id": 1 + value_id % 2,
        "value": f"Charter note {digest}",
    }


# -- request parsing ---------------------------------------------------------------------


def _label(name: str) -> str:
    return name.replace("_", " ")


def _integer(
    params: Mapping[str, str], name: str, default: int, errors: dict[str, list[str]]
) -> int | None:
    text = params.get(name)
    if text is None:
        return default
    try:
        return int(text.strip())
    except ValueError:
        errors[name] = [f"The {_label(name)} must be an integer."]
        return None


def _time_param(params: Mapping[str, str], name: str, errors: dict[str, list[str]]) -> int | None:
    """An ISO 8601 time as microseconds since the epoch (no zone: UTC)."""
    text = params.get(name)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        errors[name] = [f"The {_label(name)} is not a valid date."]
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)


def _parse_expands(params: Mapping[str, str], errors: dict[str, list[str]]) -> tuple[str, ...]:
    names = [n.strip() for n in params.get("expands", "").split(",") if n.strip()]
    if any(name not in EXPANDS for name in names):
        errors["expands"] = ["The selected expands is invalid."]
        return ()
    return tuple(dict.fromkeys(names))


def _expand_names(expands: Iterable[str]) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(expands))
    unknown = [name for name in names if name not in EXPANDS]
    if unknown:
        raise ValueError(f"unknown expands {unknown}; known: {', '.join(EXPANDS)}")
    return names


def _invalid_body(errors: Mapping[str, list[str]]) -> JSONDict:
    messages = [message for field_errors in errors.values() for message in field_errors]
    message = messages[0] if messages else "The given data was invalid."
    if len(messages) > 1:
        more = len(messages) - 1
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    return {"message": message, "errors": dict(errors)}


# -- helpers -------------------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _timestamp(seconds: int | None) -> str | None:
    return None if seconds is None else _format_time(seconds)


def _format_time(seconds: int) -> str:
    """``2023-02-15T10:11:12.000000Z``: whole seconds, as the API shows them."""
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.000000Z"
