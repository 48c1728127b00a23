"""SQLite state: one local database file, guarded by a single-writer lock file.

Every call runs on one dedicated worker thread (the connection never leaves it) and is a
single short transaction. ``journal_mode=WAL`` with ``synchronous=FULL`` makes each
committed call durable, so a crash at any moment loses at most the call under way.
Writes are group-committed: the ones queued while the thread is busy share the next
transaction (and its fsync); if that transaction fails, each is tried on its own, so a
write that fails fails only its caller.

Next to ``state.db`` lives ``state.db.lock``: the process holding an exclusive ``flock`` on
it (and whose pid it contains) is the only archiver allowed to use the database. The kernel
drops the lock when that process dies, so a stale lock file never blocks a restart.

The database, its ``-wal``/``-shm`` companions (SQLite copies the database's mode) and the
lock file are owner-only (0o600); a missing parent directory is created owner-only (0o700).

Times are stored as integer microseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from archiver.errors import StateError, StateLocked
from archiver.model import PassOutcome, SessionRecord, SessionStatus, SourceSummary
from archiver.state import SQLITE_MEMORY as MEMORY

SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 5_000
FILE_MODE = 0o600
DIRECTORY_MODE = 0o700
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
_OLDEST_FIRST = "ORDER BY started_at IS NULL, started_at, first_seen, session_id"

_UPSERT_SUCCESS = """
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
_UPSERT_FAILURE = """
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
_UPSERT_PENDING = """
    INSERT INTO sessions (source, session_id, status, locator, started_at, first_seen, updated_at)
    VALUES (:source, :session_id, 'pending', :locator, :started_at, :at, :at)
    ON CONFLICT (source, session_id) DO UPDATE SET
        status = CASE status WHEN 'archived' THEN 'archived' ELSE 'pending' END,
        locator = COALESCE(excluded.locator, locator),
        started_at = COALESCE(excluded.started_at, started_at),
        updated_at = excluded.updated_at
"""

_UPSERT_SOURCE_OUTCOME = """
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

_SET_WATERMARK = """
    INSERT INTO watermarks (source, at) VALUES (:source, :at)
    ON CONFLICT (source) DO UPDATE SET at = excluded.at
"""

_T = TypeVar("_T")
_P = ParamSpec("_P")


@dataclass(frozen=True, slots=True)
class _Write:
    statement: str
    parameters: dict[str, object]
    done: Future[None]


class SqliteState:
    """The State seam over one SQLite file (or ``:memory:``). Create it with :meth:`open`."""

    def __init__(self, database: _Database, executor: ThreadPoolExecutor) -> None:
        self._database: _Database | None = database
        self._executor = executor
        self.description = database.description
        self._queue_lock = threading.Lock()  # the loop queues writes, the state's thread takes them
        self._queued: list[_Write] = []
        self._commit_pending = False

    @classmethod
    async def open(cls, path: Path | str, *, read_only: bool = False) -> SqliteState:
        """Lock, create or migrate, and connect to the database at ``path``.

        Raises StateLocked if another process uses it, StateError if it cannot be used.
        ``read_only`` takes no lock and changes nothing (the database must exist, at this
        archiver's schema version): for reading beside a running daemon.
        """
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archiver-state")
        connect = _Database.connect_read_only if read_only else _Database.connect
        connecting = executor.submit(connect, path)
        try:
            database = await asyncio.wrap_future(connecting)
        except BaseException:
            # Cancelled while connecting: close the database (and its lock) once it is open.
            connecting.add_done_callback(_close_if_opened)
            executor.shutdown(wait=False)
            raise
        return cls(database, executor)

    async def watermark(self, source: str) -> datetime | None:
        return await self._run(_Database.watermark, source)

    async def writer_id(self) -> str:
        return await self._run(_Database.writer_id)

    async def set_watermark(self, source: str, at: datetime) -> None:
        await self._write(_SET_WATERMARK, {"source": source, "at": _to_micros(at)})

    async def get(self, source: str, session_id: str) -> SessionRecord | None:
        return await self._run(_Database.get, source, session_id)

    async def get_many(self, source: str, session_ids: Collection[str]) -> dict[str, SessionRecord]:
        return await self._run(_Database.get_many, source, list(set(session_ids)))

    async def record_success(
        self,
        source: str,
        session_id: str,
        *,
        manifest_key: str,
        at: datetime,
        locator: str | None = None,
        started_at: datetime | None = None,
    ) -> None:
        await self._write(
            _UPSERT_SUCCESS,
            _row(source, session_id, at, locator, started_at, manifest_key=manifest_key),
        )

    async def record_failure(
        self,
        source: str,
        session_id: str,
        *,
        error: str,
        at: datetime,
        locator: str | None = None,
        started_at: datetime | None = None,
    ) -> int:
        return await self._run(
            _Database.record_failure,
            _row(source, session_id, at, locator, started_at, error=error),
        )

    async def record_pending(
        self,
        source: str,
        session_id: str,
        *,
        at: datetime,
        locator: str | None = None,
        started_at: datetime | None = None,
    ) -> None:
        await self._write(_UPSERT_PENDING, _row(source, session_id, at, locator, started_at))

    async def pending(self, source: str) -> list[SessionRecord]:
        return await self._run(
            _Database.records,
            f"WHERE source = ? AND status = 'pending' {_OLDEST_FIRST}",
            (source,),
        )

    async def retryable_failures(self, source: str, *, max_attempts: int) -> list[SessionRecord]:
        return await self._run(
            _Database.records,
            f"WHERE source = ? AND status = 'failed' AND attempts < ? {_OLDEST_FIRST}",
            (source, max_attempts),
        )

    async def forget(self, source: str, session_id: str) -> None:
        await self._write(
            "DELETE FROM sessions WHERE source = :source AND session_id = :session_id",
            {"source": source, "session_id": session_id},
        )

    async def counts(self, source: str | None = None) -> dict[str, int]:
        return await self._run(_Database.counts, source)

    async def record_pass(self, source: str, outcome: PassOutcome) -> None:
        await self._write(
            _UPSERT_SOURCE_OUTCOME,
            {
                "source": source,
                "started_at": _to_micros(outcome.started_at),
                "finished_at": _to_micros(outcome.finished_at),
                "error": outcome.error,
            },
        )

    async def oldest_unarchived(self, source: str) -> SessionRecord | None:
        found = await self._run(
            _Database.records,
            f"WHERE source = ? AND status = 'failed' {_OLDEST_FIRST} LIMIT 1",
            (source,),
        )
        return found[0] if found else None

    async def summary(self, source: str, *, archived_since: datetime) -> SourceSummary:
        return await self._run(_Database.summary, source, _to_micros(archived_since))

    async def source_names(self) -> list[str]:
        return await self._run(_Database.source_names)

    async def close(self) -> None:
        """Close the connection and release the lock; calling it again does nothing."""
        database, self._database = self._database, None
        if database is None:
            return
        try:
            await asyncio.wrap_future(self._executor.submit(database.close))
        finally:
            self._executor.shutdown(wait=True)

    async def _run(
        self, method: Callable[Concatenate[_Database, _P], _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """Run ``method(database, *args)`` on the state's own thread."""
        database = self._open_database()
        return await asyncio.wrap_future(self._executor.submit(method, database, *args, **kwargs))

    async def _write(self, statement: str, parameters: dict[str, object]) -> None:
        """Run one write, committed with the others queued by the time its turn comes.

        Only a write that finds no commit queued queues one on the state's thread (behind
        the calls already there, so a later read sees it); that commit takes every write
        queued by the time it runs. A write cancelled before then is not made.
        """
        database = self._open_database()
        write = _Write(statement, parameters, Future())
        with self._queue_lock:
            self._queued.append(write)
            start_commit, self._commit_pending = not self._commit_pending, True
        if start_commit:
            self._executor.submit(self._commit_queued, database)
        await asyncio.wrap_future(write.done)

    def _commit_queued(self, database: _Database) -> None:
        """On the state's thread: commit every write queued so far, in one transaction."""
        with self._queue_lock:
            queued, self._queued = self._queued, []
            self._commit_pending = False
        writes = [write for write in queued if write.done.set_running_or_notify_cancel()]
        try:
            outcomes = database.write_many([(each.statement, each.parameters) for each in writes])
        except BaseException as exc:  # not a database error: every caller still hears of it
            for write in writes:
                write.done.set_exception(exc)
            raise
        for write, error in zip(writes, outcomes, strict=True):
            if error is None:
                write.done.set_result(None)
            else:
                write.done.set_exception(error)

    def _open_database(self) -> _Database:
        if self._database is None:
            raise StateError(f"state database {self.description} is closed")
        return self._database


def _close_if_opened(connecting: Future[_Database]) -> None:
    if not connecting.cancelled() and connecting.exception() is None:
        with contextlib.suppress(StateError):
            connecting.result().close()


class _Database:
    """The blocking side: lives on the worker thread, one short transaction per method."""

    def __init__(
        self, description: str, connection: sqlite3.Connection, lock: _LockFile | None
    ) -> None:
        self.description = description
        self._connection = connection
        self._lock = lock

    @classmethod
    def connect(cls, path: Path | str) -> _Database:
        if path == MEMORY:
            return cls(MEMORY, _connect(MEMORY, MEMORY), lock=None)
        location = Path(path).absolute()
        description = str(location)
        _make_parent_directory(location)
        lock = _LockFile.acquire(location)
        try:
            _create_owner_only(location)
            return cls(description, _connect(location, description), lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def connect_read_only(cls, path: Path | str) -> _Database:
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
                f"WHERE source = ? AND status = 'failed' {_OLDEST_FIRST} LIMIT 1", (source,)
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
            self._connection.execute(_UPSERT_FAILURE, parameters)
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


class _LockFile:
    """An exclusive ``flock`` on ``<db>.lock``, holding the owner's pid."""

    def __init__(self, path: Path, descriptor: int) -> None:
        self.path = path
        self._descriptor = descriptor

    @classmethod
    def acquire(cls, database: Path) -> _LockFile:
        path = database.with_name(database.name + ".lock")
        descriptor = _open_owner_only(path, database)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(descriptor)
            os.close(descriptor)
            raise StateLocked(
                f"state database {database} is in use by another archiver process"
                f" (pid {holder}); stop it first or use another state url"
            ) from None
        except OSError as exc:
            os.close(descriptor)
            raise StateError(f"state database {database}: cannot lock {path}: {exc}") from exc
        try:
            _write_pid(descriptor)
        except OSError as exc:
            os.close(descriptor)
            raise StateError(f"state database {database}: cannot write {path}: {exc}") from exc
        return cls(path, descriptor)

    def release(self) -> None:
        """Clear the pid and drop the lock (closing the descriptor releases the flock)."""
        with contextlib.suppress(OSError):
            os.ftruncate(self._descriptor, 0)
        os.close(self._descriptor)


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


def _make_parent_directory(database: Path) -> None:
    try:
        database.parent.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(
            f"state database {database}: cannot create its directory {database.parent}: {exc}"
        ) from exc


def _create_owner_only(database: Path) -> None:
    """Create the database file 0o600 before SQLite opens it, so it never has wider modes.

    An existing non-empty file must start with SQLite's header: SQLite itself would take a
    file shorter than a header for an empty database and overwrite it.
    """
    descriptor = _open_owner_only(database, database)
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


def _open_owner_only(path: Path, database: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        raise StateError(f"state database {database}: cannot open {path}: {exc}") from exc


def _read_pid(descriptor: int) -> str:
    try:
        text = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


def _write_pid(descriptor: int) -> None:
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)


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


def _to_micros(moment: datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"state times must be timezone-aware, got naive {moment.isoformat()}")
    return (moment - _EPOCH) // _MICROSECOND


def _row(
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
        "at": _to_micros(at),
        "locator": locator,
        "started_at": _optional_micros(started_at),
        **extra,
    }


def _optional_micros(moment: datetime | None) -> int | None:
    return None if moment is None else _to_micros(moment)


def _optional_from_micros(micros: int | None) -> datetime | None:
    return None if micros is None else _from_micros(micros)


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)
