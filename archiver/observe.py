"""Observer seam: what the engine, the vendor clients and the store report as they work.

Adapters implement :class:`Observer`: the structlog event log (:mod:`archiver.eventlog`),
Prometheus metrics (:mod:`archiver.metrics`) and readiness (:mod:`archiver.health`); the
layers that report know nothing about them. :class:`NullObserver` ignores everything, and
the adapters extend it, overriding only the events they use. :class:`FanOut` hands every
event to several observers. Session events name the session for the log; the metrics
never make a label of it (labels stay bounded).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from archiver.errors import (
    NotReady,
    StoreError,
    TransientError,
    UnsafeArtifactUrl,
    VendorError,
)


class FailureReason(StrEnum):
    TRANSIENT = "transient"
    VENDOR_4XX = "vendor_4xx"
    STORE = "store"
    REFUSED_URL = "refused_url"
    NOT_READY = "not_ready"
    OTHER = "other"


def failure_reason(error: BaseException) -> FailureReason:
    """The class of a session's failure, for counting (a store error first: S3's transient
    errors are the store's, not a vendor's)."""
    if isinstance(error, StoreError):
        return FailureReason.STORE
    if isinstance(error, UnsafeArtifactUrl):
        return FailureReason.REFUSED_URL
    if isinstance(error, NotReady):
        return FailureReason.NOT_READY
    if isinstance(error, TransientError):
        return FailureReason.TRANSIENT
    if isinstance(error, VendorError):
        return FailureReason.VENDOR_4XX
    return FailureReason.OTHER


class Observer(Protocol):
    def pass_started(self, source: str) -> None: ...

    def pass_finished(self, source: str, *, ok: bool, seconds: float) -> None: ...

    def watermark_moved(self, source: str, watermark: datetime) -> None: ...

    def session_archived(
        self,
        source: str,
        *,
        session_id: str,
        artifacts: int,
        size: int,
        seconds: float,
        ledger_seq: int,
        rearchive: bool,
    ) -> None: ...

    def session_failed(
        self,
        source: str,
        reason: FailureReason,
        *,
        session_id: str,
        error: str,
        attempts: int,
        max_attempts: int,
    ) -> None:
        """``error`` is already redacted; ``attempts`` counts this one."""
        ...

    def session_held_back(self, source: str, *, session_id: str) -> None: ...

    def oldest_unarchived(self, source: str, started_at: datetime | None) -> None:
        """When the oldest complete session of ``source`` not archived yet started (None:
        every complete session is archived): the one the vendor's retention deletes first."""
        ...

    def artifact_stored(self, source: str, *, kind: str, size: int) -> None: ...

    def ledger_appended(self, seq: int) -> None: ...

    def vendor_request(self, vendor: str, *, status: int | None) -> None:
        """One HTTP exchange with a vendor; ``status`` None when no answer came."""
        ...

    def vendor_retry(self, vendor: str) -> None: ...

    def store_write(self, operation: str, *, seconds: float) -> None:
        """One store call that wrote (``put``, ``put_if_absent``, ``write``, ``commit``)."""
        ...

    def store_bytes_in_flight(self, delta: int) -> None:
        """Bytes handed to the store that it has not committed yet went up or down."""
        ...


class NullObserver:
    """Ignores every event."""

    def pass_started(self, source: str) -> None:
        pass

    def pass_finished(self, source: str, *, ok: bool, seconds: float) -> None:
        pass

    def watermark_moved(self, source: str, watermark: datetime) -> None:
        pass

    def session_archived(
        self,
        source: str,
        *,
        session_id: str,
        artifacts: int,
        size: int,
        seconds: float,
        ledger_seq: int,
        rearchive: bool,
    ) -> None:
        pass

    def session_failed(
        self,
        source: str,
        reason: FailureReason,
        *,
        session_id: str,
        error: str,
        attempts: int,
        max_attempts: int,
    ) -> None:
        pass

    def session_held_back(self, source: str, *, session_id: str) -> None:
        pass

    def oldest_unarchived(self, source: str, started_at: datetime | None) -> None:
        pass

    def artifact_stored(self, source: str, *, kind: str, size: int) -> None:
        pass

    def ledger_appended(self, seq: int) -> None:
        pass

    def vendor_request(self, vendor: str, *, status: int | None) -> None:
        pass

    def vendor_retry(self, vendor: str) -> None:
        pass

    def store_write(self, operation: str, *, seconds: float) -> None:
        pass

    def store_bytes_in_flight(self, delta: int) -> None:
        pass


NO_OBSERVER: Observer = NullObserver()


class FanOut:
    """Hands every event to each observer in turn."""

    def __init__(self, observers: Iterable[Observer]) -> None:
        self.observers = tuple(observers)

    def pass_started(self, source: str) -> None:
        for observer in self.observers:
            observer.pass_started(source)

    def pass_finished(self, source: str, *, ok: bool, seconds: float) -> None:
        for observer in self.observers:
            observer.pass_finished(source, ok=ok, seconds=seconds)

    def watermark_moved(self, source: str, watermark: datetime) -> None:
        for observer in self.observers:
            observer.watermark_moved(source, watermark)

    def session_archived(
        self,
        source: str,
        *,
        session_id: str,
        artifacts: int,
        size: int,
        seconds: float,
        ledger_seq: int,
        rearchive: bool,
    ) -> None:
        for observer in self.observers:
            observer.session_archived(
                source,
                session_id=session_id,
                artifacts=artifacts,
                size=size,
                seconds=seconds,
                ledger_seq=ledger_seq,
                rearchive=rearchive,
            )

    def session_failed(
        self,
        source: str,
        reason: FailureReason,
        *,
        session_id: str,
        error: str,
        attempts: int,
        max_attempts: int,
    ) -> None:
        for observer in self.observers:
            observer.session_failed(
                source,
                reason,
                session_id=session_id,
                error=error,
                attempts=attempts,
                max_attempts=max_attempts,
            )

    def session_held_back(self, source: str, *, session_id: str) -> None:
        for observer in self.observers:
            observer.session_held_back(source, session_id=session_id)

    def oldest_unarchived(self, source: str, started_at: datetime | None) -> None:
        for observer in self.observers:
            observer.oldest_unarchived(source, started_at)

    def artifact_stored(self, source: str, *, kind: str, size: int) -> None:
        for observer in self.observers:
            observer.artifact_stored(source, kind=kind, size=size)

    def ledger_appended(self, seq: int) -> None:
        for observer in self.observers:
            observer.ledger_appended(seq)

    def vendor_request(self, vendor: str, *, status: int | None) -> None:
        for observer in self.observers:
            observer.vendor_request(vendor, status=status)

    def vendor_retry(self, vendor: str) -> None:
        for observer in self.observers:
            observer.vendor_retry(vendor)

    def store_write(self, operation: str, *, seconds: float) -> None:
        for observer in self.observers:
            observer.store_write(operation, seconds=seconds)

    def store_bytes_in_flight(self, delta: int) -> None:
        for observer in self.observers:
            observer.store_bytes_in_flight(delta)


def fan_out(observers: Iterable[Observer]) -> Observer:
    """One observer for several: none is :data:`NO_OBSERVER`, one is itself."""
    chosen = [observer for observer in observers if observer is not NO_OBSERVER]
    if not chosen:
        return NO_OBSERVER
    return chosen[0] if len(chosen) == 1 else FanOut(chosen)
