"""The engine: everything that cuts across sources, stores and state.

One pass over a source:

1. failed sessions still worth retrying are fetched again by id;
2. the source lists every session since its watermark (minus an overlap);
3. each complete session not yet archived is archived in its own task, at most
   ``session_concurrency`` per source fetching their artifacts, with at most
   ``download_concurrency`` downloads in flight across all sources; a session whose
   artifacts are stored makes room for the next while it writes its manifest, ledger entry
   and state row (``FINISHING_PER_SLOT`` times as many such sessions at most);
4. the watermark moves to the pass's start time, but never past a session that is still
   processing.

5. the pass's outcome is kept in the state (``archiver status``), and the oldest complete
   session still waiting is reported to the observer.

Archiving one session, all-or-nothing and in order, is :mod:`archiver.archiving`'s job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from archiver.archiving import Archived, SessionArchiver
from archiver.config import EngineSettings
from archiver.errors import ArchiverError, NotReady, StoreBroken
from archiver.eventlog import EVENT_LOG
from archiver.ledger import Ledger
from archiver.log import get_logger, redact
from archiver.model import (
    PassOutcome,
    Session,
    SessionRecord,
)
from archiver.observe import Observer, failure_reason
from archiver.sharing import Sharing
from archiver.sources import Source
from archiver.state import State
from archiver.state.shared import WorkItem
from archiver.store import Store

log = get_logger(__name__)

Clock = Callable[[], datetime]
# Listed sessions are looked up in the state this many at a time.
LOOKUP_BATCH = 100
# Sessions past their downloads, writing manifest, ledger entry and state row, per session
# slot: they hold no slot, so the next session's downloads overlap their waits for the disk.
FINISHING_PER_SLOT = 4


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class PassReport:
    """What one pass (or one re-archive) did. ``ok`` decides the exit code."""

    archived: int = 0
    artifacts: int = 0
    bytes: int = 0
    pending: int = 0
    skipped: int = 0
    given_up: int = 0
    failed: list[str] = field(default_factory=list)
    source_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.source_errors


@dataclass(slots=True)
class _SourcePass:
    """Book-keeping for one source during one pass."""

    source: Source
    report: PassReport
    until: datetime
    """The pass's start: what the source is listed up to."""
    slots: asyncio.Semaphore
    finishing: asyncio.Semaphore
    tasks: asyncio.TaskGroup
    seen: set[str] = field(default_factory=set)
    held_back: list[datetime] = field(default_factory=list)
    # The oldest complete session known to wait in this pass, as last reported.
    oldest_waiting: datetime | None = None


class Engine:
    def __init__(
        self,
        *,
        sources: Mapping[str, Source],
        store: Store,
        state: State,
        settings: EngineSettings,
        clock: Clock = utc_now,
        ledger: Ledger | None = None,
        observer: Observer = EVENT_LOG,
        sharing: Sharing | None = None,
        evidence_page: bool = False,
    ) -> None:
        """``sharing``: the state is shared with other replicas, which archive the sessions
        of every source's queue with this one (:mod:`archiver.sharing`). ``evidence_page``:
        each session's readable page is stored beside its manifest
        (:mod:`archiver.evidence_page`)."""
        self.sources = sources
        self.store = store
        self.state = state
        self.settings = settings
        self.clock = clock
        self.stopping = asyncio.Event()
        self.archiver = SessionArchiver(
            store=store,
            state=state,
            ledger=ledger or Ledger(store, clock=clock),
            settings=settings,
            clock=clock,
            observer=observer,
            evidence_page=evidence_page,
        )
        self.sharing = sharing
        if sharing is not None:
            # The state's leases decide who archives a session; a store claim older than one
            # is another writer's that lost its lease (see archiver.claims).
            self.archiver.claim_lease = sharing.lease

    @property
    def ledger(self) -> Ledger:
        return self.archiver.ledger

    @ledger.setter
    def ledger(self, ledger: Ledger) -> None:
        self.archiver.ledger = ledger

    @property
    def observer(self) -> Observer:
        return self.archiver.observer

    @observer.setter
    def observer(self, observer: Observer) -> None:
        self.archiver.observer = observer

    async def run_once(self) -> PassReport:
        """One pass over every enabled source; sources run side by side."""
        started = time.monotonic()
        report = PassReport()
        try:
            async with self._leases_kept(), asyncio.TaskGroup() as group:
                for source in self.sources.values():
                    group.create_task(self._run_source(source, report), name=f"pass-{source.name}")
        except BaseExceptionGroup as errors:
            broken = errors.subgroup(StoreBroken)
            if broken is None:
                raise
            raise _first_leaf(broken) from errors
        log.info(
            "pass_finished",
            archived=report.archived,
            artifacts=report.artifacts,
            bytes=report.bytes,
            pending=report.pending,
            failed=len(report.failed),
            source_errors=len(report.source_errors),
            seconds=round(time.monotonic() - started, 3),
        )
        return report

    def _leases_kept(self) -> AbstractAsyncContextManager[None]:
        """While a pass runs, the leases this replica holds are renewed (when shared)."""
        return nullcontext() if self.sharing is None else self.sharing.leases_kept()

    async def rearchive(self, source_name: str, session_ids: Iterable[str]) -> PassReport:
        """Archive these sessions again now, whatever the state says."""
        source = self.sources[source_name]
        report = PassReport()
        for session_id in session_ids:
            structlog.contextvars.bind_contextvars(source=source.name, session_id=session_id)
            try:
                record = await self.state.get(source.name, session_id)
                session = await source.get_session(
                    session_id, locator=record.locator if record else None
                )
                if not session.complete:
                    raise NotReady(f"{source.name} session {session_id} is still processing")
                _count(report, await self.archiver.archive(source, session, rearchive=True))
            except StoreBroken:
                raise
            except ArchiverError as exc:
                await self._record_failure(source, session_id, exc, report)
            finally:
                structlog.contextvars.unbind_contextvars("source", "session_id")
        return report

    async def _run_source(self, source: Source, report: PassReport) -> None:
        """One source's pass; its errors become the report's, except a broken store's.

        Errors arrive grouped when they come from the pass's task group (a state database
        that fails while a session is under way, say).
        """
        started, started_at = time.monotonic(), self.clock()
        self.observer.pass_started(source.name)
        errors: list[str] = []
        try:
            await self._source_pass(source, report)
        except* StoreBroken:
            raise
        except* ArchiverError as raised:
            errors.extend(redact(f"{source.name}: {error}") for error in _leaves(raised))
        finally:
            self.observer.pass_finished(
                source.name, ok=not errors, seconds=time.monotonic() - started
            )
        outcome = PassOutcome(
            started_at=started_at, finished_at=self.clock(), error="; ".join(errors) or None
        )
        try:
            await self.state.record_pass(source.name, outcome)
            await self._report_oldest_unarchived(source.name)
        except ArchiverError as exc:
            errors.append(redact(f"{source.name}: {exc}"))
        for message in errors:
            report.source_errors.append(message)
            log.error("source_pass_failed", source=source.name, error=message)

    async def _report_oldest_unarchived(self, source: str) -> datetime | None:
        """Tell the observer when the oldest complete session still waiting started."""
        oldest = await self.state.oldest_unarchived(source)
        started_at = None if oldest is None else oldest.started_at or oldest.first_seen
        self.observer.oldest_unarchived(source, started_at)
        return started_at

    async def _source_pass(self, source: Source, report: PassReport) -> None:
        if self.sharing is not None:
            await self._shared_source_pass(source, report, self.sharing)
            return
        async with asyncio.TaskGroup() as tasks:
            run = self._source_run(source, report, tasks)
            # Sessions already under way still finish after a listing error; only the
            # watermark stays put.
            listing_error = await self._list(run)
        if listing_error is not None:
            raise listing_error
        # Only now: a session listed but not archived yet is known to nothing but this pass.
        await self._move_watermark(run)

    async def _shared_source_pass(
        self, source: Source, report: PassReport, sharing: Sharing
    ) -> None:
        """The pass of one replica among several: it lists the source if no other replica
        does, into the shared queue, and archives sessions it claims from the queue."""
        async with asyncio.TaskGroup() as tasks:
            run = self._source_run(source, report, tasks)
            listing: asyncio.Task[ArchiverError | None] | None = None
            if await sharing.work.take_listing(source.name, sharing.holder, sharing.lease):
                listing = tasks.create_task(
                    self._list_into_queue(run, sharing), name=f"list-{source.name}"
                )
            # Sessions under way still finish after an error here, as after a listing's.
            claiming_error = await self._archive_claimed(run, sharing, listing)
        for error in (listing.result() if listing else None, claiming_error):
            if error is not None:
                raise error

    async def _list_into_queue(self, run: _SourcePass, sharing: Sharing) -> ArchiverError | None:
        try:
            listing_error = await self._list(run)
            if listing_error is None:
                # Every session listed is in the state or in the queue, which outlive us.
                await self._move_watermark(run)
            return listing_error
        except ArchiverError as exc:
            return exc
        finally:
            try:
                await sharing.work.release_listing(run.source.name, sharing.holder)
            except ArchiverError as exc:  # the lease lapses on its own
                log.warning("listing_lease_not_released", source=run.source.name, error=str(exc))

    async def _archive_claimed(
        self, run: _SourcePass, sharing: Sharing, listing: asyncio.Task[object] | None
    ) -> ArchiverError | None:
        """Claim queued sessions of the source and archive them, one per free slot, until
        there is nothing left to claim; the error that stopped the claiming, if one did."""
        while not self.stopping.is_set():
            await run.slots.acquire()
            try:
                item = await self._next_claim(run.source.name, sharing, listing)
            except ArchiverError as exc:
                run.slots.release()
                return exc
            if item is None:
                run.slots.release()
                return None
            run.tasks.create_task(
                self._archive_in_slot(run, item.session, overdue=item.overdue, sharing=sharing),
                name=f"archive-{run.source.name}-{item.session.session_id}",
            )
        return None

    async def _next_claim(
        self, source: str, sharing: Sharing, listing: asyncio.Task[object] | None
    ) -> WorkItem | None:
        """The next queued session this replica claims; while the queue is empty but a
        replica (this one, with ``listing``) still lists the source, it waits for more.
        None once there is nothing more to claim, or the engine stops."""
        while not self.stopping.is_set():
            item = await sharing.work.claim(source, sharing.holder, sharing.lease)
            if item is not None:
                record = await self.state.get(source, item.session.session_id)
                if record is None or record.status != "archived":
                    return item
                # Archived since it was queued, by a replica that died before this.
                await sharing.work.finish(source, item.session.session_id)
                continue
            if (listing is None or listing.done()) and not await sharing.work.listing_active(
                source
            ):
                return None
            await asyncio.sleep(sharing.poll_seconds)
        return None

    def _source_run(
        self,
        source: Source,
        report: PassReport,
        tasks: asyncio.TaskGroup,
    ) -> _SourcePass:
        concurrency = source.settings.session_concurrency
        return _SourcePass(
            source=source,
            report=report,
            until=self.clock(),
            slots=asyncio.BoundedSemaphore(concurrency),
            finishing=asyncio.BoundedSemaphore(concurrency * FINISHING_PER_SLOT),
            tasks=tasks,
        )

    async def _list(self, run: _SourcePass) -> ArchiverError | None:
        """Retry failed sessions, list the source since its watermark, and dispatch every
        complete session to archive; the error that broke the listing off, if one did."""
        source, settings = run.source, run.source.settings
        watermark = await self.state.watermark(source.name)
        since = (watermark or run.until - timedelta(days=settings.backfill_days)) - timedelta(
            minutes=settings.overlap_minutes
        )
        try:
            run.oldest_waiting = await self._report_oldest_unarchived(source.name)
            await self._retry_failures(run)
            async for session, record in self._with_records(source, since, run.until):
                if self.stopping.is_set():
                    break
                await self._consider(run, session, record)
        except ArchiverError as exc:
            return exc
        return None

    async def _move_watermark(self, run: _SourcePass) -> None:
        """To the pass's start, but never past a session still processing."""
        if self.stopping.is_set():
            return
        watermark = min([run.until, *run.held_back])
        await self.state.set_watermark(run.source.name, watermark)
        self.observer.watermark_moved(run.source.name, watermark)

    async def _retry_failures(self, run: _SourcePass) -> None:
        """Failed sessions come back by id: the watermark may have moved past them.

        Sessions still processing need no such call: the watermark waits for them, so
        the listing brings them back on every pass.
        """
        source = run.source
        failed = await self.state.retryable_failures(
            source.name, max_attempts=self.settings.max_attempts
        )
        for record in failed:
            if self.stopping.is_set():
                return
            try:
                session = await source.get_session(record.session_id, locator=record.locator)
            except ArchiverError as exc:
                await self._record_failure(source, record.session_id, exc, run.report)
                continue
            await self._consider(run, session, record)

    async def _with_records(
        self, source: Source, since: datetime, until: datetime
    ) -> AsyncIterator[tuple[Session, SessionRecord | None]]:
        """The sessions listed, each with its state row, looked up ``LOOKUP_BATCH`` at a time.

        A listing that breaks off still yields the sessions listed before, then raises.
        """
        listed = aiter(source.sessions(since, until))
        ended = False
        listing_error: ArchiverError | None = None
        while not ended:
            batch: list[Session] = []
            try:
                while len(batch) < LOOKUP_BATCH and not self.stopping.is_set():
                    batch.append(await anext(listed))
                ended = self.stopping.is_set()
            except StopAsyncIteration:
                ended = True
            except ArchiverError as exc:
                ended, listing_error = True, exc
            for pair in await self._looked_up(source, batch):
                yield pair
        if listing_error is not None:
            raise listing_error

    async def _looked_up(
        self, source: Source, sessions: list[Session]
    ) -> list[tuple[Session, SessionRecord | None]]:
        if not sessions:
            return []
        records = await self.state.get_many(source.name, [s.session_id for s in sessions])
        return [(session, records.get(session.session_id)) for session in sessions]

    async def _consider(
        self, run: _SourcePass, session: Session, record: SessionRecord | None
    ) -> None:
        if session.session_id in run.seen:
            return
        run.seen.add(session.session_id)
        if record is not None and record.status == "archived":
            run.report.skipped += 1
            return
        if (
            record is not None
            and record.status == "failed"
            and record.attempts >= self.settings.max_attempts
        ):
            run.report.given_up += 1
            return
        first_seen = record.first_seen if record else self.clock()
        overdue = self.clock() - first_seen > timedelta(hours=run.source.settings.pending_max_hours)
        if not session.complete and not overdue:
            await self._hold_back(run, session)
            return
        if run.oldest_waiting is None or session.started_at < run.oldest_waiting:
            run.oldest_waiting = session.started_at
            self.observer.oldest_unarchived(session.source, session.started_at)
        if self.sharing is not None:  # archived by whichever replica claims it
            await self.sharing.enqueue(session, overdue=overdue)
            return
        await run.slots.acquire()
        run.tasks.create_task(
            self._archive_in_slot(run, session, overdue=overdue),
            name=f"archive-{session.source}-{session.session_id}",
        )

    async def _hold_back(self, run: _SourcePass, session: Session) -> None:
        await self.state.record_pending(
            session.source,
            session.session_id,
            at=self.clock(),
            locator=session.locator,
            started_at=session.started_at,
        )
        run.held_back.append(session.started_at)
        run.report.pending += 1
        self.observer.session_held_back(session.source, session_id=session.session_id)

    async def _archive_in_slot(
        self,
        run: _SourcePass,
        session: Session,
        *,
        overdue: bool,
        sharing: Sharing | None = None,
    ) -> None:
        """Archive a session that holds one of ``run.slots`` (taken by the caller).

        Once its artifacts are stored it trades the slot for a ``run.finishing`` one. A
        session claimed from the shared queue leaves it once archived or failed (the
        listing retries failures), and is put off when it is not ready.
        """
        structlog.contextvars.bind_contextvars(source=session.source, session_id=session.session_id)
        slot = _Slot(run)
        try:
            settled = await self._archive_or_record_why_not(
                run, session, overdue=overdue, slot=slot
            )
            if sharing is not None:
                await sharing.settle(session, settled=settled)
        except StoreBroken:
            raise  # not this session's fault: the whole pass stops
        except ArchiverError as exc:
            # The state could not even record the outcome; the other sessions go on.
            message = redact(f"{run.source.name} session {session.session_id}: {exc}")
            run.report.failed.append(message)
            log.error("session_outcome_not_recorded", error=message)
        finally:
            slot.release()

    async def _archive_or_record_why_not(
        self, run: _SourcePass, session: Session, *, overdue: bool, slot: _Slot
    ) -> bool:
        """Archive the session, or record why not: False if it was held back."""
        try:
            archived = await self.archiver.archive(
                run.source, session, accept_incomplete=overdue, artifacts_stored=slot.finish
            )
            _count(run.report, archived)
        except StoreBroken:
            raise
        except NotReady:
            await self._hold_back(run, session)
            return False
        except ArchiverError as exc:
            await self._record_failure(run.source, session.session_id, exc, run.report, session)
        except Exception as exc:  # a bug must not take the other sessions down with it
            log.exception("session_crashed")
            await self._record_failure(run.source, session.session_id, exc, run.report, session)
        return True

    async def _record_failure(
        self,
        source: Source,
        session_id: str,
        error: Exception,
        report: PassReport,
        session: Session | None = None,
    ) -> None:
        message = redact(f"{source.name} session {session_id}: {error}")
        attempts = await self.state.record_failure(
            source.name,
            session_id,
            error=message,
            at=self.clock(),
            locator=session.locator if session else None,
            started_at=session.started_at if session else None,
        )
        report.failed.append(message)
        self.observer.session_failed(
            source.name,
            failure_reason(error),
            session_id=session_id,
            error=message,
            attempts=attempts,
            max_attempts=self.settings.max_attempts,
        )


def _count(report: PassReport, archived: Archived | None) -> None:
    if archived is None:
        report.skipped += 1
        return
    report.archived += 1
    report.artifacts += archived.artifacts
    report.bytes += archived.size


class _Slot:
    """Where an archiving session stands in its pass: in a session slot, then finishing."""

    def __init__(self, run: _SourcePass) -> None:
        self._run = run
        self._finishing = False

    async def finish(self) -> None:
        """Trade the session slot for a finishing one (waiting for one if all are taken)."""
        await self._run.finishing.acquire()
        self._finishing = True
        self._run.slots.release()

    def release(self) -> None:
        (self._run.finishing if self._finishing else self._run.slots).release()


def _leaves(errors: BaseExceptionGroup[ArchiverError]) -> list[ArchiverError]:
    found: list[ArchiverError] = []
    for error in errors.exceptions:
        found.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return found


def _first_leaf(errors: BaseExceptionGroup[BaseException]) -> BaseException:
    error: BaseException = errors
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
