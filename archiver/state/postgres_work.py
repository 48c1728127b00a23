"""PostgreSQL's :class:`~archiver.state.shared.SharedWork`: the queue of sessions to archive
and the listing leases, in the state database (tables ``work`` and ``listings``); and its
:class:`~archiver.pacing.RequestBudget`, each vendor's next turn (``request_budgets``).

A claim is one ``UPDATE`` of the oldest claimable row chosen ``FOR UPDATE SKIP LOCKED``, so
replicas claiming at the same moment take different sessions without waiting for each
other. ``lease_until`` is when a holder's lease ends, or, with no holder, until when a
session is put off. Every time is the database's ``clock_timestamp()``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from archiver.errors import StateError
from archiver.model import Session
from archiver.state.shared import WorkItem

Connect = Callable[[], AbstractAsyncContextManager[psycopg.AsyncConnection[TupleRow]]]

ENQUEUE = """
    INSERT INTO work (source, session_id, started_at, session, overdue)
    VALUES (%s, %s, %s, %s, %s)
    ON CONFLICT (source, session_id) DO NOTHING
"""
CLAIM = """
    UPDATE work SET holder = %(holder)s, lease_until = clock_timestamp() + %(lease)s
    WHERE (source, session_id) = (
        SELECT source, session_id FROM work
        WHERE source = %(source)s AND (lease_until IS NULL OR lease_until < clock_timestamp())
        ORDER BY started_at, session_id
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    )
    RETURNING session, overdue
"""
TAKE_LISTING = """
    INSERT INTO listings AS l (source, holder, lease_until)
    VALUES (%(source)s, %(holder)s, clock_timestamp() + %(lease)s)
    ON CONFLICT (source) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until
    WHERE l.holder = excluded.holder OR l.lease_until < clock_timestamp()
    RETURNING holder
"""
LISTING_ACTIVE = """
    SELECT EXISTS (
        SELECT 1 FROM listings WHERE source = %s AND lease_until > clock_timestamp()
    )
"""
RENEW_SESSIONS = (
    "UPDATE work SET lease_until = clock_timestamp() + %(lease)s WHERE holder = %(holder)s"
)
RENEW_LISTINGS = (
    "UPDATE listings SET lease_until = clock_timestamp() + %(lease)s WHERE holder = %(holder)s"
)
PUT_OFF = """
    UPDATE work SET holder = NULL, lease_until = clock_timestamp() + %(delay)s
    WHERE source = %(source)s AND session_id = %(session_id)s AND holder = %(holder)s
"""


class PostgresWork:
    """The queue and the leases, over the connections of a :class:`PostgresState`."""

    def __init__(self, connect: Connect, *, writable: Callable[[], None]) -> None:
        self._connect = connect
        self._writable = writable

    async def take_listing(self, source: str, holder: str, lease: timedelta) -> bool:
        self._writable()
        async with self._connect() as connection:
            cursor = await connection.execute(
                TAKE_LISTING, {"source": source, "holder": holder, "lease": lease}
            )
            return await cursor.fetchone() is not None

    async def release_listing(self, source: str, holder: str) -> None:
        self._writable()
        async with self._connect() as connection:
            await connection.execute(
                "DELETE FROM listings WHERE source = %s AND holder = %s", (source, holder)
            )

    async def listing_active(self, source: str) -> bool:
        async with self._connect() as connection:
            cursor = await connection.execute(LISTING_ACTIVE, (source,))
            row = await cursor.fetchone()
        return bool(row and row[0])

    async def enqueue(self, items: list[WorkItem]) -> None:
        if not items:
            return
        self._writable()
        rows = [
            (
                item.session.source,
                item.session.session_id,
                item.session.started_at,
                encode_session(item.session),
                item.overdue,
            )
            for item in items
        ]
        async with self._connect() as connection, connection.cursor() as cursor:
            await cursor.executemany(ENQUEUE, rows)

    async def claim(self, source: str, holder: str, lease: timedelta) -> WorkItem | None:
        self._writable()
        async with self._connect() as connection:
            cursor = await connection.execute(
                CLAIM, {"source": source, "holder": holder, "lease": lease}
            )
            row = await cursor.fetchone()
        if row is None:
            return None
        return WorkItem(session=decode_session(row[0]), overdue=bool(row[1]))

    async def renew(self, holder: str, lease: timedelta) -> int:
        self._writable()
        parameters = {"holder": holder, "lease": lease}
        async with self._connect() as connection, connection.transaction():
            sessions = await connection.execute(RENEW_SESSIONS, parameters)
            listings = await connection.execute(RENEW_LISTINGS, parameters)
            return max(sessions.rowcount, 0) + max(listings.rowcount, 0)

    async def finish(self, source: str, session_id: str) -> None:
        self._writable()
        async with self._connect() as connection:
            await connection.execute(
                "DELETE FROM work WHERE source = %s AND session_id = %s", (source, session_id)
            )

    async def put_off(self, source: str, session_id: str, holder: str, delay: timedelta) -> None:
        self._writable()
        async with self._connect() as connection:
            await connection.execute(
                PUT_OFF,
                {"source": source, "session_id": session_id, "holder": holder, "delay": delay},
            )

    async def queued(self, source: str) -> int:
        async with self._connect() as connection:
            cursor = await connection.execute(
                "SELECT COUNT(*) FROM work WHERE source = %s", (source,)
            )
            row = await cursor.fetchone()
        return int(row[0]) if row else 0


# The turn taken is the one before the new next turn; how far it is from now, in seconds.
RESERVE_TURN = """
    INSERT INTO request_budgets AS b (vendor, next_turn)
    VALUES (%(vendor)s, clock_timestamp() + %(interval)s)
    ON CONFLICT (vendor) DO UPDATE
        SET next_turn = GREATEST(b.next_turn, clock_timestamp()) + %(interval)s
    RETURNING EXTRACT(EPOCH FROM next_turn - %(interval)s - clock_timestamp())
"""
HOLD_OFF = """
    INSERT INTO request_budgets AS b (vendor, next_turn)
    VALUES (%(vendor)s, clock_timestamp() + %(delay)s)
    ON CONFLICT (vendor) DO UPDATE SET next_turn = GREATEST(b.next_turn, excluded.next_turn)
"""


class PostgresBudget:
    """The replicas' shared :class:`~archiver.pacing.RequestBudget`: one statement a turn."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    async def reserve(self, vendor: str, interval: float) -> float:
        async with self._connect() as connection:
            cursor = await connection.execute(
                RESERVE_TURN, {"vendor": vendor, "interval": timedelta(seconds=interval)}
            )
            row = await cursor.fetchone()
        return max(0.0, float(row[0])) if row else 0.0

    async def hold_off(self, vendor: str, seconds: float) -> None:
        async with self._connect() as connection:
            await connection.execute(
                HOLD_OFF, {"vendor": vendor, "delay": timedelta(seconds=seconds)}
            )


def encode_session(session: Session) -> str:
    """The session as the queue keeps it: JSON, the vendor's record verbatim inside."""
    return json.dumps(
        {
            "source": session.source,
            "session_id": session.session_id,
            "started_at": session.started_at.isoformat(),
            "complete": session.complete,
            "locator": session.locator,
            "record": session.record,
        },
        ensure_ascii=False,
    )


def decode_session(text: str) -> Session:
    try:
        raw: dict[str, Any] = json.loads(text)
        return Session(
            source=str(raw["source"]),
            session_id=str(raw["session_id"]),
            started_at=datetime.fromisoformat(raw["started_at"]),
            complete=bool(raw["complete"]),
            locator=raw["locator"],
            record=raw["record"],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise StateError(f"a queued session cannot be read back: {exc}") from None
