"""State seam: remembers what was archived, what failed, what is pending, and watermarks.

Contract (checked by ``tests/contract/test_state_contract.py`` over every implementation):

* One row per ``(source, session_id)`` with a status: ``pending`` (the vendor still
  processes it), ``failed`` (with ``attempts`` and ``last_error``) or ``archived`` (with
  ``manifest_key``). ``record_*`` calls move a row between statuses; ``record_failure``
  increments ``attempts`` and returns the new count; ``record_success`` resets the
  error. ``record_failure`` or ``record_pending`` on an ``archived`` row (a failed
  re-archive) keeps ``status='archived'`` and its manifest key and only stores the error,
  so a failed re-archive never hides earlier evidence.
  ``record_failure``/``record_pending`` without a ``locator`` or ``started_at`` keep the
  ones already known. ``attempts`` is never reset (only ``forget`` does that).
* ``pending`` and ``retryable_failures`` (``failed`` rows with ``attempts < max_attempts``)
  list the oldest ``started_at`` first, rows without one last.
* ``get_many`` answers for many ids in one query (the engine looks listed sessions up in
  batches): the rows of those that have one, by session id.
* ``counts`` always has the three statuses as keys (0 when none).
* Every call is atomic and durable when it returns (writes made at the same moment may
  share a transaction); a crash loses at most the calls under way. Calls may be made
  concurrently from one event loop.
* Times are timezone-aware UTC datetimes on the way in and out; naive ones raise ValueError.
* ``record_pass`` keeps each source's last pass (replacing the one before) and, when it
  succeeded, its end as the last success. ``summary`` is what ``archiver status`` shows of
  a source (see :class:`~archiver.model.SourceSummary`); ``oldest_unarchived`` is its
  oldest ``failed`` row (oldest ``started_at`` first): a complete session not archived.
  ``source_names`` lists every source the state has anything of.
* One process at a time: opening a state another process (or another open in this one)
  holds raises ``StateLocked``; ``close`` releases it and may be called twice. Any other
  failure to open or use the database raises ``StateError``. ``description`` is safe to log.
  Opened ``read_only``, a state takes no lock, so it can be read beside the process that
  holds it, and refuses every write.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol
from urllib.parse import unquote

from archiver.errors import StateError
from archiver.model import PassOutcome, SessionRecord, SourceSummary


class State(Protocol):
    description: str

    async def writer_id(self) -> str: ...

    async def watermark(self, source: str) -> datetime | None: ...

    async def set_watermark(self, source: str, at: datetime) -> None: ...

    async def get(self, source: str, session_id: str) -> SessionRecord | None: ...

    async def get_many(
        self, source: str, session_ids: Collection[str]
    ) -> dict[str, SessionRecord]: ...

    async def record_success(
        self,
        source: str,
        session_id: str,
        *,
        manifest_key: str,
        at: datetime,
        locator: str | None = None,
        started_at: datetime | None = None,
    ) -> None: ...

    async def record_failure(
        self,
        source: str,
        session_id: str,
        *,
        error: str,
        at: datetime,
        locator: str | None = None,
        started_at: datetime | None = None,
    ) -> int: ...

    async def record_pending(
        self,
        source: str,
        session_id: str,
        *,
        at: datetime,
        locator: str | None = None,
        started_at: datetime | None = None,
    ) -> None: ...

    async def pending(self, source: str) -> list[SessionRecord]: ...

    async def retryable_failures(
        self, source: str, *, max_attempts: int
    ) -> list[SessionRecord]: ...

    async def forget(self, source: str, session_id: str) -> None: ...

    async def counts(self, source: str | None = None) -> dict[str, int]: ...

    async def record_pass(self, source: str, outcome: PassOutcome) -> None: ...

    async def oldest_unarchived(self, source: str) -> SessionRecord | None: ...

    async def summary(self, source: str, *, archived_since: datetime) -> SourceSummary: ...

    async def source_names(self) -> list[str]: ...

    async def close(self) -> None: ...


# The state URL of a database kept in memory only: ``sqlite://:memory:``.
SQLITE_MEMORY = ":memory:"


async def open_state(url: str, *, read_only: bool = False) -> State:
    """Open the state a URL names, taking its single-writer lock.

    * ``sqlite:////abs/path/state.db`` (four slashes: an absolute path),
    * ``sqlite:///state.db`` (three slashes: relative to the working directory),
    * ``sqlite://:memory:`` (nothing kept; for tests and demos).

    Raises StateLocked if another archiver process uses that state, and StateError if the
    URL or the database cannot be used. Close the state with ``await state.close()``.
    """
    try:
        path = sqlite_path(url)
    except ValueError as exc:
        raise StateError(str(exc)) from None
    from archiver.state.sqlite import SqliteState

    return await SqliteState.open(path, read_only=read_only)


def sqlite_path(url: str) -> str:
    """The database file a state URL names; ValueError says what is wrong with the URL."""
    scheme, _, rest = url.partition("://")
    if scheme != "sqlite":
        raise ValueError(f"unknown state scheme in {url!r} (use sqlite:////path/state.db)")
    if rest in (SQLITE_MEMORY, f"/{SQLITE_MEMORY}"):
        return SQLITE_MEMORY
    if not rest.startswith("/") or "?" in rest or "#" in rest:
        raise ValueError(
            f"state url {url!r} is not sqlite:////absolute/path.db or sqlite:///relative.db"
        )
    path = unquote(rest[1:])
    if not path or path.endswith("/"):
        raise ValueError(f"state url {url!r} names no database file")
    return path
