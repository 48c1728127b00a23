"""Plain records passed between the engine and its seams (sources, store, state)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

JSON = Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """One vendor session (a Perfecto test execution, a DevRev session...).

    ``record`` is the vendor's JSON verbatim; it goes into the manifest untouched.
    ``locator`` is whatever the source needs to find the session again later (for
    Perfecto the driver ``externalId``); the state keeps it with pending and failed rows.
    """

    source: str
    session_id: str
    started_at: datetime
    complete: bool
    record: JSON = field(repr=False)
    locator: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Artifact:
    """One file to keep for a session: either fetched from ``url`` or given as ``content``.

    ``name`` is a path relative to the session's folder chosen by the source
    (``videos/0-video.mp4``); the engine sanitizes it before it becomes a store key.
    ``renew_url``, for a pre-signed ``url`` that expires, asks the vendor for a fresh one:
    the engine calls it once when the URL's host refuses the download with HTTP 403.
    """

    name: str
    kind: str
    url: str | None = None
    content: bytes | None = field(default=None, repr=False)
    content_type: str | None = None
    renew_url: Callable[[], Awaitable[str]] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.url is None) == (self.content is None):
            raise ValueError("an Artifact needs exactly one of url or content")


SessionStatus = Literal["archived", "failed", "pending"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRecord:
    """What the state remembers about one session."""

    source: str
    session_id: str
    status: SessionStatus
    locator: str | None
    started_at: datetime | None
    first_seen: datetime
    updated_at: datetime
    attempts: int
    last_error: str | None
    manifest_key: str | None


def rfc3339(moment: datetime) -> str:
    """``2026-11-23T10:00:00.123Z``: UTC, millisecond precision, trailing Z."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def strip_query(url: str) -> str:
    """The URL without query string and fragment: signed URLs carry secrets there."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if ":" in (parts.hostname or ""):
        netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True, slots=True, kw_only=True)
class PassOutcome:
    """How one source's last pass went: ``error`` is None when it listed everything (the
    sessions that failed in it are counted on their own)."""

    started_at: datetime
    finished_at: datetime
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceSummary:
    """What the state knows of one source, for ``archiver status``.

    ``oldest_unarchived`` is the complete session waiting longest to be archived (a failed
    one: held-back sessions are not complete yet), the one the vendor's retention deletes
    first; ``archived_recently`` counts the sessions archived since the moment asked about.
    """

    source: str
    watermark: datetime | None
    last_pass: PassOutcome | None
    last_success_at: datetime | None
    archived: int
    archived_recently: int
    held_back: int
    failing: int
    newest_error: str | None
    newest_error_at: datetime | None
    oldest_unarchived: SessionRecord | None
