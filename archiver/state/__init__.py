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
* SQLite (``sqlite://``): one process at a time: opening a state another process (or
  another open in this one) holds raises ``StateLocked``. PostgreSQL (``postgresql://``) is
  shared by design: any number of replicas open it at once and take no lock; each has a
  writer id of its own (its ``replica`` name's), the same across its restarts. ``close``
  releases what the state holds and may be called twice. Any other failure to open or use
  the database raises ``StateError``, which never shows a password. ``description`` is
  safe to log. Opened ``read_only``, a state takes no lock, so it can be read beside the
  process that holds it, and refuses every write.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime
from typing import Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

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
POSTGRES_SCHEMES = ("postgresql", "postgres")


async def open_state(
    url: str,
    *,
    read_only: bool = False,
    password: str | None = None,
    replica: str | None = None,
) -> State:
    """Open the state a URL names.

    * ``sqlite:////abs/path/state.db`` (four slashes: an absolute path),
    * ``sqlite:///state.db`` (three slashes: relative to the working directory),
    * ``sqlite://:memory:`` (nothing kept; for tests and demos),
    * ``postgresql://user@host:5432/database`` (or ``postgres://``), TLS settings in the
      query (``?sslmode=verify-full&sslrootcert=/etc/archiver/ca.pem``); ``password`` is
      the database password (never in the URL) and ``replica`` names this archiver among
      those sharing the database (default: the host name).

    A SQLite state takes its single-writer lock: StateLocked if another archiver process
    uses it. StateError if the URL or the database cannot be used. Close the state with
    ``await state.close()``.
    """
    try:
        scheme = check_state_url(url)
    except ValueError as exc:
        raise StateError(str(exc)) from None
    if scheme in POSTGRES_SCHEMES:
        from archiver.state.postgres import PostgresState

        return await PostgresState.open(
            url, read_only=read_only, password=password, replica=replica
        )
    from archiver.state.sqlite import SqliteState

    return await SqliteState.open(sqlite_path(url), read_only=read_only)


def check_state_url(url: str) -> str:
    """The scheme of a usable state URL (``sqlite`` or ``postgresql``/``postgres``).

    ValueError says what is wrong with the URL (never showing a password it may hold).
    """
    scheme, _, _ = url.partition("://")
    if scheme in POSTGRES_SCHEMES:
        check_postgres_url(url)
        return scheme
    if scheme != "sqlite":
        raise ValueError(
            f"unknown state scheme in {_shown(url)!r} (use sqlite:////path/state.db or"
            " postgresql://user@host:5432/database)"
        )
    sqlite_path(url)
    return scheme


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


def check_postgres_url(url: str) -> str:
    """What a ``postgresql://`` state URL is safe to be logged as (no password, no query).

    ValueError says what is wrong: it names no database, or it carries a password (the
    password comes from the environment variable ``[state] password_env`` names).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"state url {_shown(url)!r} is not a PostgreSQL URL: {exc}") from None
    if parts.scheme not in POSTGRES_SCHEMES:
        raise ValueError(f"state url {_shown(url)!r} is not a postgresql:// URL")
    if parts.password is not None:
        raise ValueError(
            "the state url holds a password: never put it in the file, name the environment"
            " variable holding it in [state] password_env"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    for key, _ in query:
        if key in ("password", "sslpassword"):
            raise ValueError(
                f"the state url sets {key}: never put a password in the file, name the"
                " environment variable holding it in [state] password_env"
            )
    database = unquote(parts.path.removeprefix("/"))
    if not database or "/" in database or parts.fragment:
        raise ValueError(
            f"state url {_shown(url)!r} names no database (postgresql://user@host:5432/database)"
        )
    host = parts.hostname or dict(query).get("host", "")
    user = f"{unquote(parts.username)}@" if parts.username else ""
    where = f"{host}:{port}" if port is not None else host
    return f"{parts.scheme}://{user}{where}/{database}"


def _shown(url: str) -> str:
    """``url`` without a password, for a message about a URL that may hold one."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)
