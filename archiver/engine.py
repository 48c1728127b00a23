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

Archiving one session is all-or-nothing and ordered: every artifact is streamed through a
SHA-256 hasher into the store without a sync of its own, then ``manifest.json`` is written
durably, which makes them all durable first (a durable write is a store barrier, see
:mod:`archiver.store`), then its entry is appended to the ledger (:mod:`archiver.ledger`),
then the state row. A crash anywhere leaves a session that is simply done again (a manifest
already stored is given its ledger entry if it has none); a manifest never lists an object
that is not stored. Re-archiving never overwrites earlier evidence: the new files go under
``rearchived/<time>/`` and the previous manifest is copied to ``history/`` first.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from archiver import __version__
from archiver.claims import claim_session
from archiver.config import EngineSettings
from archiver.errors import ArchiverError, NotReady, StoreBroken, StoreError
from archiver.eventlog import EVENT_LOG
from archiver.keys import safe_key
from archiver.ledger import Ledger
from archiver.log import get_logger, redact
from archiver.manifest import Manifest, ManifestError, StoredArtifact, decode_manifest
from archiver.model import (
    Artifact,
    PassOutcome,
    Session,
    SessionRecord,
    strip_query,
)
from archiver.observe import Observer, failure_reason
from archiver.retry import call_with_retries
from archiver.sources import Source
from archiver.state import State
from archiver.store import Store

log = get_logger(__name__)

Clock = Callable[[], datetime]
# Below this, hashing on the event loop (~40 us) costs less than a hop to a thread.
HASH_IN_THREAD_BYTES = 64 * 1024
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
    ) -> None:
        self.sources = sources
        self.store = store
        self.state = state
        self.settings = settings
        self.clock = clock
        self.ledger = ledger or Ledger(store, clock=clock)
        self.observer = observer
        self.stopping = asyncio.Event()
        self._downloads = asyncio.Semaphore(settings.download_concurrency)
        self._writer_id: str | None = None

    async def _writer(self) -> str:
        """Who this archiver is in the store's session claims (kept by the state)."""
        if self._writer_id is None:
            self._writer_id = await self.state.writer_id()
        return self._writer_id

    async def run_once(self) -> PassReport:
        """One pass over every enabled source; sources run side by side."""
        started = time.monotonic()
        report = PassReport()
        try:
            async with asyncio.TaskGroup() as group:
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
                await self._archive(source, session, report, rearchive=True)
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
        until = self.clock()
        settings = source.settings
        watermark = await self.state.watermark(source.name)
        since = (watermark or until - timedelta(days=settings.backfill_days)) - timedelta(
            minutes=settings.overlap_minutes
        )
        listing_error: ArchiverError | None = None
        async with asyncio.TaskGroup() as tasks:
            run = _SourcePass(
                source=source,
                report=report,
                slots=asyncio.BoundedSemaphore(settings.session_concurrency),
                finishing=asyncio.BoundedSemaphore(
                    settings.session_concurrency * FINISHING_PER_SLOT
                ),
                tasks=tasks,
            )
            try:
                run.oldest_waiting = await self._report_oldest_unarchived(source.name)
                await self._retry_failures(run)
                async for session, record in self._with_records(source, since, until):
                    if self.stopping.is_set():
                        break
                    await self._consider(run, session, record)
            except ArchiverError as exc:
                # Sessions already under way still finish; only the watermark stays put.
                listing_error = exc
        if listing_error is not None:
            raise listing_error
        if not self.stopping.is_set():
            watermark = min([until, *run.held_back])
            await self.state.set_watermark(source.name, watermark)
            self.observer.watermark_moved(source.name, watermark)

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

    async def _archive_in_slot(self, run: _SourcePass, session: Session, *, overdue: bool) -> None:
        """Archive a session that holds one of ``run.slots`` (taken by the caller).

        Once its artifacts are stored it trades the slot for a ``run.finishing`` one.
        """
        structlog.contextvars.bind_contextvars(source=session.source, session_id=session.session_id)
        slot = _Slot(run)
        try:
            await self._archive_or_record_why_not(run, session, overdue=overdue, slot=slot)
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
    ) -> None:
        try:
            await self._archive(
                run.source,
                session,
                run.report,
                accept_incomplete=overdue,
                artifacts_stored=slot.finish,
            )
        except StoreBroken:
            raise
        except NotReady:
            await self._hold_back(run, session)
        except ArchiverError as exc:
            await self._record_failure(run.source, session.session_id, exc, run.report, session)
        except Exception as exc:  # a bug must not take the other sessions down with it
            log.exception("session_crashed")
            await self._record_failure(run.source, session.session_id, exc, run.report, session)

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

    async def _archive(
        self,
        source: Source,
        session: Session,
        report: PassReport,
        *,
        rearchive: bool = False,
        accept_incomplete: bool = False,
        artifacts_stored: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Archive one session; ``artifacts_stored`` is awaited once its artifacts are."""
        started = time.monotonic()
        prefix = safe_key(source.name, session.session_id)
        manifest_key = f"{prefix}/manifest.json"
        already_stored = await self.store.exists(manifest_key)
        previous = await self.store.read_bytes(manifest_key) if already_stored else None
        if previous is not None:
            # Stored by an earlier run that may have died before its ledger entry.
            _require_manifest_of(previous, source.name, session.session_id, manifest_key)
            await self.ledger.ensure_recorded(
                source=source.name,
                session_id=session.session_id,
                manifest_key=manifest_key,
                manifest=previous,
            )
        if previous is not None and not rearchive:
            # Stored by an earlier run that died before its state row: nothing to redo.
            await self.state.record_success(
                source.name, session.session_id, manifest_key=manifest_key, at=self.clock()
            )
            report.skipped += 1
            return
        archived_at = self.clock()
        if previous is None:  # the first archive: claimed, so no other writer shares its keys
            claim = await claim_session(
                self.store,
                prefix,
                writer=await self._writer(),
                now=archived_at,
                lease=timedelta(minutes=self.settings.claim_lease_minutes),
            )
            base = claim.base(prefix)
        else:
            base = f"{prefix}/rearchived/{_stamp(archived_at)}"
        artifacts = await source.artifacts(session)
        stored, missing = await self._store_artifacts(
            source, base, artifacts, accept_not_ready=accept_incomplete
        )
        if artifacts_stored is not None:
            await artifacts_stored()
        not_archived = [*source.not_offered(session), *missing]
        if not session.complete:
            not_archived.append(
                f"the vendor still reported this session as in progress after "
                f"{source.settings.pending_max_hours:g} hours; archived as it was"
            )
        # The artifacts were written without a sync each: the next durable write (the
        # manifest, or the previous manifest's copy) is their barrier.
        history_key = None
        if previous is not None:
            history_key = f"{prefix}/history/{_stamp(archived_at)}-manifest.json"
            await self.store.put_bytes(history_key, previous, content_type="application/json")
        manifest = Manifest(
            source=source.name,
            session_id=session.session_id,
            archived_at=archived_at,
            archiver_version=__version__,
            session=session.record,
            artifacts=tuple(stored),
            not_archived=tuple(not_archived),
            previous_manifest=history_key,
        )
        manifest_bytes = manifest.to_bytes()
        if previous is not None:
            await self.store.put_bytes(
                manifest_key, manifest_bytes, content_type="application/json"
            )
        elif not await self.store.put_bytes_if_absent(
            manifest_key, manifest_bytes, content_type="application/json"
        ):
            stored_manifest = await self.store.read_created(manifest_key)
            # The same bytes are ours: a write retried after its answer was lost.
            if stored_manifest != manifest_bytes:
                await self._adopt_another_writers_manifest(
                    source, session, manifest_key, stored_manifest, report
                )
                return
        entry = await self.ledger.append(
            source=source.name,
            session_id=session.session_id,
            manifest_key=manifest_key,
            manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
            previous_manifest_key=history_key,
        )
        await self.state.record_success(
            source.name,
            session.session_id,
            manifest_key=manifest_key,
            at=self.clock(),
            locator=session.locator,
            started_at=session.started_at,
        )
        total = sum(item.size for item in stored)
        seconds = time.monotonic() - started
        report.archived += 1
        report.artifacts += len(stored)
        report.bytes += total
        self.observer.ledger_appended(entry.seq)
        self.observer.session_archived(
            source.name,
            session_id=session.session_id,
            artifacts=len(stored),
            size=total,
            seconds=seconds,
            ledger_seq=entry.seq,
            rearchive=rearchive,
        )

    async def _adopt_another_writers_manifest(
        self,
        source: Source,
        session: Session,
        manifest_key: str,
        manifest: bytes,
        report: PassReport,
    ) -> None:
        """Another writer took the session over and stored its manifest first: the session
        is archived, by that manifest (ours, and the objects it lists, are not). Its ledger
        record is made sure of here too, in case that writer died before making it."""
        _require_manifest_of(manifest, source.name, session.session_id, manifest_key)
        await self.ledger.ensure_recorded(
            source=source.name,
            session_id=session.session_id,
            manifest_key=manifest_key,
            manifest=manifest,
        )
        log.warning("session_archived_by_another_writer", manifest_key=manifest_key)
        await self.state.record_success(
            source.name, session.session_id, manifest_key=manifest_key, at=self.clock()
        )
        report.skipped += 1

    async def _store_artifacts(
        self, source: Source, base: str, artifacts: list[Artifact], *, accept_not_ready: bool
    ) -> tuple[list[StoredArtifact], list[str]]:
        keys = _artifact_keys(base, artifacts)
        results: list[StoredArtifact | None] = [None] * len(artifacts)
        missing: list[str] = []

        async def store_one(index: int) -> None:
            artifact = artifacts[index]
            try:
                stored = await self._store_artifact(source, keys[index], artifact)
            except NotReady:
                if not accept_not_ready:
                    raise
                missing.append(f"{artifact.kind} {artifact.name}: the vendor never made it ready")
                return
            results[index] = stored
            self.observer.artifact_stored(source.name, kind=artifact.kind, size=stored.size)

        try:
            async with asyncio.TaskGroup() as group:
                for index in range(len(artifacts)):
                    group.create_task(store_one(index), name=f"store-{keys[index]}")
        except ExceptionGroup as errors:
            raise _deciding_error(errors) from errors
        return [item for item in results if item is not None], missing

    async def _store_artifact(self, source: Source, key: str, artifact: Artifact) -> StoredArtifact:
        if artifact.content is not None:
            await self.store.put_bytes(
                key, artifact.content, content_type=artifact.content_type, durable=False
            )
            return StoredArtifact(
                key=key,
                size=len(artifact.content),
                sha256=hashlib.sha256(artifact.content).hexdigest(),
                kind=artifact.kind,
                content_type=artifact.content_type,
                source_url=None,
            )
        for attempt_number in range(1, self.settings.not_ready_attempts + 1):
            try:
                async with self._downloads:
                    return await self._download_with_retries(source, key, artifact)
            except NotReady:
                if attempt_number == self.settings.not_ready_attempts:
                    raise
                await asyncio.sleep(self.settings.not_ready_delay_seconds)
        raise AssertionError("unreachable")

    async def _download_with_retries(
        self, source: Source, key: str, artifact: Artifact
    ) -> StoredArtifact:
        return await call_with_retries(
            source.client.retry_policy, lambda: self._download(source, key, artifact)
        )

    async def _download(self, source: Source, key: str, artifact: Artifact) -> StoredArtifact:
        assert artifact.url is not None
        async with source.client.download(artifact.url) as download:
            content_type = artifact.content_type or download.content_type
            hasher = hashlib.sha256()
            size = 0
            loop = asyncio.get_running_loop()
            async with self.store.open_writer(
                key, content_type=content_type, durable=False
            ) as writer:
                async for pieces in download.chunks():
                    chunk_size = sum(len(piece) for piece in pieces)
                    size += chunk_size
                    if chunk_size < HASH_IN_THREAD_BYTES:
                        _hash_pieces(hasher, pieces)
                        await writer.write(*pieces)
                        continue
                    # hashlib lets go of the GIL: hashing a big chunk in a thread, beside
                    # the write, keeps the event loop free for the other downloads.
                    hashed = loop.run_in_executor(None, _hash_pieces, hasher, pieces)
                    try:
                        await writer.write(*pieces)
                    finally:
                        await hashed
                digest = hasher.hexdigest()
                await writer.commit(sha256=digest, size=size)
        return StoredArtifact(
            key=key,
            size=size,
            sha256=digest,
            kind=artifact.kind,
            content_type=content_type,
            source_url=strip_query(artifact.url),
        )


def _hash_pieces(hasher: hashlib._Hash, pieces: tuple[bytes, ...]) -> None:
    for piece in pieces:
        hasher.update(piece)


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


def _require_manifest_of(data: bytes, source: str, session_id: str, key: str) -> None:
    """A stored manifest is adopted (recorded, counted as the session's archive) only if it
    is one, of this very session: changed bytes are never taken for evidence."""
    try:
        manifest = decode_manifest(data, key=key)
    except ManifestError as error:
        if error.too_new:
            raise StoreError(f"{key} is stored but cannot be read: {error.detail}") from error
        raise StoreError(
            f"{key} is stored but is not this session's manifest (changed or damaged: "
            f"{error.detail}): run `archiver verify`"
        ) from error
    if (manifest.source, manifest.session_id) != (source, session_id):
        raise StoreError(
            f"{key} is stored but is not this session's manifest (changed or damaged): "
            "run `archiver verify`"
        )


def _first_leaf(errors: BaseExceptionGroup[BaseException]) -> BaseException:
    error: BaseException = errors
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def _deciding_error(errors: ExceptionGroup[Exception]) -> Exception:
    """The one error that decides a session's fate when several artifacts failed at once.

    A real failure outranks "not ready yet"; anything that is not an ArchiverError (a bug)
    is returned as the whole group so nothing about it is hidden.
    """
    flat: list[Exception] = []
    stack: list[Exception] = [errors]
    while stack:
        error = stack.pop()
        if isinstance(error, ExceptionGroup):
            stack.extend(reversed(error.exceptions))
        else:
            flat.append(error)
    if not all(isinstance(error, ArchiverError) for error in flat):
        return errors
    failures = [error for error in flat if not isinstance(error, NotReady)]
    return failures[0] if failures else flat[0]


def _artifact_keys(base: str, artifacts: list[Artifact]) -> list[str]:
    """Store keys for a session's artifacts: sanitized, unique, never the manifest's."""
    taken = {f"{base}/manifest.json"}
    keys = []
    for artifact in artifacts:
        key = f"{base}/{safe_key(*artifact.name.split('/'))}"
        candidate, number = key, 1
        while candidate in taken:
            number += 1
            candidate = f"{key}.{number}"
        taken.add(candidate)
        keys.append(candidate)
    return keys


def _stamp(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y%m%dT%H%M%S") + f"{utc.microsecond // 1000:03d}Z"
