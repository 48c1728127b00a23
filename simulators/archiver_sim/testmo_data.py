"""The Testmo simulator's dataset: the instance's projects and sessions, open or closed.

Built once from :class:`TestmoSimConfig`, newest first; the same config gives the same ids
and values (creation times follow the clock unless ``newest_created_s`` is set). Times are
whole seconds, as a database ``TIMESTAMP`` column holds them, so several sessions can share
a ``closed_at``. The state is each session's closing (and last update): sessions close and
re-open while the simulator runs, and every listing (filters and order) is computed once
per state of the dataset, so a page costs a slice even with 100,000 sessions. Nothing here
knows of HTTP: :mod:`archiver_sim.testmo` serves it.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta

from archiver_sim.base import lookup

STATUS_COUNT = 24
LISTING_CACHE_SIZE = 256
SORT_CREATED = "sessions:created_at"
SORT_CLOSED = "sessions:closed_at"


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
class SessionState:
    """The part of a session that changes: its closing and its last update (unix seconds)."""

    closed_at: int | None
    closed_by: int | None
    updated_at: int | None
    updated_by: int | None


@dataclass(frozen=True, slots=True)
class ListingQuery:
    """One listing's filters and order (bounds in microseconds since the epoch)."""

    project_id: int
    is_closed: bool | None
    created_after: int | None
    created_before: int | None
    closed_after: int | None
    closed_before: int | None
    sort: str
    descending: bool


class TestmoData:
    """The sessions (newest first, and per project) and their open/closed state; thread-safe."""

    __test__ = False  # not a pytest test class

    def __init__(self, config: TestmoSimConfig, newest_s: int) -> None:
        self.config = config
        self.sessions: tuple[TestmoSession, ...] = _build_sessions(config, newest_s)
        self._by_id = {session.id: session for session in self.sessions}
        self._by_project: dict[int, list[TestmoSession]] = {p: [] for p in config.project_ids}
        for session in self.sessions:
            self._by_project[session.project_id].append(session)
        self._state = {
            s.id: SessionState(s.closed_at, s.closed_by, s.updated_at, s.updated_by)
            for s in self.sessions
        }
        self._listings: OrderedDict[ListingQuery, list[TestmoSession]] = OrderedDict()
        self._last_closed: dict[int, int] = {}  # the closed_at before the latest re-opening
        self._lock = threading.Lock()

    # -- lookups -----------------------------------------------------------------------

    def session(self, session_id: int) -> TestmoSession:
        return lookup(self._by_id, session_id, "session")

    def find(self, session_id: int) -> TestmoSession | None:
        return self._by_id.get(session_id)

    def has_project(self, project_id: int) -> bool:
        return project_id in self._by_project

    def project_sessions(self, project_id: int) -> list[TestmoSession]:
        """The project's sessions, newest first."""
        return list(self._by_project[project_id])

    def state(self, session_id: int) -> SessionState:
        with self._lock:
            return self._state[session_id]

    def page(
        self, query: ListingQuery, start: int, stop: int
    ) -> tuple[int, list[tuple[TestmoSession, SessionState]]]:
        """How many sessions match ``query``, and those in ``[start, stop)`` with their
        state, read at one moment."""
        with self._lock:
            matching = self._listing_locked(query)
            return len(matching), [(s, self._state[s.id]) for s in matching[start:stop]]

    # -- changes -------------------------------------------------------------------------

    def close(self, session_id: int, *, by: int, now: int) -> int:
        """Close the session at ``now`` (no-op when closed); returns its ``closed_at``.

        Re-closing a re-opened session always gives a later ``closed_at`` than before.
        """
        session = self.session(session_id)
        with self._lock:
            return self._close_locked(session, by, now)

    def close_all(self, *, by: int, now: int) -> list[int]:
        """Close every open session; returns their ids."""
        with self._lock:
            opened = [s for s in self.sessions if self._state[s.id].closed_at is None]
            for session in opened:
                self._close_locked(session, by, now)
        return [session.id for session in opened]

    def reopen(self, session_id: int, *, by: int, now: int) -> None:
        """``closed_at``/``closed_by`` become null (no-op when open)."""
        self.session(session_id)
        with self._lock:
            state = self._state[session_id]
            if state.closed_at is not None:
                self._set_locked(
                    session_id, SessionState(None, None, max(now, state.closed_at), by)
                )
                self._last_closed[session_id] = state.closed_at

    # -- internals -----------------------------------------------------------------------

    def _listing_locked(self, query: ListingQuery) -> list[TestmoSession]:
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
        self._set_locked(session.id, SessionState(closed_at, by, closed_at, by))
        return closed_at

    def _set_locked(self, session_id: int, state: SessionState) -> None:
        self._state[session_id] = state
        self._listings.clear()


# -- generation ------------------------------------------------------------------------------

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
