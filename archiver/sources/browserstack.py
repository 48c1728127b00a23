"""BrowserStack App Automate and Automate sessions, with their video and logs.

Follows BrowserStack's REST API reference:

* App Automate, https://www.browserstack.com/docs/app-automate/api-reference/appium/builds
  (``GET /app-automate/builds.json``: ``limit`` up to 100, default 10, ``offset``, ``status``
  in running/done/timeout/failed; ``[{"automation_build": {name, duration, status,
  hashed_id}}]``) and .../appium/sessions (``GET /app-automate/sessions/{id}.json``:
  ``{"automation_session": {..., logs, appium_logs_url, video_url, device_logs_url, ...}}``);
* Automate, https://www.browserstack.com/docs/automate/api-reference/selenium/build and
  .../selenium/session (``GET /automate/builds.json`` with the same paging,
  ``GET /automate/builds/{id}/sessions.json``, ``GET /automate/sessions/{id}.json`` with
  ``logs``, ``selenium_logs_url``, ``browser_console_logs_url``, ``har_logs_url``,
  ``video_url``).

``GET /{product}/builds/{build_id}/sessions.json`` pages with ``limit``/``offset`` too and
answers ``[{"automation_session": {...}}]``; a page shorter than ``limit`` is the last.
HTTP basic auth: the user name and the access key.

**Listing.** The builds listing carries no time, and a build gains sessions whenever a run
reuses its name, so a build that looks old can hold a session started a minute ago. No
build is ever skipped for its age: every pass pages through the whole builds listing (one
request per ``limit`` builds) and lists the sessions of each build, keeping those whose
``created_at`` is in the pass's window. A running daemon spares the sessions request of a
finished build whose ``status`` and ``duration`` are what they were when its sessions were
last listed (a session added to it changes both), and lists every build again every
``relist_every`` passes in case that does not hold (see docs/sources.md).

**Completeness.** A session is complete once ``browserstack_status`` (``status`` where that
is absent; ``status`` alone can be a verdict the test set while it still runs) is neither
``running`` nor ``queued``.

**Evidence.** The details record (``sessions/{id}.json``, bytes as served) and every file
it links to: video, text logs (``logs``), and per product the Appium, device and network
logs (App Automate) or the Selenium, console and HAR logs (Automate). A link that is null
is a log the session did not capture (``browserstack.networkLogs`` not set, video off...):
each manifest names them. Video links are signed URLs on other hosts and get no
credentials; log links on the API origin do. The real ``logs`` link points at the
dashboard host (``app-automate.browserstack.com``), which wants the credentials as well:
list it in ``trusted_hosts`` (the video links' first hop is on that host too; the signed
object-storage URL they redirect to never gets the key).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import aiohttp
from pydantic import Field, model_validator

from archiver.configkeys import Int, Strings, Text, problem
from archiver.errors import BadVendorResponse, VendorError
from archiver.http import VendorClient, basic
from archiver.model import JSON, Artifact, Session
from archiver.settings import HttpSettings, Secret, SourceSettings
from archiver.sources.records import json_artifact, parse_timestamp
from archiver.sources.spec import DemoRun, SimulatorFixture, SourceSpec

if TYPE_CHECKING:
    from archiver_sim.browserstack import BrowserStackSimConfig, BrowserStackSimulator

NAME = "browserstack"
VENDOR = "BrowserStack"
APP_AUTOMATE = "app-automate"
AUTOMATE = "automate"
PRODUCTS = (APP_AUTOMATE, AUTOMATE)
UNFINISHED = frozenset({"running", "queued"})
FINAL_BUILDS = frozenset({"done", "failed", "timeout"})


@dataclass(frozen=True, slots=True)
class LinkedFile:
    """One file a session record links to: the field, how it is kept, and the capability
    that switches it off (None: always captured)."""

    field: str
    kind: str
    name: str
    capability: str | None


FILES: Mapping[str, tuple[LinkedFile, ...]] = {
    APP_AUTOMATE: (
        LinkedFile("video_url", "video", "video.mp4", "browserstack.video"),
        LinkedFile("logs", "text_log", "logs/text.log", None),
        LinkedFile("appium_logs_url", "appium_log", "logs/appium.log", "browserstack.appiumLogs"),
        LinkedFile("device_logs_url", "device_log", "logs/device.log", "browserstack.deviceLogs"),
        LinkedFile(
            "network_logs_url", "network_log", "logs/network.har", "browserstack.networkLogs"
        ),
    ),
    AUTOMATE: (
        LinkedFile("video_url", "video", "video.mp4", "browserstack.video"),
        LinkedFile("logs", "text_log", "logs/text.log", None),
        LinkedFile(
            "selenium_logs_url", "selenium_log", "logs/selenium.log", "browserstack.seleniumLogs"
        ),
        LinkedFile(
            "browser_console_logs_url", "console_log", "logs/console.log", "browserstack.console"
        ),
        LinkedFile("har_logs_url", "network_log", "logs/network.har", "browserstack.networkLogs"),
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class BrowserStackSettings(SourceSettings):
    """BrowserStack App Automate and Automate sessions with their video and logs, archived
    once BrowserStack reports them done. The token is the access key (HTTP basic auth)."""

    CREDENTIAL_VARIABLE = "BROWSERSTACK_ACCESS_KEY"
    BASE_URL_EXAMPLE = "https://api.browserstack.com"

    username: Annotated[
        Text, Field(description="user name (HTTP basic auth)", examples=["jane_doe_AbCdEf"])
    ]
    products: Annotated[
        Strings,
        Field(description="which products to archive: app-automate, automate or both"),
    ] = PRODUCTS
    page_limit: Annotated[
        Int,
        Field(
            ge=1,
            le=100,
            validation_alias="limit",
            description="builds and sessions per page (BrowserStack allows up to 100)",
        ),
    ] = 100
    relist_every: Annotated[
        Int,
        Field(
            ge=1,
            description="a running daemon lists the sessions of a finished build whose status "
            "and duration have not changed only every this many passes (1: every pass); keep "
            "it times engine.interval_seconds under overlap_minutes",
        ),
    ] = 12

    @model_validator(mode="after")
    def _known_products(self) -> BrowserStackSettings:
        unknown = [product for product in self.products if product not in PRODUCTS]
        if unknown or not self.products:
            raise problem(
                f"must name app-automate and/or automate; got {list(self.products)!r}",
                key="products",
            )
        return self


class BrowserStackSource:
    name = NAME

    def __init__(self, client: VendorClient, settings: BrowserStackSettings) -> None:
        self.client = client
        self.settings: BrowserStackSettings = settings
        # What artifacts() found missing, by session, for not_offered() to say.
        self._missing: dict[str, list[str]] = {}
        # Finished builds whose sessions were all listed: their (status, duration) then.
        self._settled: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._passes = 0

    @classmethod
    def create(
        cls, http: aiohttp.ClientSession, settings: SourceSettings, http_settings: HttpSettings
    ) -> BrowserStackSource:
        assert isinstance(settings, BrowserStackSettings)
        client = VendorClient.for_source(
            http,
            vendor=VENDOR,
            source=settings,
            auth_headers=basic(settings.username, settings.token),
            settings=http_settings,
        )
        return cls(client, settings)

    async def sessions(self, since: datetime, until: datetime) -> AsyncIterator[Session]:
        seen: set[str] = set()
        full = self._passes % self.settings.relist_every == 0
        self._passes += 1
        if full:
            self._settled.clear()
        for product in self.settings.products:
            async for build in self._pages(f"/{product}/builds.json", "automation_build"):
                build_id = _text(build, "hashed_id", f"a {product} build")
                mark = (build.get("status"), build.get("duration"))
                if not full and self._settled.get((product, build_id)) == mark:
                    continue  # finished, and no session added or ended since it was listed
                path = f"/{product}/builds/{build_id}/sessions.json"
                settled = mark[0] in FINAL_BUILDS
                async for record in self._pages(path, "automation_session"):
                    session = _session(product, record, build_id)
                    settled = settled and session.complete
                    if session.session_id not in seen and session.started_at >= since:
                        seen.add(session.session_id)
                        yield session
                if settled:
                    self._settled[(product, build_id)] = mark
                else:
                    self._settled.pop((product, build_id), None)

    async def get_session(self, session_id: str, *, locator: str | None = None) -> Session:
        product, _, build_id = (locator or "").partition(":")
        candidates = (product,) if product in PRODUCTS else self.settings.products
        for candidate in candidates:
            try:
                record = await self._details(candidate, session_id)
            except VendorError as exc:
                if exc.status == 404 and len(candidates) > 1:
                    continue
                raise
            return _session(candidate, record, build_id or None)
        raise VendorError(
            f"{VENDOR}: no session {session_id!r} in {' or '.join(candidates)}",
            vendor=VENDOR,
            status=404,
        )

    async def artifacts(self, session: Session) -> list[Artifact]:
        product = _product_of(session)
        document, raw = await self.client.get_document(
            f"/{product}/sessions/{session.session_id}.json"
        )
        details = _automation_session(document, session.session_id)
        found = [
            json_artifact("session.json", "session_record", session.record),
            Artifact(
                name="session-details.json",
                kind="session_details",
                content=raw,
                content_type="application/json",
            ),
        ]
        missing: list[str] = []
        for linked in FILES[product]:
            url = details.get(linked.field)
            if isinstance(url, str) and url:
                found.append(Artifact(name=linked.name, kind=linked.kind, url=url))
            else:
                missing.append(_missing_note(linked))
        self._missing[session.session_id] = missing
        return found

    def not_offered(self, session: Session) -> list[str]:
        missing = self._missing.pop(session.session_id, None)
        if missing is None:  # artifacts() not called: judge from the listed record
            record = session.record
            missing = [
                _missing_note(linked)
                for linked in FILES[_product_of(session)]
                if not (isinstance(record.get(linked.field), str) and record.get(linked.field))
            ]
        return missing

    async def _details(self, product: str, session_id: str) -> JSON:
        document = await self.client.get_json(f"/{product}/sessions/{session_id}.json")
        return _automation_session(document, session_id)

    async def _pages(self, path: str, wrapper: str) -> AsyncIterator[JSON]:
        """Every entry of a ``limit``/``offset`` listing, unwrapped from ``wrapper``."""
        limit = self.settings.page_limit
        offset = 0
        seen: set[Any] = set()
        previous: list[Any] = []
        while True:
            body = await self.client.get_json(
                path, params={"limit": str(limit), "offset": str(offset)}
            )
            if not isinstance(body, list):
                raise BadVendorResponse(f"{VENDOR}: {path} did not answer a JSON array")
            items = [_unwrapped(entry, wrapper, path) for entry in body]
            ids = [item.get("hashed_id") for item in items]
            if ids and ids == previous:
                # A listing that ignored offset would otherwise be read forever.
                raise BadVendorResponse(
                    f"{VENDOR}: {path} at offset {offset} repeated the previous page"
                )
            previous = ids
            # Entries created while the listing is read push older ones onto the next page.
            for item in items:
                if item.get("hashed_id") not in seen:
                    seen.add(item.get("hashed_id"))
                    yield item
            offset += len(body)
            if len(body) < limit:
                return


def _unwrapped(entry: Any, wrapper: str, path: str) -> JSON:
    item = entry.get(wrapper) if isinstance(entry, dict) else None
    if not isinstance(item, dict):
        raise BadVendorResponse(f"{VENDOR}: {path} has an entry without {wrapper!r}")
    return item


def _automation_session(document: Any, session_id: str) -> JSON:
    record = document.get("automation_session") if isinstance(document, dict) else None
    if not isinstance(record, dict):
        raise BadVendorResponse(f"{VENDOR}: session {session_id} answer has no automation_session")
    return record


def _text(record: JSON, field: str, what: str) -> str:
    value = record.get(field)
    if not isinstance(value, str) or not value:
        raise BadVendorResponse(f"{VENDOR}: {what} without {field!r}")
    return value


def _session(product: str, record: JSON, build_id: str | None) -> Session:
    session_id = _text(record, "hashed_id", f"a {product} session")
    build = record.get("build_hashed_id")
    build_id = build if isinstance(build, str) and build else build_id
    state = record.get("browserstack_status") or record.get("status")
    return Session(
        source=NAME,
        session_id=session_id,
        started_at=parse_timestamp(record.get("created_at"), vendor=VENDOR) or datetime.now(UTC),
        complete=isinstance(state, str) and state.lower() not in UNFINISHED,
        record=record,
        locator=f"{product}:{build_id or ''}",
    )


def _product_of(session: Session) -> str:
    product = (session.locator or "").partition(":")[0]
    if product not in PRODUCTS:
        raise BadVendorResponse(
            f"{VENDOR}: session {session.session_id} has no product in its locator"
        )
    return product


def _missing_note(linked: LinkedFile) -> str:
    why = (
        f"not captured for this session (capability {linked.capability} off or not set)"
        if linked.capability
        else "not offered for this session"
    )
    return f"{linked.kind} ({linked.field}): {why}"


@asynccontextmanager
async def _demo(sessions: int, held_back: int) -> AsyncIterator[DemoRun]:
    from archiver_sim.browserstack import BrowserStackSimConfig, BrowserStackSimulator
    from archiver_sim.runner import running

    # The demo's sessions are shared between the two products.
    config = BrowserStackSimConfig(
        sessions_per_product=max(1, sessions // 2), unfinished=max(0, held_back // 2)
    )
    async with running(BrowserStackSimulator(config)) as simulator:
        yield DemoRun(
            settings=BrowserStackSettings(
                base_url=simulator.api_url,
                token=Secret(config.access_key),
                username=config.username,
                backfill_days=config.span.days + 2,
            ),
            urls={"API": simulator.api_url, "files": simulator.files_url},
            finish=simulator.finish_all,
        )


def _fixture() -> SimulatorFixture[BrowserStackSimulator, BrowserStackSimConfig]:
    from archiver_sim.browserstack import BrowserStackSimConfig, BrowserStackSimulator

    return SimulatorFixture(BrowserStackSimulator, BrowserStackSimConfig)


SPEC = SourceSpec(
    name=NAME,
    title=VENDOR,
    settings=BrowserStackSettings,
    factory=BrowserStackSource.create,
    demo=_demo,
    fixture=_fixture,
    not_offered="logs a session did not capture: network logs unless browserstack.networkLogs "
    "was set, device logs unless browserstack.deviceLogs, video when browserstack.video was "
    "off, and so on (each manifest names them); the builds listing carries no time, so every "
    "pass reads it whole.",
)
