"""The event log: observer events become structlog events, one JSON line each.

What an operator reads in the journal about sessions: archived (with its ledger entry),
failed (with the attempts left), held back because the vendor has not finished it.
"""

from __future__ import annotations

from archiver.log import get_logger
from archiver.observe import FailureReason, NullObserver

log = get_logger("archiver.engine")


class EventLog(NullObserver):
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
        log.info(
            "session_archived",
            source=source,
            session_id=session_id,
            artifacts=artifacts,
            bytes=size,
            seconds=round(seconds, 3),
            rearchive=rearchive,
            ledger_seq=ledger_seq,
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
        log.error(
            "session_failed",
            source=source,
            session_id=session_id,
            reason=reason.value,
            attempts=attempts,
            max_attempts=max_attempts,
            error=error,
        )

    def session_held_back(self, source: str, *, session_id: str) -> None:
        log.info("session_pending", source=source, session_id=session_id)


EVENT_LOG = EventLog()
