"""The DevRev simulator's dataset: the Dev org's sessions, their recordings and media.

Built once from :class:`DevRevSimConfig`, newest first; the same config gives the same ids,
JSON content and bytes (only creation times follow the clock, unless ``newest_created_ms``
is set). Every filter combination of ``sessions.list`` is a precomputed list, so a listing
is a slice. Which sessions are still recording is the only state; it changes through
:attr:`DevRevData.unfinished`. Nothing here knows of HTTP: :mod:`archiver_sim.devrev`
serves it.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from archiver_sim.base import SessionIds, lookup
from archiver_sim.perfecto_data import SimFile

TYPES = ("mobile", "web")
PLATFORMS = ("android", "ios", "web")
KIB = 1024

JSONDict = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class DevRevSimConfig:
    """The simulated Dev org. Defaults suit a demo: two apps, two dozen sessions.

    Sessions cycle through ``version_keys`` and then through the platforms (android, ios:
    type "mobile"; web: type "web"). ``unfinished``: the newest K sessions are still
    recording: they report no duration and only their first recording until ``finish`` or
    ``finish_all``. ``media_every``: every Nth recording has a video on the files origin
    (0: none). ``retry_after_header`` (None: no header) and ``retry_after_body`` are what the
    periodic 429s announce.
    """

    seed: int = 7
    sessions: int = 24
    version_keys: tuple[str, ...] = ("com.example.shop", "portal-web")
    span: timedelta = timedelta(hours=6)
    newest_created_ms: int | None = None  # None: five minutes before the simulator is built
    token: str = "devrev-sim-token"  # noqa: S105 (the simulator's own)
    dev_org: str = "DEV-sim"
    forbidden: bool = False
    unfinished: int = 0
    media_every: int = 2
    without_recordings_every: int = 0  # every Nth session lists no recording (0: none does)
    media_size: int = 64 * KIB
    media_ttl: timedelta = timedelta(hours=1)
    signed_at_ms: int | None = None  # None: when the simulator is built
    rate_limit: int = 10_000  # requests per window; beyond it, 429 until the window resets
    rate_window_seconds: float = 300.0
    rate_limit_every: int = 0
    retry_after_header: int | None = 0
    retry_after_body: int = 1
    fail_every: int = 0
    unavailable_every: int = 0
    request_log_limit: int = 50_000

    def __post_init__(self) -> None:
        every = (self.media_every, self.without_recordings_every, self.rate_limit_every)
        faults = (self.fail_every, self.unavailable_every)
        if min(self.sessions, self.media_size, *every, *faults, self.rate_limit) < 0:
            raise ValueError("sessions, sizes, counts and rate_limit must be >= 0")
        if not self.version_keys or not all(self.version_keys):
            raise ValueError("version_keys must hold at least one non-empty app id")
        if self.rate_window_seconds <= 0:
            raise ValueError("rate_window_seconds must be > 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class DevRevSession:
    """One simulated session; ``index`` is its position in the newest-first dataset."""

    index: int
    session_id: str
    version_key: str
    type: str
    platform: str
    created_ms: int
    duration_ms: int
    recording_ids: tuple[str, ...]  # tab ids for web sessions
    device: JSONDict = field(compare=False)
    flags: tuple[bool, bool, bool, bool]  # has_exception_occurred, is_anr, is_crash, rage_tap
    rev_user_id: str


class DevRevData:
    """The sessions (newest first), their lists per filter, and which are still recording."""

    def __init__(self, config: DevRevSimConfig, newest_ms: int) -> None:
        self.config = config
        self.sessions: tuple[DevRevSession, ...] = _build_sessions(config, newest_ms)
        self._by_id = {session.session_id: session for session in self.sessions}
        self._lists: dict[tuple[str, str, str | None], list[DevRevSession]] = {}
        for session in self.sessions:
            for platform in (None, session.platform):
                key = (session.version_key, session.type, platform)
                self._lists.setdefault(key, []).append(session)
        self.unfinished: SessionIds[str] = SessionIds(
            s.session_id for s in self.sessions[: config.unfinished]
        )

    def session(self, session_id: str) -> DevRevSession:
        return lookup(self._by_id, session_id, "session")

    def find(self, session_id: str) -> DevRevSession | None:
        return self._by_id.get(session_id)

    def listing(
        self, version_key: str, session_type: str, platform: str | None
    ) -> list[DevRevSession]:
        """The app's sessions of a type (and platform, unless None), newest first."""
        return self._lists.get((version_key, session_type, platform), [])

    def recording_ids(self, session: DevRevSession, recording: bool) -> tuple[str, ...]:
        """The recording (or tab) ids listed: only the first while still recording."""
        return session.recording_ids[:1] if recording else session.recording_ids

    def recording_content(
        self, session: DevRevSession, recording_id: str
    ) -> tuple[list[JSONDict], list[JSONDict]]:
        """The timeline and the logs of one recording (or tab) of the session."""
        if recording_id not in session.recording_ids:
            raise KeyError(f"session {session.session_id!r} has no recording {recording_id!r}")
        number = session.recording_ids.index(recording_id)
        rng = random.Random(f"devrev:{self.config.seed}:{session.session_id}:{recording_id}")
        start = session.created_ms + number * 1_000
        return _timeline(rng, session, start), _logs(rng, session, start)

    def media_files(self, session_id: str) -> tuple[SimFile, ...]:
        """The videos the session's recordings point to (``execution_id`` is the session id)."""
        session = self.session(session_id)
        every = self.config.media_every
        return tuple(
            SimFile(
                execution_id=session_id,
                kind="video",
                filename=f"{recording_id}.mp4",
                size=self.config.media_size,
                content_type="video/mp4",
                delivery="signed",
                body=f"devrev/{self.config.seed}/{session_id}/{recording_id}.mp4",
            )
            for number, recording_id in enumerate(session.recording_ids)
            if every and (session.index + number) % every == 0
        )

    def media_file(self, session_id: str, filename: str) -> SimFile | None:
        if session_id not in self._by_id:
            return None
        return next((f for f in self.media_files(session_id) if f.filename == filename), None)


# -- generation ------------------------------------------------------------------------------

DEVICES: dict[str, tuple[tuple[str, str, str, int, int], ...]] = {
    # (manufacturer, model, os_version, screen_width, screen_height)
    "android": (("samsung", "SM-G991U", "14", 1080, 2340), ("Google", "Pixel 8", "15", 1080, 2400),
                ("Xiaomi", "Redmi Note 12", "13", 1080, 2400)),
    "ios": (("Apple", "iPhone15,2", "17.4", 1179, 2556),
            ("Apple", "iPad13,18", "16.7", 1640, 2360)),
    "web": (("Apple", "Safari 17.4", "macOS 14.4", 1440, 900),
            ("Microsoft", "Chrome 124", "Windows 11", 1920, 1080)),
}  # fmt: skip
NETWORKS = ("wifi", "cellular_5g", "cellular_4g", "ethernet")
SCREENS = ("Home", "Search results", "Product ü/ß", "Checkout", "Settings")
EVENTS = ("screen_view", "tap", "network_request", "scroll")


def _build_sessions(config: DevRevSimConfig, newest_ms: int) -> tuple[DevRevSession, ...]:
    """The dataset, newest first. Creation times strictly decrease with the index."""
    rng = random.Random(f"devrev:{config.seed}")
    span_ms = int(config.span / timedelta(milliseconds=1))
    step = max(1, span_ms // max(1, config.sessions))
    apps = len(config.version_keys)
    sessions = []
    for index in range(config.sessions):
        platform = PLATFORMS[(index // apps) % len(PLATFORMS)]
        web_session = platform == "web"
        maker, model, os_version, width, height = rng.choice(DEVICES[platform])
        device = {
            "app_version": f"{2 + index % 2}.{rng.randint(0, 9)}.{rng.randint(0, 20)}",
            "manufacturer": maker,
            "model": model,
            "network_type": "ethernet" if web_session else rng.choice(NETWORKS[:3]),
            "os_version": os_version,
            "plug_sdk_version": f"1.{rng.randint(2, 6)}.{rng.randint(0, 9)}",
            "screen_height": height,
            "screen_width": width,
            "sdk_version": "web-1.8.0" if web_session else f"{rng.randint(30, 35)}",
        }
        crash = index % 5 == 3
        sessions.append(
            DevRevSession(
                index=index,
                session_id=_uuid(config.seed, "session", index),
                version_key=config.version_keys[index % apps],
                type="web" if web_session else "mobile",
                platform=platform,
                created_ms=newest_ms - index * step - rng.randrange(step),
                duration_ms=rng.randint(5_000, 900_000),
                recording_ids=_recording_ids(config, rng, index, web_session),
                device=device,
                flags=(
                    crash or index % 6 == 1,
                    platform == "android" and index % 11 == 5,
                    crash,
                    index % 4 == 2,
                ),
                rev_user_id=f"don:identity:dvrv-us-1:devo/{config.seed}:revu/"
                + hex_id(config.seed, "user", index % 9, 4),
            )
        )
    return tuple(sessions)


def _recording_ids(
    config: DevRevSimConfig, rng: random.Random, index: int, web_session: bool
) -> tuple[str, ...]:
    count = rng.choice((1, 1, 2, 3))  # drawn for every session: the seed's dataset stays
    every = config.without_recordings_every
    if every and index % every == every - 1:
        return ()
    prefix = "tab-" if web_session else ""
    return tuple(prefix + _uuid(config.seed, f"rec{index}", n) for n in range(count))


def _timeline(rng: random.Random, session: DevRevSession, start_ms: int) -> list[JSONDict]:
    moment, events = start_ms, []
    for number in range(rng.randint(4, 12)):
        event: JSONDict = {
            "timestamp": rfc3339(moment),
            "type": "screen_view" if number == 0 else rng.choice(EVENTS),
            "screen_name": rng.choice(SCREENS),
        }
        if event["type"] == "network_request":
            event |= {"url": "https://shop.example.com/api/cart", "status_code": 200}
        events.append(event)
        moment += rng.randint(50, 20_000)
    _, anr, crash, rage = session.flags
    for present, kind in ((rage, "rage_tap"), (anr, "anr"), (crash, "crash")):
        if present:
            events.append({"timestamp": rfc3339(moment), "type": kind, "screen_name": "Checkout"})
            moment += 1
    return events


def _logs(rng: random.Random, session: DevRevSession, start_ms: int) -> list[JSONDict]:
    levels = ("debug", "info", "info", "warn")
    logs = [
        {
            "timestamp": rfc3339(start_ms + n * rng.randint(10, 5_000)),
            "level": rng.choice(levels),
            "message": f"{session.platform}: step {n} done",
        }
        for n in range(rng.randint(1, 5))
    ]
    if session.flags[0]:
        logs.append({"timestamp": rfc3339(start_ms), "level": "error", "message": "Exception"})
    return logs


def hex_id(seed: int, kind: str, number: int, size: int) -> str:
    return hashlib.blake2b(f"{seed}:{kind}:{number}".encode(), digest_size=size).hexdigest()


def _uuid(seed: int, kind: str, number: int) -> str:
    h = hex_id(seed, kind, number, 16)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def rfc3339(ms: int) -> str:
    """``2023-01-01T12:00:00.000Z``, as DevRev writes times."""
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"
