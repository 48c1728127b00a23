"""State seam: remembers what was archived, what failed, what is pending, and watermarks.

Contract (checked by ``tests/contract/test_state_contract.py`` over every implementation):

* One row per ``(source, session_id)`` with a status: ``pending`` (the vendor still
  processes it), ``failed`` (with ``attempts`` and ``last_error``) or ``archived`` (with
  ``manifest_key``). ``record_*`` calls move a row between statuses; ``record_failure``
  increments ``attempts`` and returns the new count; ``record_success`` resets the
  error. ``record_failure`` or ``record_pending`` on an ``archived`` row (a failed
  re-archive) keeps ``status='archived'`` and its manifest key and only stores the error,
  so a failed re-archive never hides earlier evidence.
* ``archived_ids`` answers for many ids in one query (listing pages are checked in bulk).
* Every call is its own short transaction; a crash between calls loses at most that call.
* Times are timezone-aware UTC datetimes on the way in and out.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from archiver.model import SessionRecord


class State(Protocol):
    description: str

    async def watermark(self, source: str) -> datetime | None: ...

    async def set_watermark(self, source: str, at: datetime) -> None: ...

    async def get(self, source: str, session_id: str) -> SessionRecord | None: ...

    async def archived_ids(self, source: str, session_ids: Collection[str]) -> set[str]: ...

    async def record_success(
        self, source: str, session_id: str, *, manifest_key: str, at: datetime
    ) -> None: ...

    async def record_failure(
        self,
        source: str,
        session_id: str,
        *,
        error: str,
        at: datetime,
        locator: str | None = None,
        started_at: datetime | None = None,
    ) -> int: ...

    async def record_pending(
        self,
        source: str,
        session_id: str,
        *,
        at: datetime,
        locator: str | None = None,
        started_at: datetime | None = None,
    ) -> None: ...

    async def pending(self, source: str) -> list[SessionRecord]: ...

    async def retryable_failures(self, source: str, *, max_attempts: int) -> list[SessionRecord]: ...

    async def forget(self, source: str, session_id: str) -> None: ...

    async def counts(self, source: str | None = None) -> dict[str, int]: ...

    async def close(self) -> None: ...
