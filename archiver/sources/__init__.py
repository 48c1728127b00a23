"""Source seam: what one vendor's API says about its sessions.

A source lists sessions, tells whether each is complete, and names the files that make
up its evidence. It never downloads artifacts, retries, limits or orders anything: the
engine does, through ``source.client`` (a :class:`~archiver.http.VendorClient` that sends
the vendor's credentials only to the vendor's own origin).

Every source module follows the same shape, in the same order: its settings (a subclass of
:class:`~archiver.config.SourceSettings`), then the source: ``sessions`` → ``get_session``
→ ``artifacts`` → private helpers that turn vendor JSON into
:class:`~archiver.model.Session` and :class:`~archiver.model.Artifact`; last, its
:class:`~archiver.sources.spec.SourceSpec` (``SPEC``), listed in
:data:`archiver.sources.registry.SOURCES`. How to add one: docs/adding-a-source.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Protocol

import aiohttp

from archiver.http import VendorClient
from archiver.model import Artifact, Session
from archiver.settings import HttpSettings, SourceSettings


class Source(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def client(self) -> VendorClient: ...

    @property
    def settings(self) -> SourceSettings: ...

    def sessions(self, since: datetime, until: datetime) -> AsyncIterator[Session]:
        """Every session that started in ``[since, until]``, complete or not, each once."""
        ...

    async def get_session(self, session_id: str, *, locator: str | None = None) -> Session:
        """One session, fresh from the vendor (re-checks, retries of failures, rearchive)."""
        ...

    async def artifacts(self, session: Session) -> list[Artifact]:
        """Every file to keep for ``session`` (inline JSON records and URLs to fetch)."""
        ...

    def not_offered(self, session: Session) -> list[str]:
        """What the vendor's API does not offer for this session, said in the manifest."""
        ...


SourceFactory = Callable[[aiohttp.ClientSession, SourceSettings, HttpSettings], Source]


def source_factories() -> Mapping[str, SourceFactory]:
    from archiver.sources.registry import SOURCES  # the vendor modules import this one

    return {spec.name: spec.factory for spec in SOURCES}


def open_sources(
    http: aiohttp.ClientSession,
    settings: Mapping[str, SourceSettings],
    http_settings: HttpSettings,
) -> dict[str, Source]:
    factories = source_factories()
    return {name: factories[name](http, conf, http_settings) for name, conf in settings.items()}
