"""Work shared by replicas of one state database: listing leases and session claims.

A state that several archiver processes open at once (PostgreSQL) also offers
:class:`SharedWork`; the engine then splits each source's pass in two
(:mod:`archiver.sharing`):

* **listing**: one replica at a time per source holds its *listing lease*; it retries failed
  sessions, lists the source since its watermark, holds back unfinished sessions, puts every
  complete session still to archive in the queue, and moves the watermark;
* **archiving**: every replica *claims* queued sessions, each with a lease of its own, and
  archives them. A session is claimed by one replica at a time (``FOR UPDATE SKIP LOCKED``).

Leases are kept alive by a heartbeat (``renew``) while their holder works; a holder that
dies stops renewing, its leases expire, and another replica takes the listing or the
sessions over. Safety does not rest on the leases alone: a replica that lost its lease
while still writing is kept apart by the store's session claims (:mod:`archiver.claims`).

Contract (checked by ``tests/contract/test_shared_work_contract.py``):

* ``take_listing`` gives the source's listing lease to ``holder`` if nobody holds it, the
  holder already does, or the holder's lease expired; True when ``holder`` has it.
  ``release_listing`` gives it up (only ``holder``'s). ``listing_active`` tells whether
  anyone holds an unexpired listing lease of the source.
* ``enqueue`` adds sessions to the queue; a session already queued keeps its place, its
  claim and its data.
* ``claim`` takes the oldest queued session of the source (by start time) that nobody holds
  and that is not put off, with a lease of ``lease``; None if there is none.
* ``renew`` extends every lease ``holder`` has (sessions and listings) to ``lease`` from
  now, and returns how many it extended.
* ``finish`` takes a session off the queue, whoever holds it (archived, or failed and
  retried by the listing later). ``put_off`` gives up ``holder``'s claim on it and keeps it
  from being claimed for ``delay`` (it is not ready yet, or another writer has it).
* ``queued`` counts the sessions in the source's queue (held or not).
* Times are the database's clock, so the replicas' clocks never need to agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, runtime_checkable

from archiver.model import Session
from archiver.pacing import RequestBudget


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkItem:
    """A complete session waiting to be archived by whichever replica claims it."""

    session: Session
    overdue: bool = False
    """Still processing past the source's ``pending_max_hours``: archived as it is."""


class SharedWork(Protocol):
    async def take_listing(self, source: str, holder: str, lease: timedelta) -> bool: ...

    async def release_listing(self, source: str, holder: str) -> None: ...

    async def listing_active(self, source: str) -> bool: ...

    async def enqueue(self, items: list[WorkItem]) -> None: ...

    async def claim(self, source: str, holder: str, lease: timedelta) -> WorkItem | None: ...

    async def renew(self, holder: str, lease: timedelta) -> int: ...

    async def finish(self, source: str, session_id: str) -> None: ...

    async def put_off(
        self, source: str, session_id: str, holder: str, delay: timedelta
    ) -> None: ...

    async def queued(self, source: str) -> int: ...


@runtime_checkable
class SharesWork(Protocol):
    """A state that several replicas share, and so offers :class:`SharedWork`."""

    def shared_work(self) -> SharedWork: ...

    def request_budget(self) -> RequestBudget:
        """Turns at each vendor's API, shared with the other replicas."""
        ...
