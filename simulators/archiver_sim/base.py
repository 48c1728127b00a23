"""What every vendor simulator shares: its origins' URLs, the request log, unfinished sessions.

A simulator is two parts. Its dataset (``archiver_sim/<vendor>_data.py``) says which
sessions exist, what they hold and which are not finished yet; it knows nothing of HTTP.
Its simulator class (``archiver_sim/<vendor>.py``) turns requests into reads of the dataset
(and, for the control methods tests call, updates of it). :class:`SimulatorBase` and
:class:`FinishControl` are the simulator class's common part; :class:`SessionIds` (which
sessions are unfinished) is the dataset's.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Generic, Protocol, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware

from archiver_sim.requestlog import RequestLog, RequestLogged

IdT = TypeVar("IdT", bound=Hashable)
KeyT = TypeVar("KeyT", bound=Hashable)
ItemT = TypeVar("ItemT")


def lookup(items: Mapping[KeyT, ItemT], key: KeyT, what: str) -> ItemT:
    """``items[key]``, or a KeyError saying which simulated ``what`` does not exist."""
    try:
        return items[key]
    except KeyError:
        raise KeyError(f"no simulated {what} {key!r}") from None


def newest_start(configured: datetime | None, default_age: timedelta) -> datetime:
    """When a dataset's newest session starts: ``configured`` (naive: UTC), else
    ``default_age`` before now."""
    newest = configured or datetime.now(UTC) - default_age
    return newest if newest.tzinfo else newest.replace(tzinfo=UTC)


class SessionIds(Generic[IdT]):
    """A set of session ids (those still running: recording, processing, open), thread-safe.

    ``generation`` grows with every change, so a listing cached for one generation is known
    to be stale in the next.
    """

    def __init__(self, ids: Iterable[IdT] = ()) -> None:
        self._ids = set(ids)
        self._lock = threading.Lock()
        self.generation = 0

    def __contains__(self, session_id: object) -> bool:
        with self._lock:
            return session_id in self._ids

    def snapshot(self) -> frozenset[IdT]:
        """The ids now, for a handler that asks about many sessions at once."""
        with self._lock:
            return frozenset(self._ids)

    def add(self, session_id: IdT) -> None:
        with self._lock:
            if session_id not in self._ids:
                self._ids.add(session_id)
                self.generation += 1

    def discard(self, session_id: IdT) -> None:
        with self._lock:
            if session_id in self._ids:
                self._ids.discard(session_id)
                self.generation += 1

    def clear(self) -> frozenset[IdT]:
        """Empty the set; returns the ids it held."""
        with self._lock:
            held = frozenset(self._ids)
            if self._ids:
                self._ids.clear()
                self.generation += 1
            return held


class RequestCounter:
    """Numbers the API requests a simulator admits (thread-safe), for its every-n-th faults."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        """The number of this request: 1 for the first."""
        with self._lock:
            self._count += 1
            return self._count

    @staticmethod
    def hits(count: int, every: int) -> bool:
        """Whether request ``count`` is one of every ``every``-th (0: never)."""
        return every > 0 and count % every == 0


class _Dataset(Protocol[IdT]):
    """What :class:`SimulatorBase`'s control methods need of a vendor's dataset."""

    unfinished: SessionIds[IdT]

    def session(self, session_id: IdT, /) -> object: ...


class ServedFile(Protocol):
    """What a test needs of a file a simulator serves to check a download: size and digest."""

    @property
    def size(self) -> int: ...

    def digest(self) -> str: ...


class SimulatorBase(RequestLogged):
    """The origins' URLs, the request log, the API origin's common routes, served files."""

    def __init__(self, request_log_limit: int) -> None:
        self.request_log = RequestLog(request_log_limit)
        self._urls: dict[str, str] = {}

    # -- runner protocol ---------------------------------------------------------------

    def bind(self, base_urls: Mapping[str, str]) -> None:
        self._urls = dict(base_urls)

    @property
    def api_url(self) -> str:
        return self._urls["api"]

    @property
    def files_url(self) -> str:
        """The origin standing in for signed file URLs (vendors that have one)."""
        return self._urls["files"]

    def api_application(
        self, *middlewares: Middleware, outer: Sequence[Middleware] = ()
    ) -> web.Application:
        """The API origin, with ``GET /_sim/requests``: ``outer`` middlewares first, then the
        request log's, then ``middlewares``."""
        app = web.Application(middlewares=[*outer, self.request_log.recorder("api"), *middlewares])
        app.router.add_get("/_sim/requests", self.request_log.serve)
        return app

    # -- files -------------------------------------------------------------------------

    def served_file(self, url: str) -> ServedFile | None:
        """The file ``url`` serves, if any (vendors with files say which)."""
        return None

    def expected_digest(self, url: str) -> tuple[int, str]:
        """``(size, sha256 hex)`` of what ``url`` serves, without a download."""
        file = self.served_file(url)
        if file is None:
            raise KeyError(f"the simulator serves no file at {url}")
        return file.size, file.digest()


class FinishControl(Generic[IdT]):
    """The control methods over ``self.data.unfinished``, for tests and ``archiver demo``.

    Thread-safe: tests call them from their own thread while the servers run in another.
    (Testmo closes a session with a time and a user: it has control methods of its own.)
    """

    data: _Dataset[IdT]

    def is_unfinished(self, session_id: IdT) -> bool:
        self.data.session(session_id)
        return session_id in self.data.unfinished

    def finish(self, session_id: IdT) -> None:
        """The session ends now: it shows all it holds from the next request on."""
        self.data.session(session_id)
        self.data.unfinished.discard(session_id)

    def set_unfinished(self, session_id: IdT) -> None:
        """The session runs again: it shows what a running one shows until finished."""
        self.data.session(session_id)
        self.data.unfinished.add(session_id)

    def finish_all(self) -> list[IdT]:
        """Every session ends now; returns the ids of those that were unfinished, sorted."""
        return sorted(self.data.unfinished.clear(), key=str)
