"""The BrowserStack simulator's dataset: builds and sessions of both products, their files.

:class:`BrowserStackDataset` (the tables, built from :class:`BrowserStackSimConfig`) is
immutable; :class:`BrowserStackData` swaps in a new one when a session is added to a build,
as a run reusing a build name does, and keeps which sessions still run. Nothing here knows
of HTTP: :mod:`archiver_sim.browserstack` serves it.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from archiver_sim.base import SessionIds, lookup
from archiver_sim.content import digest, iter_chunks, magic_for

APP_AUTOMATE = "app-automate"
AUTOMATE = "automate"
PRODUCTS = (APP_AUTOMATE, AUTOMATE)
# Per product: the log endpoint of each record field, and its content type.
LOGS: Mapping[str, Mapping[str, tuple[str, str]]] = {
    APP_AUTOMATE: {
        "logs": ("logs", "text/plain"),
        "appium_logs_url": ("appiumlogs", "text/plain"),
        "device_logs_url": ("devicelogs", "text/plain"),
        "network_logs_url": ("networklogs", "application/json"),
    },
    AUTOMATE: {
        "logs": ("logs", "text/plain"),
        "selenium_logs_url": ("seleniumlogs", "text/plain"),
        "browser_console_logs_url": ("consolelogs", "text/plain"),
        "har_logs_url": ("networklogs", "application/json"),
    },
}
KIB = 1024

JSONDict = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class BrowserStackSimConfig:
    """The simulated account. Defaults suit a demo: a dozen sessions per product.

    Each product has ``sessions_per_product`` sessions, created over ``span`` up to
    ``newest_start`` (None: 30 minutes before the simulator is built), grouped
    ``sessions_per_build`` to a build. Every ``network_logs_every``-th session captured
    network logs, every ``device_logs_every``-th device logs (App Automate), all but every
    ``no_console_every``-th console logs and all but every ``no_video_every``-th a video
    (0: never / always). The newest ``unfinished`` sessions of each product are running.
    """

    seed: int = 3
    products: tuple[str, ...] = PRODUCTS
    sessions_per_product: int = 12
    sessions_per_build: int = 4
    span: timedelta = timedelta(days=10)
    newest_start: datetime | None = None
    username: str = "sim_user_Xk3d9"
    access_key: str = "browserstack-sim-access-key"
    unfinished: int = 0
    network_logs_every: int = 3
    device_logs_every: int = 2
    no_console_every: int = 4
    no_video_every: int = 7
    video_size: int = 48 * KIB
    log_size: int = 4 * KIB
    rate_limit_every: int = 0
    request_log_limit: int = 50_000

    def __post_init__(self) -> None:
        counts = (
            self.sessions_per_product,
            self.unfinished,
            self.network_logs_every,
            self.device_logs_every,
            self.no_console_every,
            self.no_video_every,
            self.video_size,
            self.log_size,
            self.rate_limit_every,
        )
        if min(counts) < 0 or self.sessions_per_build < 1:
            raise ValueError("counts and sizes must be >= 0, sessions_per_build >= 1")
        if not self.products or not set(self.products) <= set(PRODUCTS):
            raise ValueError(f"products must be a non-empty subset of {PRODUCTS}")
        if not self.username or ":" in self.username:
            raise ValueError("username must be non-empty, without ':'")
        if self.span <= timedelta(0):
            raise ValueError("span must be positive")


# -- the dataset -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SimSession:
    """One session as generated; ``captured`` names the record fields it has a file for."""

    product: str
    hashed_id: str
    build_id: str
    build_name: str
    project_name: str
    name: str
    created_at: datetime
    duration: int
    os: str
    os_version: str
    browser: str | None
    browser_version: str
    device: str | None
    verdict: str
    browserstack_status: str
    reason: str
    captured: frozenset[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class SimBuild:
    product: str
    hashed_id: str
    name: str
    sessions: tuple[SimSession, ...]  # newest first


@dataclass(frozen=True, slots=True, kw_only=True)
class BrowserStackDataset:
    """Every build and session, by product (newest build first), and by id."""

    builds: Mapping[str, tuple[SimBuild, ...]]
    sessions: Mapping[str, SimSession] = field(init=False)

    def __post_init__(self) -> None:
        found = {s.hashed_id: s for bs in self.builds.values() for b in bs for s in b.sessions}
        object.__setattr__(self, "sessions", found)

    def build(self, product: str, build_id: str) -> SimBuild | None:
        return next((b for b in self.builds.get(product, ()) if b.hashed_id == build_id), None)

    def newest_sessions(self, product: str, count: int) -> list[SimSession]:
        """The ``count`` newest sessions of ``product`` (as generated, newest first)."""
        return [s for build in self.builds.get(product, ()) for s in build.sessions][:count]

    def with_session(self, session: SimSession) -> BrowserStackDataset:
        """The same data with ``session`` added (newest) to its build."""
        builds = {
            product: tuple(
                replace(b, sessions=(session, *b.sessions))
                if b.hashed_id == session.build_id
                else b
                for b in listed
            )
            for product, listed in self.builds.items()
        }
        return BrowserStackDataset(builds=builds)


class BrowserStackData:
    """The builds and sessions (:attr:`dataset`), added sessions, and which still run
    (thread-safe)."""

    def __init__(self, config: BrowserStackSimConfig, newest: datetime) -> None:
        self.config = config
        self.dataset = build_dataset(config, newest)
        self.unfinished: SessionIds[str] = SessionIds(
            session.hashed_id
            for product in config.products
            for session in self.dataset.newest_sessions(product, config.unfinished)
        )
        self._lock = threading.Lock()  # adding sessions
        self._added = 0

    def session(self, session_id: str) -> SimSession:
        return lookup(self.dataset.sessions, session_id, "session")

    def add_session(self, build_id: str, *, unfinished: bool = False) -> SimSession:
        """A new session, created now, in the existing build ``build_id``."""
        with self._lock:
            build = next(
                (b for bs in self.dataset.builds.values() for b in bs if b.hashed_id == build_id),
                None,
            )
            if build is None:
                raise KeyError(f"no simulated build {build_id!r}")
            self._added += 1
            template = build.sessions[-1]
            session = replace(
                template,
                hashed_id=hashed_id(self.config.seed, "added", self._added),
                name=f"{template.name}_rerun_{self._added}",
                created_at=datetime.now(UTC).replace(microsecond=0),
            )
            if unfinished:
                self.unfinished.add(session.hashed_id)
            self.dataset = self.dataset.with_session(session)
        return session

    def build_status(self, build: SimBuild) -> str:
        """``running`` while a session runs, then what its sessions ended in."""
        running = self.unfinished.snapshot()
        if any(s.hashed_id in running for s in build.sessions):
            return "running"
        states = {s.browserstack_status for s in build.sessions}
        return "failed" if "error" in states else "timeout" if "timeout" in states else "done"

    def files(self, session_id: str) -> dict[str, SimBody]:
        """What each link of a finished session serves, by record field."""
        session = self.session(session_id)
        found = {name: self.log_body(session, name) for name in LOGS[session.product]}
        found["video_url"] = self.video_body(session)
        return {name: body for name, body in found.items() if name in session.captured}

    def log_body(self, session: SimSession, name: str) -> SimBody:
        text = _log_text(self.config, session, name)
        content_type = LOGS[session.product][name][1]
        return SimBody(content_type, len(text), f"{session.hashed_id}/{name}", text)

    def video_body(self, session: SimSession) -> SimBody:
        name = f"browserstack/{self.config.seed}/video/{session.hashed_id}"
        return SimBody("video/mp4", self.config.video_size, name)


# -- generation ------------------------------------------------------------------------------

DEVICES = (("android", "12.0", "Samsung Galaxy S22"), ("ios", "16", "iPhone 14"),
           ("android", "13.0", "Google Pixel 7"), ("ios", "15", "iPhone 13"))  # fmt: skip
BROWSERS = (("Windows", "11", "chrome", "119.0"), ("OS X", "Ventura", "safari", "16.5"),
            ("Windows", "10", "firefox", "120.0"), ("OS X", "Sonoma", "edge", "119.0"))  # fmt: skip
ENDINGS = (
    ("passed", "done", "CLIENT_STOPPED_SESSION"),
    ("failed", "done", "assertion failed"),
    ("passed", "done", "CLIENT_STOPPED_SESSION"),
    ("unmarked", "timeout", "BROWSERSTACK_IDLE_TIMEOUT"),
    ("unmarked", "error", "start-error"),
)


def build_dataset(config: BrowserStackSimConfig, newest: datetime) -> BrowserStackDataset:
    step = config.span / max(1, config.sessions_per_product)
    builds: dict[str, tuple[SimBuild, ...]] = {}
    for product in config.products:
        sessions = [
            _generated_session(config, product, index, newest - step * index)
            for index in range(config.sessions_per_product)
        ]
        per = config.sessions_per_build
        groups = [sessions[start : start + per] for start in range(0, len(sessions), per)]
        builds[product] = tuple(
            SimBuild(
                product=product,
                hashed_id=group[0].build_id,
                name=group[0].build_name,
                sessions=tuple(group),
            )
            for group in groups
        )
    return BrowserStackDataset(builds=builds)


def _generated_session(
    config: BrowserStackSimConfig, product: str, index: int, created: datetime
) -> SimSession:
    rng = random.Random(f"browserstack:{config.seed}:{product}:{index}")
    build_number = index // config.sessions_per_build
    verdict, status, reason = ENDINGS[index % len(ENDINGS)]
    captured = {"logs"}
    if not _every(config.no_video_every, index):
        captured.add("video_url")
    if product == APP_AUTOMATE:
        os_name, os_version, device = DEVICES[index % len(DEVICES)]
        browser, browser_version = None, "app"
        captured.add("appium_logs_url")
        if _every(config.device_logs_every, index):
            captured.add("device_logs_url")
        if _every(config.network_logs_every, index):
            captured.add("network_logs_url")
    else:
        os_name, os_version, browser, browser_version = BROWSERS[index % len(BROWSERS)]
        device = None
        captured.add("selenium_logs_url")
        if not _every(config.no_console_every, index):
            captured.add("browser_console_logs_url")
        if _every(config.network_logs_every, index):
            captured.add("har_logs_url")
    return SimSession(
        product=product,
        hashed_id=hashed_id(config.seed, product, "session", index),
        build_id=hashed_id(config.seed, product, "build", build_number),
        build_name=f"{'mobile' if product == APP_AUTOMATE else 'web'}-build-{build_number}",
        project_name="shop" if build_number % 2 == 0 else "checkout",
        name=f"test_{rng.choice(('login', 'search', 'cart', 'pay'))}_{index}",
        created_at=created.replace(microsecond=0),
        duration=rng.randint(20, 900),
        os=os_name,
        os_version=os_version,
        browser=browser,
        browser_version=browser_version,
        device=device,
        verdict=verdict,
        browserstack_status=status,
        reason=reason,
        captured=frozenset(captured),
    )


def _every(every: int, index: int) -> bool:
    return every > 0 and index % every == 0


def hashed_id(seed: int, *parts: object) -> str:
    return hashlib.sha1(":".join(map(str, (seed, *parts))).encode()).hexdigest()  # noqa: S324


# -- files -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimBody:
    """A body the simulator serves: generated video bytes or a text/JSON log."""

    content_type: str
    size: int
    name: str
    text: bytes | None = None

    def chunks(self) -> Iterator[bytes]:
        if self.text is not None:
            yield self.text
            return
        yield from iter_chunks(self.name, self.size, magic=magic_for(self.content_type))

    def sha256(self) -> str:
        if self.text is not None:
            return hashlib.sha256(self.text).hexdigest()
        return digest(self.name, self.size, magic=magic_for(self.content_type))


def _log_text(config: BrowserStackSimConfig, session: SimSession, field_name: str) -> bytes:
    rng = random.Random(f"browserstack:{config.seed}:{session.hashed_id}:{field_name}")
    moment = session.created_at
    if LOGS[session.product][field_name][1] == "application/json":
        entries: list[JSONDict] = []
        while len(json.dumps(entries)) < config.log_size:
            moment += timedelta(milliseconds=rng.randint(5, 900))
            entries.append(
                {
                    "startedDateTime": moment.isoformat().replace("+00:00", "Z"),
                    "time": rng.randint(1, 800),
                    "request": {"method": "GET", "url": f"https://shop.example/{rng.random():.6f}"},
                    "response": {"status": rng.choice((200, 200, 304, 404))},
                }
            )
        har = {"log": {"version": "1.2", "creator": {"name": "BrowserStack"}, "entries": entries}}
        return json.dumps(har, indent=1).encode()
    lines: list[str] = []
    size = 0
    while size < config.log_size:
        moment += timedelta(milliseconds=rng.randint(5, 900))
        line = f"{moment:%Y-%m-%d %H:%M:%S} [{field_name}] {session.name} step {rng.random():.6f}"
        lines.append(line)
        size += len(line) + 1
    return ("\n".join(lines) + "\n").encode()
