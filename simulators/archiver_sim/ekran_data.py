"""The Ekran simulator's dataset: the sessions of an Ekran System database, their activities.

Built once from :class:`EkranSimConfig`, newest first, and kept sorted by start beside that,
so a window is found by bisection; each window's selection is cached per window and live
state, so a page costs a slice even with 100,000 sessions. The same config gives the same
ids (times follow the clock unless ``newest_start_ms`` is set). The state is which sessions
are still live (:attr:`EkranData.unfinished`): a live session shows only its first
activities. Nothing here knows of HTTP: :mod:`archiver_sim.ekran` serves it.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from archiver_sim.base import SessionIds, lookup

OS_TYPES = ("Windows", "Windows", "Windows", "Linux", "macOS")
MAX_ACTIVITIES = 40
LONG_EVERY = 17  # every 17th session (from the 10th) lasts more than a day
SELECTION_CACHE = 64


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


class EkranData:
    """The sessions (newest first, and oldest first by start), and which are still live."""

    def __init__(self, config: EkranSimConfig, newest_ms: int) -> None:
        self.config = config
        self.sessions: tuple[EkranSession, ...] = _build_sessions(config, newest_ms)
        self._by_id = {session.session_id: session for session in self.sessions}
        self._ascending = tuple(sorted(self.sessions, key=lambda s: (s.start_ms, s.session_id)))
        self._starts = [session.start_ms for session in self._ascending]
        self._longest = max((s.end_ms - s.start_ms for s in self.sessions), default=0)
        self.unfinished: SessionIds[str] = SessionIds(
            s.session_id for s in self.sessions[: config.unfinished]
        )
        self._selections: OrderedDict[tuple[int | None, int | None, int], list[EkranSession]]
        self._selections = OrderedDict()
        self._lock = threading.Lock()

    def session(self, session_id: str) -> EkranSession:
        return lookup(self._by_id, session_id, "session")

    def visible(self, session: EkranSession, live: bool) -> tuple[int, ...]:
        """The session's activity times (ms): while live, only the first ones."""
        return session.activities[: session.live_visible] if live else session.activities

    def selection(self, start: int | None, end: int | None) -> list[EkranSession]:
        """The sessions with a visible activity in ``[start, end]``, oldest first (cached)."""
        key = (start, end, self.unfinished.generation)
        with self._lock:
            selected = self._selections.get(key)
            if selected is not None:
                self._selections.move_to_end(key)
                return selected
        live = self.unfinished.snapshot()
        # a session with an activity at or after start began at most `longest` before it
        low = 0 if start is None else bisect.bisect_left(self._starts, start - self._longest)
        high = len(self._starts) if end is None else bisect.bisect_right(self._starts, end)
        selected = []
        for session in self._ascending[low:high]:
            visible = self.visible(session, session.session_id in live)
            if (start is None or visible[0] >= start) and (end is None or visible[-1] <= end):
                selected.append(session)  # entirely inside: no need to look further
            elif inside(visible, start, end):
                selected.append(session)
        with self._lock:
            self._selections[key] = selected
            while len(self._selections) > SELECTION_CACHE:
                self._selections.popitem(last=False)
        return selected


def inside(moments: Sequence[int], start: int | None, end: int | None) -> tuple[int, int] | None:
    """Indexes of the first and last of ``moments`` inside ``[start, end]``, if any."""
    first = 0 if start is None else bisect.bisect_left(moments, start)
    last = len(moments) - 1 if end is None else bisect.bisect_right(moments, end) - 1
    return (first, last) if first <= last else None


# -- generation ------------------------------------------------------------------------------

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
