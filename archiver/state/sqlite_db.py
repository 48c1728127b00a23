"""The blocking side of the SQLite state: schema and migrations, the SQL of every call,
and :class:`Database`, which runs each call as one short transaction on the thread it
lives on (see :mod:`archiver.state.sqlite` for the thread and the group commit).

``journal_mode=WAL`` with ``synchronous=FULL`` makes each committed call durable, so a
crash at any moment loses at most the call under way. The database and its
``-wal``/``-shm`` companions (SQLite copies the database's mode) are owner-only (0o600).
Times are stored as integer microseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from archiver.errors import StateError
from archiver.model import PassOutcome, SessionRecord, SessionStatus, SourceSummary
from archiver.state import SQLITE_MEMORY as MEMORY
from archiver.state.files import LockFile, make_parent_directory, open_owner_only

SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 5_000
# Well under SQLite's smallest compiled-in limit on bound variables (999).
IDS_PER_QUERY = 500
STATUSES: tuple[SessionStatus, ...] = ("pending", "failed", "archived")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# Schema version N is reached by running MIGRATIONS[N - 1]; append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE sessions (
            source       TEXT    NOT NULL,
            session_id   TEXT    NOT NULL,
            status       TEXT    NOT NULL CHECK (status IN ('pending', 'failed', 'archived')),
            locator      TEXT,
            started_at   INTEGER,
            first_seen   INTEGER NOT NULL,
            updated_at   INTEGER NOT NULL,
            attempts     INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            last_error   TEXT,
            manifest_key TEXT,
            CHECK (status <> 'archived' OR manifest_key IS NOT NULL),
            PRIMARY KEY (source, session_id)
        )
        """,
        "CREATE INDEX sessions_by_status ON sessions (source, status)",
        """
        CREATE TABLE watermarks (
            source TEXT    PRIMARY KEY,
            at     INTEGER NOT NULL
        )
        """,
    ),
    (
        # Who writes to the store on behalf of this state: named in the store's session
        # claims (archiver.claims), the same across restarts.
        """
        CREATE TABLE writer (
            singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
            id        TEXT    NOT NULL
        )
        """,
        "INSERT INTO writer (singleton, id) VALUES (1, lower(hex(randomblob(16))))",
    ),
    (
        # For `archiver status`: when each session was first archived, and each source's
        # last pass.
        "ALTER TABLE sessions ADD COLUMN archived_at INTEGER",
        "UPDATE sessions SET archived_at = updated_at WHERE status = 'archived'",
        "CREATE INDEX sessions_by_archived_at ON sessions (source, archived_at)",
        """
        CREATE TABLE passes (
            source          TEXT    PRIMARY KEY,
            started_at      INTEGER NOT NULL,
            finished_at     INTEGER NOT NULL,
            error           TEXT,
            last_success_at INTEGER
        )
        """,
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = (
    "source, session_id, status, locator, started_at, first_seen, updated_at, attempts,"
    " last_error, manifest_key"
)
_AMONG = "WHERE source = ? AND session_id IN"
# Oldest first; sessions without a start time after the others, in a stable order.
OLDEST_FIRST = "ORDER BY started_at IS NULL, started_at, first_seen, session_id"

UPSERT_SUCCESS = """
    INSERT INTO sessions (
        source, session_id, status, locator, started_at, first_seen, updated_at, manifest_key,
        archived_at
    )
    VALUES (
        :source, :session_id, 'archived', :locator, :started_at, :at, :at, :manifest_key, :at
    )
    ON CONFLICT (source, session_id) DO UPDATE SET
        status = 'archived',
        manifest_key = excluded.manifest_key,
        archived_at = COALESCE(sessions.archived_at, excluded.archived_at),
        locator = COALESCE(excluded.locator, sessions.locator),
        started_at = COALESCE(excluded.started_at, sessions.started_at),
        last_error = NULL,
        updated_at = excluded.updated_at
"""
# An archived row stays archived (with its manifest key): a failed re-archive never hides
# earlier evidence.
UPSERT_FAILURE = """
    INSERT INTO sessions (
        source, session_id, status, locator, started_at, first_seen, updated_at, attempts,
        last_error
    )
    VALUES (:source, :session_id, 'failed', :locator, :started_at, :at, :at, 1, :error)
    ON CONFLICT (source, session_id) DO UPDATE SET
        status = CASE status WHEN 'archived' THEN 'archived' ELSE 'failed' END,
        locator = COALESCE(excluded.locator, locator),
        started_at = COALESCE(excluded.started_at, started_at),
        attempts = attempts + 1,
        last_error = excluded.last_error,
        updated_at = excluded.updated_at
"""
UPSERT_PENDING = """
    INSERT INTO sessions (source, session_id, status, locator, started_at, first_seen, updated_at)
    VALUES (:source, :session_id, 'pending', :locator, :started_at, :at, :at)
    ON CONFLICT (source, session_id) DO UPDATE SET
        status = CASE status WHEN 'archived' THEN 'archived' ELSE 'pending' END,
        locator = COALESCE(excluded.locator, locator),
        started_at = COALESCE(excluded.started_at, started_at),
        updated_at = excluded.updated_at
"""

UPSERT_SOURCE_OUTCOME = """
    INSERT INTO passes (source, started_at, finished_at, error, last_success_at)
    VALUES (
        :source, :started_at, :finished_at, :error,
        CASE WHEN :error IS NULL THEN :finished_at END
    )
    ON CONFLICT (source) DO UPDATE SET
        started_at = excluded.started_at,
        finished_at = excluded.finished_at,
        error = excluded.error,
        last_success_at = COALESCE(excluded.last_success_at, passes.last_success_at)
"""

SET_WATERMARK = """
    INSERT INTO watermarks (source, at) VALUES (:source, :at)
    ON CONFLICT (source) DO UPDATE SET at = excluded.at
"""


@dataclass(frozen=True, slots=True)
class StateDump:
    """A state's rows, times as aware datetimes; each session with its ``archived_at``."""

    writer_id: str
    sessions: list[tuple[SessionRecord, datetime | None]]
    watermarks: list[tuple[str, datetime]]
    passes: list[tuple[str, datetime, datetime, str | None, datetime | None]]


class Database:
    """The blocking side: lives on the worker thread, one short transaction per method."""

    def __init__(
        self, description: str, connection: sqlite3.Connection, lock: LockFile | None
    ) -> None:
        self.description = description
        self._connection = connection
        self._lock = lock

    @classmethod
    def connect(cls, path: Path | str) -> Database:
        if path == MEMORY:
            return cls(MEMORY, _connect(MEMORY, MEMORY), lock=None)
        location = Path(path).absolute()
        description = str(location)
        make_parent_directory(location)
        lock = LockFile.acquire(location)
        try:
            _create_owner_only(location)
            return cls(description, _connect(location, description), lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def connect_read_only(cls, path: Path | str) -> Database:
        if path == MEMORY:
            raise StateError("a state kept in memory (sqlite://:memory:) has nothing to read")
        location = Path(path).absolute()
        description = str(location)
        if not location.is_file():
            raise StateError(
                f"state database {description} does not exist: the archiver has not run "
                "with this state yet"
            )
        try:
            connection = sqlite3.connect(
                f"{location.as_uri()}?mode=ro",
                uri=True,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StateError(f"state database {description}: cannot open: {exc}") from exc
        try:
            version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as exc:
            connection.close()
            raise StateError(f"state database {description} is not usable: {exc}") from exc
        if version != SCHEMA_VERSION:
            connection.close()
            newer = "upgrade archiver" if version > SCHEMA_VERSION else "start the daemon once"
            raise StateError(
                f"state database {description} has schema version {version}, this archiver "
                f"reads version {SCHEMA_VERSION}: {newer}"
            )
        return cls(description, connection, lock=None)

    def close(self) -> None:
        try:
            with self._errors():
                self._connection.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    def writer_id(self) -> str:
        with self._errors():
            row = self._connection.execute("SELECT id FROM writer").fetchone()
        return str(row[0])

    def dump(self) -> StateDump:
        """Everything the state holds, read in one snapshot (for ``archiver state copy``)."""
        with self._errors():
            self._connection.execute("BEGIN")
            try:
                sessions = self._connection.execute(
                    f"SELECT {_COLUMNS}, archived_at FROM sessions"  # noqa: S608 - constant
                ).fetchall()
                watermarks = self._connection.execute("SELECT source, at FROM watermarks")
                passes = self._connection.execute(
                    "SELECT source, started_at, finished_at, error, last_success_at FROM passes"
                ).fetchall()
                dump = StateDump(
                    writer_id=self.writer_id(),
                    sessions=[
                        (_session_record(row[:10]), _optional_from_micros(row[10]))
                        for row in sessions
                    ],
                    watermarks=[(source, _from_micros(at)) for source, at in watermarks],
                    passes=[
                        (
                            source,
                            _from_micros(started),
                            _from_micros(finished),
                            error,
                            _optional_from_micros(success),
                        )
                        for source, started, finished, error, success in passes
                    ],
                )
            finally:
                self._connection.execute("COMMIT")
        return dump

    def watermark(self, source: str) -> datetime | None:
        with self._errors():
            row = self._connection.execute(
                "SELECT at FROM watermarks WHERE source = ?", (source,)
            ).fetchone()
        return None if row is None else _from_micros(row[0])

    def get(self, source: str, session_id: str) -> SessionRecord | None:
        found = self.records("WHERE source = ? AND session_id = ?", (source, session_id))
        return found[0] if found else None

    def records(self, where: str, parameters: Sequence[object]) -> list[SessionRecord]:
        with self._errors():
            rows = self._connection.execute(
                f"SELECT {_COLUMNS} FROM sessions {where}",  # noqa: S608 - constant fragments
                parameters,
            ).fetchall()
        return [_session_record(row) for row in rows]

    def get_many(self, source: str, session_ids: list[str]) -> dict[str, SessionRecord]:
        found: dict[str, SessionRecord] = {}
        with self._errors(), self._transaction("BEGIN"):
            for start in range(0, len(session_ids), IDS_PER_QUERY):
                chunk = session_ids[start : start + IDS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT {_COLUMNS} FROM sessions {_AMONG} ({marks})"  # noqa: S608
                for row in self._connection.execute(query, (source, *chunk)):
                    record = _session_record(row)
                    found[record.session_id] = record
        return found

    def counts(self, source: str | None) -> dict[str, int]:
        query = "SELECT status, COUNT(*) FROM sessions"
        parameters: tuple[str, ...] = ()
        if source is not None:
            query += " WHERE source = ?"
            parameters = (source,)
        with self._errors():
            rows = self._connection.execute(f"{query} GROUP BY status", parameters).fetchall()
        counted: dict[str, int] = dict.fromkeys(STATUSES, 0)
        counted.update((status, count) for status, count in rows)
        return counted

    def summary(self, source: str, archived_since: int) -> SourceSummary:
        with self._errors(), self._transaction("BEGIN"):
            archived, recently, held_back, failing = self._connection.execute(
                """
                SELECT COALESCE(SUM(status = 'archived'), 0),
                       COALESCE(SUM(status = 'archived' AND archived_at >= ?), 0),
                       COALESCE(SUM(status = 'pending'), 0),
                       COALESCE(SUM(status = 'failed'), 0)
                FROM sessions WHERE source = ?
                """,
                (archived_since, source),
            ).fetchone()
            newest_error = self._connection.execute(
                "SELECT last_error, updated_at FROM sessions"
                " WHERE source = ? AND status = 'failed' ORDER BY updated_at DESC LIMIT 1",
                (source,),
            ).fetchone()
            last_pass = self._connection.execute(
                "SELECT started_at, finished_at, error, last_success_at FROM passes"
                " WHERE source = ?",
                (source,),
            ).fetchone()
            oldest = self.records(
                f"WHERE source = ? AND status = 'failed' {OLDEST_FIRST} LIMIT 1", (source,)
            )
            watermark = self.watermark(source)
        return SourceSummary(
            source=source,
            watermark=watermark,
            last_pass=None
            if last_pass is None
            else PassOutcome(
                started_at=_from_micros(last_pass[0]),
                finished_at=_from_micros(last_pass[1]),
                error=last_pass[2],
            ),
            last_success_at=_optional_from_micros(last_pass[3] if last_pass else None),
            archived=archived,
            archived_recently=recently,
            held_back=held_back,
            failing=failing,
            newest_error=newest_error[0] if newest_error else None,
            newest_error_at=_from_micros(newest_error[1]) if newest_error else None,
            oldest_unarchived=oldest[0] if oldest else None,
        )

    def source_names(self) -> list[str]:
        with self._errors():
            rows = self._connection.execute(
                "SELECT source FROM sessions UNION SELECT source FROM watermarks"
                " UNION SELECT source FROM passes ORDER BY source"
            ).fetchall()
        return [str(row[0]) for row in rows]

    def write(self, statement: str, parameters: dict[str, object]) -> None:
        with self._errors(), self._transaction():
            self._connection.execute(statement, parameters)

    def write_many(self, writes: list[tuple[str, dict[str, object]]]) -> list[StateError | None]:
        """All in one transaction; if that fails, each in its own: a bad one fails alone."""
        if not writes:
            return []
        try:
            with self._errors(), self._transaction():
                for statement, parameters in writes:
                    self._connection.execute(statement, parameters)
            return [None] * len(writes)
        except StateError as error:
            if len(writes) == 1:
                return [error]
        outcomes: list[StateError | None] = []
        for statement, parameters in writes:
            try:
                self.write(statement, parameters)
                outcomes.append(None)
            except StateError as error:
                outcomes.append(error)
        return outcomes

    def record_failure(self, parameters: dict[str, object]) -> int:
        with self._errors(), self._transaction():
            self._connection.execute(UPSERT_FAILURE, parameters)
            row = self._connection.execute(
                "SELECT attempts FROM sessions WHERE source = :source AND session_id = :session_id",
                parameters,
            ).fetchone()
        return int(row[0])

    @contextlib.contextmanager
    def _transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
        self._connection.execute(begin)
        try:
            yield
            self._connection.execute("COMMIT")
        except BaseException:
            _roll_back(self._connection)
            raise

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StateError(f"state database {self.description}: {exc}") from exc


def _connect(target: Path | str, description: str) -> sqlite3.Connection:
    try:
        connection = sqlite3.connect(
            # Used by one thread at a time (the state's executor); close may come from another.
            target,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
    except sqlite3.Error as exc:
        raise StateError(f"state database {description}: cannot open: {exc}") from exc
    try:
        _configure(connection, in_memory=target == MEMORY)
        _migrate(connection, description)
    except sqlite3.Error as exc:
        connection.close()
        raise StateError(f"state database {description} is not usable: {exc}") from exc
    except BaseException:
        connection.close()
        raise
    return connection


def _configure(connection: sqlite3.Connection, *, in_memory: bool) -> None:
    journal_mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if not in_memory and str(journal_mode).lower() != "wal":
        raise sqlite3.OperationalError(f"cannot switch to WAL journal mode (got {journal_mode})")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA foreign_keys = ON")


def _migrate(connection: sqlite3.Connection, description: str) -> None:
    """Bring the schema to SCHEMA_VERSION, one version per transaction."""
    while True:
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = int(connection.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"state database {description} has schema version {version}, newer than"
                    f" this archiver's {SCHEMA_VERSION}; upgrade archiver"
                )
            if version == SCHEMA_VERSION:
                connection.execute("COMMIT")
                return
            for statement in MIGRATIONS[version]:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {version + 1}")
            connection.execute("COMMIT")
        except BaseException:
            _roll_back(connection)
            raise


def _roll_back(connection: sqlite3.Connection) -> None:
    """Undo an unfinished transaction (SQLite may already have undone it on some errors)."""
    if connection.in_transaction:
        connection.execute("ROLLBACK")


def _create_owner_only(database: Path) -> None:
    """Create the database file 0o600 before SQLite opens it, so it never has wider modes.

    An existing non-empty file must start with SQLite's header: SQLite itself would take a
    file shorter than a header for an empty database and overwrite it.
    """
    descriptor = open_owner_only(database, database)
    try:
        header = os.pread(descriptor, len(SQLITE_HEADER), 0)
    except OSError as exc:
        raise StateError(f"state database {database}: cannot read it: {exc}") from exc
    finally:
        os.close(descriptor)
    if header and header != SQLITE_HEADER:
        raise StateError(f"state database {database} is not an SQLite database") from ValueError(
            f"file starts with {header!r}"
        )


def _session_record(row: Sequence[Any]) -> SessionRecord:
    (source, session_id, status, locator, started_at, first_seen, updated_at) = row[:7]
    (attempts, last_error, manifest_key) = row[7:]
    return SessionRecord(
        source=source,
        session_id=session_id,
        status=cast(SessionStatus, status),
        locator=locator,
        started_at=None if started_at is None else _from_micros(started_at),
        first_seen=_from_micros(first_seen),
        updated_at=_from_micros(updated_at),
        attempts=attempts,
        last_error=last_error,
        manifest_key=manifest_key,
    )


def to_micros(moment: datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"state times must be timezone-aware, got naive {moment.isoformat()}")
    return (moment - _EPOCH) // _MICROSECOND


def session_parameters(
    source: str,
    session_id: str,
    at: datetime,
    locator: str | None,
    started_at: datetime | None,
    **extra: str,
) -> dict[str, object]:
    """The named parameters every upsert of a session row takes."""
    return {
        "source": source,
        "session_id": session_id,
        "at": to_micros(at),
        "locator": locator,
        "started_at": _optional_micros(started_at),
        **extra,
    }


def _optional_micros(moment: datetime | None) -> int | None:
    return None if moment is None else to_micros(moment)


def _optional_from_micros(micros: int | None) -> datetime | None:
    return None if micros is None else _from_micros(micros)


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)
