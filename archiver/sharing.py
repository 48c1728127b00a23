"""What one replica needs to share the work with the others on one state database.

The engine (:mod:`archiver.engine`) runs a shared pass when it is given a :class:`Sharing`:
the replica holding a source's listing lease lists it into the queue, and every replica
claims sessions from the queue and archives them (the queue and the leases:
:mod:`archiver.state.shared`). This module holds the replica's side of it: who it is in
the leases, how long they last, the heartbeat that keeps them, and what becomes of a
claimed session once it is archived, failed or not ready.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from archiver.errors import ArchiverError
from archiver.log import get_logger
from archiver.model import Session
from archiver.state.shared import SharedWork, WorkItem

log = get_logger(__name__)

# A replica with nothing to claim while another lists the source looks again this often.
POLL_SECONDS = 0.5


def new_holder(replica: str) -> str:
    """This process's name in the leases: the replica's, and a part of its own, so that a
    replica restarted at once never mistakes the leases of its previous run for its own."""
    return f"{replica}/{secrets.token_hex(4)}"


@dataclass(slots=True, kw_only=True)
class Sharing:
    work: SharedWork
    holder: str
    lease: timedelta
    """How long a lease lasts unless renewed; renewed every third of it."""
    put_off: timedelta
    """How long a claimed session that was not ready waits before it may be claimed again."""
    poll_seconds: float = POLL_SECONDS
    _renewals_failed: int = field(default=0, init=False)

    async def enqueue(self, session: Session, *, overdue: bool) -> None:
        await self.work.enqueue([WorkItem(session=session, overdue=overdue)])

    async def settle(self, session: Session, *, settled: bool) -> None:
        """Off the queue once archived or failed (failures come back through the listing);
        put off if not ready yet."""
        if settled:
            await self.work.finish(session.source, session.session_id)
        else:
            await self.work.put_off(session.source, session.session_id, self.holder, self.put_off)

    @asynccontextmanager
    async def leases_kept(self) -> AsyncIterator[None]:
        """Renew this replica's leases every third of their length while the block runs."""
        heartbeat = asyncio.create_task(self._renew_forever(), name="lease-heartbeat")
        try:
            yield
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)

    async def _renew_forever(self) -> None:
        interval = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self.work.renew(self.holder, self.lease)
                self._renewals_failed = 0
            except ArchiverError as exc:
                # The leases may lapse and other replicas take the sessions over: the store's
                # session claims keep the two writers apart (archiver.claims).
                self._renewals_failed += 1
                log.warning("lease_renewal_failed", error=str(exc), failed=self._renewals_failed)
