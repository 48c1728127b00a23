"""Archiving one session, all-or-nothing and in order.

Every artifact is streamed through a SHA-256 hasher into the store without a sync of its
own, then ``manifest.json`` is written durably, which makes them all durable first (a
durable write is a store barrier, see :mod:`archiver.store`), then its entry is appended to
the ledger (:mod:`archiver.ledger`), then the state row. A crash anywhere leaves a session
that is simply done again (a manifest already stored is given its ledger entry if it has
none); a manifest never lists an object that is not stored. A first archive is claimed
first (:mod:`archiver.claims`), so no other writer shares its keys. Re-archiving never
overwrites earlier evidence: the new files go under ``rearchived/<time>/`` and the previous
manifest is copied to ``history/`` first.
"""

from __future__ import annotations

import asyncio
import hashlib
import posixpath
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from archiver import __version__
from archiver.claims import claim_session
from archiver.config import EngineSettings
from archiver.errors import ArchiverError, NotReady, StoreError, VendorError
from archiver.evidence_page import (
    PAGE_CONTENT_TYPE,
    PAGE_KIND,
    PAGE_NAME,
    PageContext,
    PageSession,
    render_page,
)
from archiver.keys import safe_key
from archiver.ledger import Ledger
from archiver.log import get_logger
from archiver.manifest import Manifest, ManifestError, StoredArtifact, decode_manifest
from archiver.model import Artifact, Session, strip_query
from archiver.observe import Observer
from archiver.retry import call_with_retries
from archiver.sources import Source
from archiver.state import State
from archiver.store import Store

log = get_logger("archiver.engine")

Clock = Callable[[], datetime]
# Below this, hashing on the event loop (~40 us) costs less than a hop to a thread.
HASH_IN_THREAD_BYTES = 64 * 1024
FORBIDDEN = 403  # what an object store answers for a pre-signed URL that has expired


@dataclass(frozen=True, slots=True)
class Archived:
    """What archiving one session stored."""

    artifacts: int
    size: int


class SessionArchiver:
    """Archives sessions into ``store``, recording them in ``ledger`` and ``state``, with at
    most ``settings.download_concurrency`` downloads in flight across all sessions."""

    def __init__(
        self,
        *,
        store: Store,
        state: State,
        ledger: Ledger,
        settings: EngineSettings,
        clock: Clock,
        observer: Observer,
        evidence_page: bool = False,
    ) -> None:
        self.store = store
        self.state = state
        self.ledger = ledger
        self.settings = settings
        self.clock = clock
        self.observer = observer
        self.evidence_page = evidence_page
        self._downloads = asyncio.Semaphore(settings.download_concurrency)
        # A session another writer claimed in the store this long ago without a manifest is
        # taken over (archiver.claims).
        self.claim_lease = timedelta(minutes=settings.claim_lease_minutes)
        self._writer_id: str | None = None

    async def _writer(self) -> str:
        """Who this archiver is in the store's session claims (kept by the state)."""
        if self._writer_id is None:
            self._writer_id = await self.state.writer_id()
        return self._writer_id

    async def archive(
        self,
        source: Source,
        session: Session,
        *,
        rearchive: bool = False,
        accept_incomplete: bool = False,
        artifacts_stored: Callable[[], Awaitable[None]] | None = None,
    ) -> Archived | None:
        """Archive one session; ``artifacts_stored`` is awaited once its artifacts are.

        None: the session was archived already (by an earlier run, or another writer).
        """
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
            return None
        archived_at = self.clock()
        if previous is None:  # the first archive: claimed, so no other writer shares its keys
            claim = await claim_session(
                self.store,
                prefix,
                writer=await self._writer(),
                now=archived_at,
                lease=self.claim_lease,
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
        if self.evidence_page:  # before the manifest, which lists it
            stored.append(
                await self._store_page(
                    base, manifest_key, source, session, archived_at, stored, not_archived
                )
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
                    source, session, manifest_key, stored_manifest
                )
                return None
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
        return Archived(artifacts=len(stored), size=total)

    async def _store_page(
        self,
        base: str,
        manifest_key: str,
        source: Source,
        session: Session,
        archived_at: datetime,
        stored: list[StoredArtifact],
        not_archived: list[str],
    ) -> StoredArtifact:
        """The evidence page, stored like an artifact: only the manifest written after it
        (which lists it) makes it part of the evidence."""
        key = f"{base}/{PAGE_NAME}"
        listed = Manifest(
            source=source.name,
            session_id=session.session_id,
            archived_at=archived_at,
            archiver_version=__version__,
            session=session.record,
            artifacts=tuple(stored),
            not_archived=tuple(not_archived),
        )
        page = render_page(
            [PageSession(manifest=listed, manifest_key=manifest_key)],
            PageContext(
                title=f"Evidence: {source.name} session {session.session_id}",
                generated_at=archived_at,
            ),
            link=lambda target: posixpath.relpath(target, start=base),
        )
        await self.store.put_bytes(key, page, content_type=PAGE_CONTENT_TYPE, durable=False)
        return StoredArtifact(
            key=key,
            size=len(page),
            sha256=hashlib.sha256(page).hexdigest(),
            kind=PAGE_KIND,
            content_type=PAGE_CONTENT_TYPE,
            source_url=None,
        )

    async def _adopt_another_writers_manifest(
        self,
        source: Source,
        session: Session,
        manifest_key: str,
        manifest: bytes,
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

    async def _store_artifacts(
        self, source: Source, base: str, artifacts: list[Artifact], *, accept_not_ready: bool
    ) -> tuple[list[StoredArtifact], list[str]]:
        keys = _artifact_keys(base, artifacts, reserved=(PAGE_NAME,) if self.evidence_page else ())
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
        try:
            return await call_with_retries(
                source.client.retry_policy, lambda: self._download(source, key, artifact)
            )
        except VendorError as error:
            if artifact.renew_url is None or error.status != FORBIDDEN:
                raise
        # A pre-signed URL that expired while the download waited its turn: a fresh one,
        # once; a 403 for that one too is the vendor's real answer.
        renewed = replace(artifact, url=await artifact.renew_url())
        log.info("artifact_url_renewed", key=key)
        return await call_with_retries(
            source.client.retry_policy, lambda: self._download(source, key, renewed)
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


def _artifact_keys(
    base: str, artifacts: list[Artifact], *, reserved: tuple[str, ...] = ()
) -> list[str]:
    """Store keys for a session's artifacts: sanitized, unique, never the manifest's (nor
    the ``reserved`` names')."""
    taken = {f"{base}/manifest.json", *(f"{base}/{name}" for name in reserved)}
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
