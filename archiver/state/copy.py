"""``archiver state copy``: an installation's SQLite state moved into PostgreSQL.

Everything the SQLite state holds is read in one snapshot and written in one PostgreSQL
transaction: every session row (archived, failed, held back, with its attempts and first
archive time), each source's watermark and last pass, and the writer id the SQLite
installation used in the store's session claims, given to the replica named ``replica``
(so that a session it had claimed but not finished stays its own). Nothing is archived again:
an archived session stays archived with its manifest key.

It is safe to run again, and to run into a database replicas already use: a row already
there is only replaced by a newer one (by ``updated_at``), an archived row never by one that
is not, a watermark only moves back (a later listing finds again what it would skip), and a
replica that already has a writer id keeps it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from archiver.errors import StateError
from archiver.state import POSTGRES_SCHEMES, check_state_url, sqlite_path
from archiver.state.postgres import PostgresState
from archiver.state.sqlite_db import Database, StateDump

UPSERT_SESSION = """
    INSERT INTO sessions AS s (
        source, session_id, status, locator, started_at, first_seen, updated_at, attempts,
        last_error, manifest_key, archived_at
    )
    VALUES (
        %(source)s, %(session_id)s, %(status)s, %(locator)s, %(started_at)s, %(first_seen)s,
        %(updated_at)s, %(attempts)s, %(last_error)s, %(manifest_key)s, %(archived_at)s
    )
    ON CONFLICT (source, session_id) DO UPDATE SET
        status = excluded.status,
        locator = COALESCE(excluded.locator, s.locator),
        started_at = COALESCE(excluded.started_at, s.started_at),
        first_seen = LEAST(s.first_seen, excluded.first_seen),
        updated_at = excluded.updated_at,
        attempts = GREATEST(s.attempts, excluded.attempts),
        last_error = excluded.last_error,
        manifest_key = excluded.manifest_key,
        archived_at = COALESCE(LEAST(s.archived_at, excluded.archived_at), s.archived_at,
                               excluded.archived_at)
    WHERE s.updated_at <= excluded.updated_at
        AND (s.status <> 'archived' OR excluded.status = 'archived')
"""
UPSERT_WATERMARK = """
    INSERT INTO watermarks AS w (source, at) VALUES (%s, %s)
    ON CONFLICT (source) DO UPDATE SET at = LEAST(w.at, excluded.at)
"""
UPSERT_OUTCOME = """
    INSERT INTO passes AS p (source, started_at, finished_at, error, last_success_at)
    VALUES (%s, %s, %s, %s, %s)
    ON CONFLICT (source) DO UPDATE SET
        started_at = excluded.started_at,
        finished_at = excluded.finished_at,
        error = excluded.error,
        last_success_at = GREATEST(p.last_success_at, excluded.last_success_at)
    WHERE p.finished_at <= excluded.finished_at
"""
ADOPT_WRITER = """
    INSERT INTO writers (replica, id) VALUES (%s, %s)
    ON CONFLICT DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class CopyReport:
    sessions: int
    watermarks: int
    passes: int
    replica: str
    writer_adopted: bool
    """Whether ``replica`` now writes to the store as the SQLite installation did."""
    target: str


async def copy_state(
    from_url: str, to_url: str, *, password: str | None = None, replica: str | None = None
) -> CopyReport:
    """Copy the SQLite state at ``from_url`` into the PostgreSQL database at ``to_url``
    (created or migrated first). StateError says what cannot be done."""
    if _scheme(from_url) != "sqlite" or sqlite_path(from_url) == ":memory:":
        raise StateError("state copy reads a SQLite file: --from sqlite:////path/state.db")
    if _scheme(to_url) not in POSTGRES_SCHEMES:
        raise StateError(
            "state copy writes to PostgreSQL: --to postgresql://user@host:5432/database"
        )
    # Read-only, without the lock: the archiver using it should be stopped, but copying a
    # snapshot beside it is safe, and copying again later brings the rest.
    database = Database.connect_read_only(sqlite_path(from_url))
    try:
        dump = await asyncio.to_thread(database.dump)
    finally:
        database.close()
    target = await PostgresState.open(to_url, password=password, replica=replica)
    try:
        adopted = await _write(target, dump)
    finally:
        await target.close()
    return CopyReport(
        sessions=len(dump.sessions),
        watermarks=len(dump.watermarks),
        passes=len(dump.passes),
        replica=target.replica,
        writer_adopted=adopted,
        target=target.description,
    )


async def _write(target: PostgresState, dump: StateDump) -> bool:
    sessions = [
        {
            "source": record.source,
            "session_id": record.session_id,
            "status": record.status,
            "locator": record.locator,
            "started_at": record.started_at,
            "first_seen": record.first_seen,
            "updated_at": record.updated_at,
            "attempts": record.attempts,
            "last_error": record.last_error,
            "manifest_key": record.manifest_key,
            "archived_at": archived_at,
        }
        for record, archived_at in dump.sessions
    ]
    async with (
        target.connection() as connection,
        connection.transaction(),
        connection.cursor() as cursor,
    ):
        await cursor.executemany(UPSERT_SESSION, sessions)
        await cursor.executemany(UPSERT_WATERMARK, dump.watermarks)
        await cursor.executemany(UPSERT_OUTCOME, dump.passes)
        await cursor.execute(ADOPT_WRITER, (target.replica, dump.writer_id))
        await cursor.execute("SELECT id FROM writers WHERE replica = %s", (target.replica,))
        row = await cursor.fetchone()
    return row is not None and row[0] == dump.writer_id


def _scheme(url: str) -> str:
    try:
        return check_state_url(url)
    except ValueError as exc:
        raise StateError(str(exc)) from None
