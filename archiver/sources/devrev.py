"""DevRev observability: sessions of one or more apps and every recording they hold.

API: ``POST /observability.sessions.list`` (``type``, ``version_key``, ``platform``,
``limit``, ``cursor``/``next_cursor`` paging; ``next_cursor`` is absent on the last page)
and ``POST /observability.sessions.data.get`` (one recording, or one tab for web sessions).

Sessions are asked for newest first. The cursor's lifetime is undocumented, so nothing
is resumed from one: each pass starts at the top and stops at the first page that lies
wholly before the watermark (the engine subtracts an overlap first; duplicates are
dropped by ``session_id``). A session is complete once DevRev reports a duration for it;
while it is still recording ``session_duration_ms`` is 0 and it is re-checked later.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import aiohttp
from pydantic import Field

from archiver.configkeys import Hint, Int, OneOf, Strings, Text
from archiver.errors import BadVendorResponse, VendorError
from archiver.http import AuthHeaders, VendorClient
from archiver.model import JSON, Artifact, Session
from archiver.settings import HttpSettings, Secret, SourceSettings
from archiver.sources.records import json_artifact, parse_timestamp, url_basename
from archiver.sources.spec import DemoRun, SimulatorFixture, SourceSpec

if TYPE_CHECKING:
    from archiver_sim.devrev import DevRevSimConfig, DevRevSimulator

NAME = "devrev"
LIST = "/observability.sessions.list"
DATA = "/observability.sessions.data.get"
NEWEST_FIRST = ["created_at:desc"]
NO_RECORDINGS = (
    "recordings: DevRev lists no recording for this session (recording_ids is empty), so "
    "there is no timeline, log or video to fetch; the session record is all the API offers"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DevRevSettings(SourceSettings):
    """DevRev observability: the sessions of one or more apps, with their recordings."""

    CREDENTIAL_VARIABLE = "DEVREV_TOKEN"
    BASE_URL_EXAMPLE = "https://api.devrev.ai"

    version_keys: Annotated[
        Strings,
        Field(
            min_length=1,
            validation_alias="version_key",
            description="the app whose sessions are archived, or a list of apps",
            examples=["my-app-id"],
        ),
        Hint("the app id, or a list of app ids"),
    ]
    session_type: Annotated[
        str,
        OneOf("mobile", "web"),
        Field(validation_alias="type", description="mobile or web sessions"),
    ] = "mobile"
    platform: Annotated[
        str | None,
        OneOf("android", "ios", "web"),
        Field(
            description="only sessions of this platform: android, ios or web", examples=["android"]
        ),
    ] = None
    page_limit: Annotated[
        Int, Field(ge=1, le=100, validation_alias="limit", description="sessions per page")
    ] = 50
    scope: Annotated[
        Text | None, Field(description="sent as X-Devrev-Scope", examples=["beta"])
    ] = None
    page_cap: Annotated[Int, Field(ge=1, description="pages listed per app before giving up")] = (
        10_000
    )


class DevRevSource:
    name = NAME

    def __init__(self, client: VendorClient, settings: DevRevSettings) -> None:
        self.client = client
        self.settings: DevRevSettings = settings

    @classmethod
    def create(
        cls, http: aiohttp.ClientSession, settings: SourceSettings, http_settings: HttpSettings
    ) -> DevRevSource:
        assert isinstance(settings, DevRevSettings)
        client = VendorClient.for_source(
            http,
            vendor="DevRev",
            source=settings,
            auth_headers=_auth(settings.token, settings.scope),
            settings=http_settings,
        )
        return cls(client, settings)

    async def sessions(self, since: datetime, until: datetime) -> AsyncIterator[Session]:
        seen: set[str] = set()
        for version_key in self.settings.version_keys:
            async for record in self._list_app(version_key, since):
                session = _session(record, version_key)
                if session.session_id in seen:
                    continue
                seen.add(session.session_id)
                yield session

    async def get_session(self, session_id: str, *, locator: str | None = None) -> Session:
        # There is no "get one session" call: walk the listing of its app (or every app).
        for version_key in (locator,) if locator else self.settings.version_keys:
            async for record in self._list_app(version_key, since=None):
                if record.get("session_id") == session_id:
                    return _session(record, version_key)
        raise VendorError(
            f"DevRev: no observability session {session_id!r} in app(s) "
            f"{', '.join((locator,) if locator else self.settings.version_keys)}",
            vendor="DevRev",
        )

    async def artifacts(self, session: Session) -> list[Artifact]:
        found = [json_artifact("session.json", "session_record", session.record)]
        for index, recording_id in enumerate(_recording_ids(session.record)):
            body = {"session_id": session.session_id, "version_key": session.locator or ""}
            body["tab_id" if self.settings.session_type == "web" else "recording_id"] = recording_id
            document, raw = await self.client.post_document(DATA, body)
            stem = f"recordings/{index:02d}-{recording_id}"
            found.append(
                Artifact(
                    name=f"{stem}.json",
                    kind="recording",
                    content=raw,
                    content_type="application/json",
                )
            )
            found.extend(_media(document, stem))
        return found

    def not_offered(self, session: Session) -> list[str]:
        if _recording_ids(session.record):
            return []
        return [NO_RECORDINGS]

    async def _list_app(self, version_key: str, since: datetime | None) -> AsyncIterator[JSON]:
        """The app's sessions newest first, down to ``since`` (all of them when None)."""
        request: dict[str, Any] = {
            "type": self.settings.session_type,
            "version_key": version_key,
            "limit": self.settings.page_limit,
            "sort_by": NEWEST_FIRST,
        }
        if self.settings.platform:
            request["platform"] = self.settings.platform
        for _page in range(self.settings.page_cap):
            body = await self.client.post_json(LIST, request)
            records, next_cursor = _page_parts(body)
            older = 0
            for record in records:
                if since is not None and _created_at(record) < since:
                    older += 1
                    continue
                yield record
            if not next_cursor or not records or older == len(records):
                return
            request = {**request, "cursor": next_cursor, "mode": "after"}
        raise BadVendorResponse(
            f"DevRev: more than {self.settings.page_cap} pages listing app {version_key!r} "
            "(raise sources.devrev.page_cap)"
        )


def _auth(token: Secret, scope: str | None) -> AuthHeaders:
    def headers() -> Mapping[str, str]:
        values = {"Authorization": f"Bearer {token.reveal()}"}
        if scope:
            values["X-Devrev-Scope"] = scope
        return values

    return headers


def _page_parts(body: Any) -> tuple[list[JSON], str | None]:
    if not isinstance(body, dict) or not isinstance(body.get("sessions"), list):
        raise BadVendorResponse("DevRev: sessions.list response has no 'sessions' list")
    records: list[JSON] = [item for item in body["sessions"] if isinstance(item, dict)]
    cursor = body.get("next_cursor")
    return records, cursor if isinstance(cursor, str) and cursor else None


def _session(record: JSON, version_key: str) -> Session:
    session_id = record.get("session_id")
    if not isinstance(session_id, str) or not session_id:
        raise BadVendorResponse("DevRev: a session without a 'session_id'")
    duration = record.get("session_duration_ms")
    ended = isinstance(duration, int | float) and not isinstance(duration, bool) and duration > 0
    return Session(
        source=NAME,
        session_id=session_id,
        started_at=_created_at(record),
        complete=ended,
        record=record,
        locator=version_key,
    )


def _created_at(record: JSON) -> datetime:
    moment = parse_timestamp(record.get("created_at"), vendor="DevRev")
    if moment is None:
        raise BadVendorResponse(f"DevRev: session {record.get('session_id')!r} has no created_at")
    return moment


def _recording_ids(record: JSON) -> list[str]:
    ids = record.get("recording_ids")
    if not isinstance(ids, list):
        return []
    return list(dict.fromkeys(item for item in ids if isinstance(item, str) and item))


def _media(document: Any, stem: str) -> Iterator[Artifact]:
    """Pre-signed media URLs a recording points to (fetched without the DevRev token)."""
    media = document.get("media") if isinstance(document, dict) else None
    for index, item in enumerate(media if isinstance(media, list) else []):
        url = item.get("url") if isinstance(item, dict) else None
        if isinstance(url, str) and url:
            yield Artifact(
                name=f"{stem}-media/{index:02d}-{url_basename(url, 'media')}",
                kind="recording_media",
                url=url,
            )


@asynccontextmanager
async def _demo(sessions: int, held_back: int) -> AsyncIterator[DemoRun]:
    from archiver_sim.devrev import DevRevSimConfig, DevRevSimulator
    from archiver_sim.runner import running

    config = DevRevSimConfig(sessions=sessions, unfinished=held_back)
    async with running(DevRevSimulator(config)) as simulator:
        yield DemoRun(
            settings=DevRevSettings(
                base_url=simulator.api_url,
                token=Secret(config.token),
                version_keys=config.version_keys[:1],
                backfill_days=1,
            ),
            urls={"API": simulator.api_url, "files": simulator.files_url},
            finish=simulator.finish_all,
        )


def _fixture() -> SimulatorFixture[DevRevSimulator, DevRevSimConfig]:
    from archiver_sim.devrev import DevRevSimConfig, DevRevSimulator

    return SimulatorFixture(DevRevSimulator, DevRevSimConfig)


SPEC = SourceSpec(
    name=NAME,
    title="DevRev",
    settings=DevRevSettings,
    factory=DevRevSource.create,
    demo=_demo,
    fixture=_fixture,
    not_offered="recordings, for a session that lists none (`recording_ids` empty): its "
    "record is then all there is, and its manifest says so. Otherwise every recording of a "
    "session (every tab of a web session) can be downloaded.",
)
