"""PostgreSQL state: one database shared by every archiver replica (psycopg 3, async).

Unlike SQLite, nothing locks the database to one process: replicas share it by design,
each with a writer id of its own (the ``writers`` table maps a replica name, by default
the host name, to a random id created on first use), so the store's session claims
(:mod:`archiver.claims`) tell them apart.

The schema is created and migrated by the archiver: ``schema_migrations`` holds one row per
version applied; each migration runs in one transaction that first takes a
transaction-level advisory lock, so replicas starting at once migrate one after the other
(the later ones find the work done). Every call is one statement in autocommit mode, or one
short transaction when it needs several; the connections come from a small pool.

The password is never in the URL (the configuration refuses one there): it is passed on
its own, and never appears in :attr:`PostgresState.description`, a ``repr`` or an error.
TLS settings travel in the URL's query (``sslmode``, ``sslrootcert``...), as libpq reads
them. Times are ``timestamptz``, read and written in UTC.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from archiver.errors import StateError
from archiver.model import PassOutcome, SessionRecord, SessionStatus, SourceSummary
from archiver.pacing import RequestBudget
from archiver.state import check_postgres_url
from archiver.state.postgres_work import PostgresBudget, PostgresWork
from archiver.state.shared import SharedWork

STATUSES: tuple[SessionStatus, ...] = ("pending", "failed", "archived")
CONNECT_TIMEOUT_SECONDS = 10
# Calls may run concurrently from one event loop (sessions of several sources at once): a
# few connections serve them; more calls wait for one (up to POOL_TIMEOUT_SECONDS).
POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 8
POOL_TIMEOUT_SECONDS = 30.0
POOL_MAX_IDLE_SECONDS = 300.0
# pg_advisory_xact_lock key of schema migrations: "archiver" in ASCII, as a bigint.
MIGRATION_LOCK = 0x61726368_69766572

# Schema version N is reached by running MIGRATIONS[N - 1]; append, never edit. Text keys
# compare bytewise (COLLATE "C"), as SQLite's do, whatever the database's collation.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE sessions (
            source       text COLLATE "C" NOT NULL,
            session_id   text COLLATE "C" NOT NULL,
            status       text NOT NULL CHECK (status IN ('pending', 'failed', 'archived')),
            locator      text,
            started_at   timestamptz,
            first_seen   timestamptz NOT NULL,
            updated_at   timestamptz NOT NULL,
            attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            last_error   text,
            manifest_key text,
            archived_at  timestamptz,
            CHECK (status <> 'archived' OR manifest_key IS NOT NULL),
            PRIMARY KEY (source, session_id)
        )
        """,
        "CREATE INDEX sessions_by_status ON sessions (source, status, started_at)",
        "CREATE INDEX sessions_by_archived_at ON sessions (source, archived_at)",
        """
        CREATE TABLE watermarks (
            source text COLLATE "C" PRIMARY KEY,
            at     timestamptz NOT NULL
        )
        """,
        """
        CREATE TABLE passes (
            source          text COLLATE "C" PRIMARY KEY,
            started_at      timestamptz NOT NULL,
            finished_at     timestamptz NOT NULL,
            error           text,
            last_success_at timestamptz
        )
        """,
        # Who writes to the store on behalf of each replica: named in the store's session
        # claims (archiver.claims), the same across restarts of that replica.
        """
        CREATE TABLE writers (
            replica    text COLLATE "C" PRIMARY KEY,
            id         text NOT NULL UNIQUE CHECK (id ~ '^[0-9a-f]{32}$'),
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """,
    ),
    # Work shared by the replicas (archiver.state.shared): the sessions waiting for one of
    # them to archive each, and each source's listing lease.
    (
        """
        CREATE TABLE work (
            source      text COLLATE "C" NOT NULL,
            session_id  text COLLATE "C" NOT NULL,
            started_at  timestamptz NOT NULL,
            session     text NOT NULL,
            overdue     boolean NOT NULL DEFAULT false,
            holder      text,
            lease_until timestamptz,
            enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (source, session_id)
        )
        """,
        "CREATE INDEX work_by_start ON work (source, started_at, session_id)",
        "CREATE INDEX work_by_holder ON work (holder) WHERE holder IS NOT NULL",
        """
        CREATE TABLE listings (
            source      text COLLATE "C" PRIMARY KEY,
            holder      text NOT NULL,
            lease_until timestamptz NOT NULL
        )
        """,
    ),
    # Each vendor's next turn for an API request, shared by the replicas (archiver.pacing).
    (
        """
        CREATE TABLE request_budgets (
            vendor    text COLLATE "C" PRIMARY KEY,
            next_turn timestamptz NOT NULL
        )
        """,
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = (
    "source, session_id, status, locator, started_at, first_seen, updated_at, attempts,"
    " last_error, manifest_key"
)
# Oldest first; sessions without a start time after the others, in a stable order.
OLDEST_FIRST = "ORDER BY started_at ASC NULLS LAST, first_seen, session_id"

UPSERT_SUCCESS = """
    INSERT INTO sessions AS s (
        source, session_id, status, locator, started_at, first_seen, updated_at, manifest_key,
        archived_at
    )
    VALUES (
        %(source)s, %(session_id)s, 'archived', %(locator)s, %(started_at)s, %(at)s, %(at)s,
        %(manifest_key)s, %(at)s
    )
    ON CONFLICT (source, session_id) DO UPDATE SET
        status = 'archived',
        manifest_key = excluded.manifest_key,
        archived_at = COALESCE(s.archived_at, excluded.archived_at),
        locator = COALESCE(excluded.locator, s.locator),
        started_at = COALESCE(excluded.started_at, s.started_at),
        last_error = NULL,
        updated_at = excluded.updated_at
"""
# An archived row stays archived (with its manifest key): a failed re-archive never hides
# earlier evidence.
UPSERT_FAILURE = """
    INSERT INTO sessions AS s (
        source, session_id, status, locator, started_at, first_seen, updated_at, attempts,
        last_error
    )
    VALUES (
        %(source)s, %(session_id)s, 'failed', %(locator)s, %(started_at)s, %(at)s, %(at)s, 1,
        %(error)s
    )
    ON CONFLICT (source, session_id) DO UPDATE SET
        status = CASE s.status WHEN 'archived' THEN 'archived' ELSE 'failed' END,
        locator = COALESCE(excluded.locator, s.locator),
        started_at = COALESCE(excluded.started_at, s.started_at),
        attempts = s.attempts + 1,
        last_error = excluded.last_error,
        updated_at = excluded.updated_at
    RETURNING attempts
"""
UPSERT_PENDING = """
    INSERT INTO sessions AS s (
        source, session_id, status, locator, started_at, first_seen, updated_at
    )
    VALUES (
        %(source)s, %(session_id)s, 'pending', %(locator)s, %(started_at)s, %(at)s, %(at)s
    )
    ON CONFLICT (source, session_id) DO UPDATE SET
        status = CASE s.status WHEN 'archived' THEN 'archived' ELSE 'pending' END,
        locator = COALESCE(excluded.locator, s.locator),
        started_at = COALESCE(excluded.started_at, s.started_at),
        updated_at = excluded.updated_at
"""
UPSERT_SOURCE_OUTCOME = """
    INSERT INTO passes AS p (source, started_at, finished_at, error, last_success_at)
    VALUES (
        %(source)s, %(started_at)s, %(finished_at)s, %(error)s,
        CASE WHEN %(error)s::text IS NULL THEN %(finished_at)s END
    )
    ON CONFLICT (source) DO UPDATE SET
        started_at = excluded.started_at,
        finished_at = excluded.finished_at,
        error = excluded.error,
        last_success_at = COALESCE(excluded.last_success_at, p.last_success_at)
"""
SET_WATERMARK = """
    INSERT INTO watermarks (source, at) VALUES (%(source)s, %(at)s)
    ON CONFLICT (source) DO UPDATE SET at = excluded.at
"""
CLAIM_WRITER = """
    INSERT INTO writers (replica, id) VALUES (%s, %s) ON CONFLICT (replica) DO NOTHING
"""
SUMMARY = """
    SELECT
        COUNT(*) FILTER (WHERE status = 'archived'),
        COUNT(*) FILTER (WHERE status = 'archived' AND archived_at >= %(since)s),
        COUNT(*) FILTER (WHERE status = 'pending'),
        COUNT(*) FILTER (WHERE status = 'failed'),
        (SELECT at FROM watermarks WHERE source = %(source)s)
    FROM sessions WHERE source = %(source)s
"""

_Connection = psycopg.AsyncConnection[TupleRow]


class PostgresState:
    """The State seam over one PostgreSQL database. Create it with :meth:`open`."""

    def __init__(
        self,
        pool: AsyncConnectionPool[_Connection],
        description: str,
        *,
        replica: str,
        read_only: bool,
        secret: str | None,
    ) -> None:
        self._pool: AsyncConnectionPool[_Connection] | None = pool
        self.description = description
        self.replica = replica
        self.read_only = read_only
        self._secret = secret
        self._writer_id: str | None = None

    def __repr__(self) -> str:
        mode = ", read-only" if self.read_only else ""
        return f"PostgresState({self.description!r}, replica={self.replica!r}{mode})"

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        read_only: bool = False,
        password: str | None = None,
        replica: str | None = None,
    ) -> PostgresState:
        """Connect, create or migrate the schema, and open the pool of connections.

        ``read_only`` changes nothing (the schema must be at this archiver's version) and
        every session of the pool defaults to read-only transactions: for reading beside
        the running replicas. Raises StateError if the database cannot be used.
        """
        try:
            description = check_postgres_url(url)
        except ValueError as exc:
            raise StateError(str(exc)) from None
        secret = password or None
        replica = replica or socket.gethostname()
        options: dict[str, Any] = {"autocommit": True}
        if secret is not None:
            options["password"] = secret
        if "connect_timeout" not in url:
            options["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
        with _errors(description, secret, doing="cannot connect"):
            connection = await psycopg.AsyncConnection.connect(url, **options)
        try:
            with _errors(description, secret, doing="cannot prepare its schema"):
                if read_only:
                    await _check_version(connection, description)
                else:
                    await _migrate(connection, description)
        finally:
            await connection.close()

        async def configure(connection: _Connection) -> None:
            await connection.execute("SET TIME ZONE 'UTC'")
            if read_only:
                await connection.execute("SET default_transaction_read_only = on")

        pool: AsyncConnectionPool[_Connection] = AsyncConnectionPool(
            url,
            kwargs=options,
            min_size=POOL_MIN_SIZE,
            max_size=POOL_MAX_SIZE,
            timeout=POOL_TIMEOUT_SECONDS,
            max_idle=POOL_MAX_IDLE_SECONDS,
            configure=configure,
            # A connection the server closed (restarted, or pg_terminate_backend) is found
            # and replaced before it is handed out, not when a call fails on it.
            check=AsyncConnectionPool.check_connection,
            name="archiver-state",
            open=False,
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS + 5)
        except PoolTimeout:
            await pool.close()
            raise StateError(
                f"state database {description}: cannot open its pool of connections"
            ) from None
        except BaseException:
            await pool.close()
            raise
        return cls(pool, description, replica=replica, read_only=read_only, secret=secret)

    def connection(self) -> contextlib.AbstractAsyncContextManager[_Connection]:
        """A connection of the pool, in autocommit mode; database errors become StateError."""
        return self._connection()

    def shared_work(self) -> SharedWork:
        """The queue of sessions and the listing leases the replicas share."""
        return PostgresWork(self._connection, writable=self._writable)

    def request_budget(self) -> RequestBudget:
        """Turns at each vendor's API, shared by the replicas."""
        return PostgresBudget(self._connection)

    async def writer_id(self) -> str:
        if self._writer_id is None:
            async with self._connection() as connection:
                if not self.read_only:
                    await connection.execute(CLAIM_WRITER, (self.replica, secrets.token_hex(16)))
                row = await _one(
                    connection, "SELECT id FROM writers WHERE replica = %s", (self.replica,)
                )
            if row is None:
                raise StateError(
                    f"state database {self.description} has no writer id for replica"
                    f" {self.replica!r} yet (opened read-only)"
                )
            self._writer_id = str(row[0])
        return self._writer_id

    async def watermark(self, source: str) -> datetime | None:
        async with self._connection() as connection:
            row = await _one(connection, "SELECT at FROM watermarks WHERE source = %s", (source,))
        return None if row is None else _utc(row[0])

    async def set_watermark(self, source: str, at: datetime) -> None:
        await self._write(SET_WATERMARK, {"source": source, "at": _aware(at)})

    async def get(self, source: str, session_id: str) -> SessionRecord | None:
        found = await self._records("WHERE source = %s AND session_id = %s", (source, session_id))
        return found[0] if found else None

    async def get_many(self, source: str, session_ids: Collection[str]) -> dict[str, SessionRecord]:
        if not session_ids:
            return {}
        found = await self._records(
            "WHERE source = %s AND session_id = ANY(%s)", (source, list(set(session_ids)))
        )
        return {record.session_id: record for record in found}

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
            UPSERT_SUCCESS,
            _session_parameters(
                source, session_id, at, locator, started_at, manifest_key=manifest_key
            ),
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
        parameters = _session_parameters(source, session_id, at, locator, started_at, error=error)
        self._writable()
        async with self._connection() as connection:
            row = await _one(connection, UPSERT_FAILURE, parameters)
        assert row is not None  # an upsert returns its row
        return int(row[0])

    async def record_pending(
        self,
        source: str,
        session_id: str,
        *,
        at: datetime,
        locator: str | None = None,
        started_at: datetime | None = None,
    ) -> None:
        await self._write(
            UPSERT_PENDING, _session_parameters(source, session_id, at, locator, started_at)
        )

    async def pending(self, source: str) -> list[SessionRecord]:
        return await self._records(
            f"WHERE source = %s AND status = 'pending' {OLDEST_FIRST}", (source,)
        )

    async def retryable_failures(self, source: str, *, max_attempts: int) -> list[SessionRecord]:
        return await self._records(
            f"WHERE source = %s AND status = 'failed' AND attempts < %s {OLDEST_FIRST}",
            (source, max_attempts),
        )

    async def forget(self, source: str, session_id: str) -> None:
        await self._write(
            "DELETE FROM sessions WHERE source = %(source)s AND session_id = %(session_id)s",
            {"source": source, "session_id": session_id},
        )

    async def counts(self, source: str | None = None) -> dict[str, int]:
        query = "SELECT status, COUNT(*) FROM sessions"
        parameters: tuple[str, ...] = ()
        if source is not None:
            query += " WHERE source = %s"
            parameters = (source,)
        async with self._connection() as connection:
            rows = await _all(connection, f"{query} GROUP BY status", parameters)
        counted: dict[str, int] = dict.fromkeys(STATUSES, 0)
        counted.update((str(status), int(count)) for status, count in rows)
        return counted

    async def record_pass(self, source: str, outcome: PassOutcome) -> None:
        await self._write(
            UPSERT_SOURCE_OUTCOME,
            {
                "source": source,
                "started_at": _aware(outcome.started_at),
                "finished_at": _aware(outcome.finished_at),
                "error": outcome.error,
            },
        )

    async def oldest_unarchived(self, source: str) -> SessionRecord | None:
        found = await self._records(
            f"WHERE source = %s AND status = 'failed' {OLDEST_FIRST} LIMIT 1", (source,)
        )
        return found[0] if found else None

    async def summary(self, source: str, *, archived_since: datetime) -> SourceSummary:
        since = _aware(archived_since)
        async with self._connection() as connection, connection.transaction():
            # One snapshot for every query of the summary.
            await connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            counted = await _one(connection, SUMMARY, {"source": source, "since": since})
            newest_error = await _one(
                connection,
                "SELECT last_error, updated_at FROM sessions"
                " WHERE source = %s AND status = 'failed' ORDER BY updated_at DESC LIMIT 1",
                (source,),
            )
            last_pass = await _one(
                connection,
                "SELECT started_at, finished_at, error, last_success_at FROM passes"
                " WHERE source = %s",
                (source,),
            )
            oldest = await _all(
                connection,
                f"SELECT {_COLUMNS} FROM sessions"  # noqa: S608 - constant fragments
                f" WHERE source = %s AND status = 'failed' {OLDEST_FIRST} LIMIT 1",
                (source,),
            )
        assert counted is not None  # an aggregate always has its row
        archived, recently, held_back, failing, watermark = counted
        return SourceSummary(
            source=source,
            watermark=_optional_utc(watermark),
            last_pass=None
            if last_pass is None
            else PassOutcome(
                started_at=_utc(last_pass[0]),
                finished_at=_utc(last_pass[1]),
                error=last_pass[2],
            ),
            last_success_at=_optional_utc(last_pass[3] if last_pass else None),
            archived=int(archived),
            archived_recently=int(recently),
            held_back=int(held_back),
            failing=int(failing),
            newest_error=newest_error[0] if newest_error else None,
            newest_error_at=_utc(newest_error[1]) if newest_error else None,
            oldest_unarchived=_session_record(oldest[0]) if oldest else None,
        )

    async def source_names(self) -> list[str]:
        async with self._connection() as connection:
            rows = await _all(
                connection,
                "SELECT source FROM sessions UNION SELECT source FROM watermarks"
                " UNION SELECT source FROM passes ORDER BY source",
                (),
            )
        return [str(row[0]) for row in rows]

    async def close(self) -> None:
        """Close the pool's connections; calling it again does nothing."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _records(self, where: str, parameters: Sequence[object]) -> list[SessionRecord]:
        async with self._connection() as connection:
            rows = await _all(
                connection,
                f"SELECT {_COLUMNS} FROM sessions {where}",  # noqa: S608 - constant fragments
                parameters,
            )
        return [_session_record(row) for row in rows]

    async def _write(self, statement: str, parameters: dict[str, object]) -> None:
        self._writable()
        async with self._connection() as connection:
            await connection.execute(statement, parameters)

    def _writable(self) -> None:
        if self.read_only:
            raise StateError(f"state database {self.description} is open read-only")

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[_Connection]:
        """A connection of the pool; database errors become StateError."""
        if self._pool is None:
            raise StateError(f"state database {self.description} is closed")
        with _errors(self.description, self._secret):
            try:
                async with self._pool.connection() as connection:
                    yield connection
            except PoolTimeout as exc:
                raise StateError(
                    f"state database {self.description}: no connection free after"
                    f" {POOL_TIMEOUT_SECONDS:g} s"
                ) from exc


async def _migrate(connection: _Connection, description: str) -> None:
    """Bring the schema to SCHEMA_VERSION, one version per transaction, under the lock."""
    while True:
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            version = await _version(connection)
            _refuse_newer(version, description)
            if version == SCHEMA_VERSION:
                return
            for statement in MIGRATIONS[version]:
                await connection.execute(cast(Any, statement))
            await connection.execute(
                "INSERT INTO schema_migrations (version) VALUES (%s)", (version + 1,)
            )


async def _check_version(connection: _Connection, description: str) -> None:
    """Read-only: the schema must be this archiver's, created by a replica before."""
    exists = await _one(connection, "SELECT to_regclass('schema_migrations') IS NOT NULL", ())
    if exists is None or not exists[0]:
        raise StateError(
            f"state database {description} has no archiver schema: the archiver has not run"
            " with this state yet"
        )
    version = await _version(connection)
    _refuse_newer(version, description)
    if version != SCHEMA_VERSION:
        raise StateError(
            f"state database {description} has schema version {version}, this archiver"
            f" reads version {SCHEMA_VERSION}: start the daemon once"
        )


async def _version(connection: _Connection) -> int:
    row = await _one(connection, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", ())
    return int(row[0]) if row is not None else 0


def _refuse_newer(version: int, description: str) -> None:
    if version > SCHEMA_VERSION:
        raise StateError(
            f"state database {description} has schema version {version}, newer than this"
            f" archiver's {SCHEMA_VERSION}; upgrade archiver"
        )


async def _one(connection: _Connection, query: str, parameters: Any) -> TupleRow | None:
    cursor = await connection.execute(cast(Any, query), parameters)
    return await cursor.fetchone()


async def _all(connection: _Connection, query: str, parameters: Any) -> list[TupleRow]:
    cursor = await connection.execute(cast(Any, query), parameters)
    return await cursor.fetchall()


@contextlib.contextmanager
def _errors(description: str, secret: str | None, *, doing: str = "") -> Iterator[None]:
    """psycopg's errors as StateError: one line, naming the database, never the password."""
    try:
        yield
    except psycopg.Error as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        if secret:
            detail = detail.replace(secret, "***")
        doing = f"{doing}: " if doing else ""
        raise StateError(f"state database {description}: {doing}{detail}") from None


def _session_parameters(
    source: str,
    session_id: str,
    at: datetime,
    locator: str | None,
    started_at: datetime | None,
    **extra: str,
) -> dict[str, object]:
    return {
        "source": source,
        "session_id": session_id,
        "at": _aware(at),
        "locator": locator,
        "started_at": None if started_at is None else _aware(started_at),
        **extra,
    }


def _session_record(row: Sequence[Any]) -> SessionRecord:
    (source, session_id, status, locator, started_at, first_seen, updated_at) = row[:7]
    (attempts, last_error, manifest_key) = row[7:]
    return SessionRecord(
        source=source,
        session_id=session_id,
        status=cast(SessionStatus, status),
        locator=locator,
        started_at=_optional_utc(started_at),
        first_seen=_utc(first_seen),
        updated_at=_utc(updated_at),
        attempts=attempts,
        last_error=last_error,
        manifest_key=manifest_key,
    )


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"state times must be timezone-aware, got naive {moment.isoformat()}")
    return moment


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _optional_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)
