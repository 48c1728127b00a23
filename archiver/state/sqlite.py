"""SQLite state: one local database file, guarded by a single-writer lock file
(:mod:`archiver.state.files`); its schema and SQL are in :mod:`archiver.state.sqlite_db`.

Every call runs on one dedicated worker thread (the connection never leaves it) and is a
single short transaction. Writes are group-committed: the ones queued while the thread is
busy share the next transaction (and its fsync); if that transaction fails, each is tried
on its own, so a write that fails fails only its caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from archiver.errors import StateError
from archiver.model import PassOutcome, SessionRecord, SourceSummary
from archiver.state.sqlite_db import (
    OLDEST_FIRST,
    SET_WATERMARK,
    UPSERT_PENDING,
    UPSERT_SOURCE_OUTCOME,
    UPSERT_SUCCESS,
    Database,
    session_parameters,
    to_micros,
)

_T = TypeVar("_T")
_P = ParamSpec("_P")


@dataclass(frozen=True, slots=True)
class _Write:
    statement: str
    parameters: dict[str, object]
    done: Future[None]


class SqliteState:
    """The State seam over one SQLite file (or ``:memory:``). Create it with :meth:`open`."""

    def __init__(self, database: Database, executor: ThreadPoolExecutor) -> None:
        self._database: Database | None = database
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
        connect = Database.connect_read_only if read_only else Database.connect
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
        return await self._run(Database.watermark, source)

    async def writer_id(self) -> str:
        return await self._run(Database.writer_id)

    async def set_watermark(self, source: str, at: datetime) -> None:
        await self._write(SET_WATERMARK, {"source": source, "at": to_micros(at)})

    async def get(self, source: str, session_id: str) -> SessionRecord | None:
        return await self._run(Database.get, source, session_id)

    async def get_many(self, source: str, session_ids: Collection[str]) -> dict[str, SessionRecord]:
        return await self._run(Database.get_many, source, list(set(session_ids)))

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
            session_parameters(
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
        return await self._run(
            Database.record_failure,
            session_parameters(source, session_id, at, locator, started_at, error=error),
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
        await self._write(
            UPSERT_PENDING, session_parameters(source, session_id, at, locator, started_at)
        )

    async def pending(self, source: str) -> list[SessionRecord]:
        return await self._run(
            Database.records,
            f"WHERE source = ? AND status = 'pending' {OLDEST_FIRST}",
            (source,),
        )

    async def retryable_failures(self, source: str, *, max_attempts: int) -> list[SessionRecord]:
        return await self._run(
            Database.records,
            f"WHERE source = ? AND status = 'failed' AND attempts < ? {OLDEST_FIRST}",
            (source, max_attempts),
        )

    async def forget(self, source: str, session_id: str) -> None:
        await self._write(
            "DELETE FROM sessions WHERE source = :source AND session_id = :session_id",
            {"source": source, "session_id": session_id},
        )

    async def counts(self, source: str | None = None) -> dict[str, int]:
        return await self._run(Database.counts, source)

    async def record_pass(self, source: str, outcome: PassOutcome) -> None:
        await self._write(
            UPSERT_SOURCE_OUTCOME,
            {
                "source": source,
                "started_at": to_micros(outcome.started_at),
                "finished_at": to_micros(outcome.finished_at),
                "error": outcome.error,
            },
        )

    async def oldest_unarchived(self, source: str) -> SessionRecord | None:
        found = await self._run(
            Database.records,
            f"WHERE source = ? AND status = 'failed' {OLDEST_FIRST} LIMIT 1",
            (source,),
        )
        return found[0] if found else None

    async def summary(self, source: str, *, archived_since: datetime) -> SourceSummary:
        return await self._run(Database.summary, source, to_micros(archived_since))

    async def source_names(self) -> list[str]:
        return await self._run(Database.source_names)

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
        self, method: Callable[Concatenate[Database, _P], _T], *args: _P.args, **kwargs: _P.kwargs
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

    def _commit_queued(self, database: Database) -> None:
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

    def _open_database(self) -> Database:
        if self._database is None:
            raise StateError(f"state database {self.description} is closed")
        return self._database


def _close_if_opened(connecting: Future[Database]) -> None:
    if not connecting.cancelled() and connecting.exception() is None:
        with contextlib.suppress(StateError):
            connecting.result().close()
