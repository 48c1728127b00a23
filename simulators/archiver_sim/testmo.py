"""A Testmo REST API simulator (sessions), for ``archiver demo`` and the tests.

One origin, ``api``, serving ``GET /api/v1/projects/{project_id}/sessions`` (paged with
``page``/``per_page``, filters ``is_closed``, ``created_after``/``created_before``,
``closed_after``/``closed_before``, ``sort``, ``order``, ``expands``) and
``GET /api/v1/sessions/{session_id}``. Auth is ``Authorization: Bearer <token>``. Error
bodies are undocumented; the simulator answers Laravel-style JSON: ``{"message": ...}``, and
for 422 also ``{"errors": {field: [messages]}}``.

The sessions and their open/closed state are the dataset,
:class:`~archiver_sim.testmo_data.TestmoData`, built from :class:`TestmoSimConfig`; this
module serves it. Timestamps have whole-second precision, so several sessions can share a
``closed_at``. Whether ``*_after``/``*_before`` bounds are inclusive is undocumented:
``inclusive_bounds`` picks (default: inclusive). Sessions can be closed and re-opened while
the simulator runs (closed by :meth:`TestmoSimulator.finish` and
:meth:`TestmoSimulator.finish_all`, re-opened by :meth:`TestmoSimulator.set_unfinished`).

Every ``rate_limit_every``-th authenticated request answers 429 (``Retry-After:
retry_after``, or no header when it is None). Routes under ``/_sim/`` are test helpers, not
part of the vendor API.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from archiver_sim.base import SimulatorBase
from archiver_sim.http import json_response
from archiver_sim.testmo_data import (
    CONFIGS,
    SORT_CLOSED,
    SORT_CREATED,
    STATES,
    STATUSES,
    TEMPLATES,
    USER_NAMES,
    ListingQuery,
    SessionState,
    TestmoData,
    TestmoSession,
    TestmoSimConfig,
)

__all__ = ["EXPANDS", "TestmoSimConfig", "TestmoSimulator"]

API_PREFIX = "/api/v1"
SESSIONS_PATH = API_PREFIX + "/projects/{project_id}/sessions"
SESSION_PATH = API_PREFIX + "/sessions/{session_id}"
PER_PAGE_CHOICES = (15, 25, 50, 100)
DEFAULT_PER_PAGE = 100
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

JSONDict = dict[str, Any]


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


class TestmoSimulator(SimulatorBase):
    """The API application over a :class:`TestmoData` (control methods thread-safe)."""

    __test__ = False  # not a pytest test class

    def __init__(self, config: TestmoSimConfig | None = None) -> None:
        self.config = config = config or TestmoSimConfig()
        super().__init__(config.request_log_limit)
        now = int(time.time())
        newest = now - 30 * 60 if config.newest_created_s is None else config.newest_created_s
        self.data = TestmoData(config, newest)
        self.sessions: tuple[TestmoSession, ...] = self.data.sessions
        self._lock = threading.Lock()  # the request count
        self._count = 0

    # -- runner protocol ---------------------------------------------------------------

    def applications(self) -> dict[str, web.Application]:
        api = self.api_application(self._gate)
        api.router.add_get(SESSIONS_PATH.replace("{project_id}", r"{project_id:\d+}"), self._list)
        api.router.add_get(SESSION_PATH.replace("{session_id}", r"{session_id:\d+}"), self._get)
        return {"api": api}

    @property
    def api_url(self) -> str:
        """The origin, ``http://127.0.0.1:PORT`` (a real one is ``https://NAME.testmo.net``)."""
        return super().api_url

    @property
    def base_url(self) -> str:
        """The API base, ``{api_url}/api/v1``."""
        return self.api_url + API_PREFIX

    # -- control (thread-safe) -----------------------------------------------------------

    def is_unfinished(self, session_id: int) -> bool:
        """Whether the session is open (``closed_at`` null)."""
        self.session(session_id)
        return self.data.state(session_id).closed_at is None

    def finish(self, session_id: int, *, by: int = 1) -> str:
        """Close the session now (no-op when closed); returns its ``closed_at``.

        Re-closing a re-opened session always gives a later ``closed_at`` than before.
        """
        return _format_time(self.data.close(session_id, by=by, now=int(time.time())))

    def finish_all(self, *, by: int = 1) -> list[int]:
        """Close every open session; returns their ids."""
        return self.data.close_all(by=by, now=int(time.time()))

    def set_unfinished(self, session_id: int, *, by: int = 1) -> None:
        """Re-open the session (no-op when open): ``closed_at``/``closed_by`` become null."""
        self.data.reopen(session_id, by=by, now=int(time.time()))

    # -- the dataset as clients see it -------------------------------------------------

    def session(self, session_id: int) -> TestmoSession:
        return self.data.session(session_id)

    def project_sessions(self, project_id: int) -> list[TestmoSession]:
        """The project's sessions, newest first."""
        return self.data.project_sessions(project_id)

    def record(self, session_id: int) -> JSONDict:
        """The session as listings and ``GET /sessions/{id}`` show it right now."""
        return _record(self.session(session_id), self.data.state(session_id))

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
        total, chosen = self.data.page(query, start, start + per_page)
        records = [_record(session, state) for session, state in chosen]
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
        session = self.data.find(int(request.match_info["session_id"]))
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
        if not self.data.has_project(project_id):
            raise _Refused(404, "Not found.")
        if project_id in self.config.forbidden_project_ids:
            raise _Refused(403, "This action is unauthorized.")

    def _parse_listing(
        self, project_id: int, params: Mapping[str, str]
    ) -> tuple[ListingQuery, int, int, tuple[str, ...]]:
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
        query = ListingQuery(
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

    def _expands(self, records: Sequence[JSONDict], names: tuple[str, ...]) -> JSONDict:
        expands: JSONDict = {}
        sessions = [self.data.session(record["id"]) for record in records]
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


def _record(session: TestmoSession, state: SessionState) -> JSONDict:
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
