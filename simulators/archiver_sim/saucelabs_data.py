"""The Sauce Labs simulator's dataset: real-device and virtual jobs, their assets, their state.

Built once from :class:`SauceLabsSimConfig`, newest first (:class:`SauceLabsDataset`, the
immutable tables). Capabilities decide what exists, as on the real service:
``recordVideo``, ``recordScreenshots`` and ``recordLogs`` false drop the video, the
screenshots and ``log.json``; ``extendedDebugging`` adds ``network.har`` to a virtual job,
network capture adds it to a real-device job; only Appium real-device jobs have an Appium
log. The state is which jobs are not done yet (:class:`SauceLabsData`). Nothing here knows
of HTTP: :mod:`archiver_sim.saucelabs` serves it.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from archiver_sim.base import SessionIds, lookup
from archiver_sim.perfecto_data import SimFile
from archiver_sim.testobject_data import TextFile

REAL_DEVICES = "rdc"
VIRTUAL = "vdc"
CLOUDS = (REAL_DEVICES, VIRTUAL)
KIB = 1024

JSONDict = dict[str, Any]
JobState = Literal["running", "uploading", "done"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SauceLabsSimConfig:
    """The simulated account. Defaults suit a demo: sixteen jobs over ten days, real-device
    and virtual in turn (``clouds`` is cycled, newest first).

    Jobs start over ``span`` up to ``newest_start`` (UTC; None: an hour before the simulator
    is built). ``access_key`` is the basic-auth password.
    """

    seed: int = 7
    jobs: int = 16
    clouds: tuple[str, ...] = CLOUDS
    span: timedelta = timedelta(days=10)
    newest_start: datetime | None = None
    username: str = "sim.user"
    access_key: str = "sauce-sim-access-key"
    unfinished: int = 0
    unlisted_assets: int = 0
    screenshots_per_job: int = 2
    video_size: int = 96 * KIB
    screenshot_size: int = 12 * KIB
    log_size: int = 6 * KIB
    har_size: int = 16 * KIB
    rate_limit_every: int = 0
    retry_after: int = 1
    request_log_limit: int = 50_000

    def __post_init__(self) -> None:
        counts = (
            self.jobs,
            self.unfinished,
            self.unlisted_assets,
            self.screenshots_per_job,
            self.video_size,
            self.screenshot_size,
            self.log_size,
            self.har_size,
            self.rate_limit_every,
            self.retry_after,
        )
        if min(counts) < 0:
            raise ValueError("jobs, counts, sizes, rate_limit_every, retry_after must be >= 0")
        if not self.clouds or not set(self.clouds) <= set(CLOUDS):
            raise ValueError(f"clouds must be a non-empty sequence of {', '.join(CLOUDS)}")
        if not self.username or ":" in self.username or "/" in self.username:
            raise ValueError("username must be non-empty, without ':' or '/'")
        if self.span <= timedelta(0):
            raise ValueError("span must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class SimJob:
    """One simulated job; ``index`` is its position, newest first (times in epoch seconds)."""

    index: int
    id: str
    cloud: str
    name: str
    start: int
    duration_s: int
    passed: bool
    platform: str  # "Android", "iOS" or a desktop OS
    os_version: str
    device: str  # a device name, or the browser of a desktop job
    automation_backend: str
    record_video: bool
    record_screenshots: bool
    record_logs: bool
    network_capture: bool  # real devices: network capture; virtual: extendedDebugging
    screenshots: tuple[str, ...]

    @property
    def end(self) -> int:
        return self.start + self.duration_s


@dataclass(frozen=True, slots=True, kw_only=True)
class SimAsset:
    """One file of a job: the name the API knows it by, and whether the API answers it with
    a redirect to the files origin (big files) or serves it itself (logs)."""

    name: str
    file: SimFile
    redirected: bool


@dataclass(frozen=True, slots=True)
class SauceLabsDataset:
    """Every job and every file, newest first; built once, read by the handlers."""

    jobs: tuple[SimJob, ...]
    assets: Mapping[str, Mapping[str, SimAsset]]
    by_id: Mapping[str, SimJob]

    @classmethod
    def build(cls, config: SauceLabsSimConfig, newest: int) -> SauceLabsDataset:
        jobs = _build_jobs(config, newest)
        assets = {job.id: _build_assets(config, job) for job in jobs}
        return cls(jobs, assets, {job.id: job for job in jobs})

    def of_cloud(self, cloud: str) -> tuple[SimJob, ...]:
        return tuple(job for job in self.jobs if job.cloud == cloud)


class SauceLabsData:
    """The jobs (:attr:`dataset`) and which are not done yet, thread-safe.

    :attr:`unfinished` holds every job that is not done: still running, or ended with its
    assets not uploaded yet; :attr:`running` those of them that have not ended.
    """

    def __init__(self, config: SauceLabsSimConfig, newest: int) -> None:
        self.config = config
        self.dataset = SauceLabsDataset.build(config, newest)
        jobs = self.dataset.jobs
        waiting = config.unfinished + config.unlisted_assets
        self.unfinished: SessionIds[str] = SessionIds(job.id for job in jobs[:waiting])
        self.running: SessionIds[str] = SessionIds(job.id for job in jobs[: config.unfinished])

    def session(self, job_id: str) -> SimJob:
        return lookup(self.dataset.by_id, job_id, "job")

    def state(self, job_id: str) -> JobState:
        self.session(job_id)
        if job_id in self.running:
            return "running"
        return "uploading" if job_id in self.unfinished else "done"

    def files(self, job_id: str) -> tuple[SimFile, ...]:
        """Every file of the job (once done), in no particular order."""
        return tuple(asset.file for asset in self.dataset.assets[job_id].values())

    def asset_list(self, job_id: str) -> JSONDict:
        """The documented asset list of a virtual job."""
        job = self.session(job_id)
        names = self.dataset.assets[job_id]
        listed: JSONDict = {}
        if "video.mp4" in names:
            listed.update({"video": "video.mp4", "video.mp4": "video.mp4"})
        if "log.json" in names:
            listed["sauce-log"] = "log.json"
        listed["selenium-log"] = "selenium-server.log"
        if "network.har" in names:
            listed["network.har"] = "network.har"
        listed["screenshots"] = list(job.screenshots)
        return listed


# -- generation ------------------------------------------------------------------------------

DEVICES = (
    ("Android", "13", "Samsung Galaxy S23"),
    ("iOS", "17.2", "iPhone 15"),
    ("Android", "12", "Google Pixel 6"),
    ("iOS", "16.4", "iPad Pro 12.9 2022"),
)
DESKTOPS = (
    ("Windows 11", "chrome", "120"),
    ("macOS 13", "safari", "16"),
    ("Windows 10", "firefox", "121"),
    ("Android", "Android GoogleAPI Emulator", "13.0"),
    ("iOS", "iPhone Simulator", "17.0"),
)
RDC_BACKENDS = ("APPIUM", "APPIUM", "ESPRESSO", "XCUITEST")


def _build_jobs(config: SauceLabsSimConfig, newest: int) -> tuple[SimJob, ...]:
    rng = random.Random(f"saucelabs:{config.seed}")
    step = max(1, int(config.span.total_seconds()) // max(1, config.jobs))
    waiting = config.unfinished + config.unlisted_assets
    jobs = []
    for index in range(config.jobs):
        cloud = config.clouds[index % len(config.clouds)]
        jitter = rng.randrange(step) if step > 1 and index > 0 else 0
        real = cloud == REAL_DEVICES
        if real:
            platform, os_version, device = DEVICES[index % len(DEVICES)]
            backend = RDC_BACKENDS[index % len(RDC_BACKENDS)]
        else:
            platform, device, os_version = DESKTOPS[index % len(DESKTOPS)]
            backend = "webdriver"
        # Jobs still waiting for their assets record video: that is how a client tells.
        record_video = index < waiting or index % 7 != 5
        record_screenshots = index % 5 != 3
        jobs.append(
            SimJob(
                index=index,
                id=hashlib.blake2b(
                    f"{config.seed}:job:{index}".encode(), digest_size=16
                ).hexdigest(),
                cloud=cloud,
                name=f"{'checkout' if index % 2 else 'login'} flow #{config.jobs - index}",
                start=newest - index * step - jitter,
                duration_s=rng.randint(20, 900),
                passed=rng.random() > 0.25,
                platform=platform,
                os_version=os_version,
                device=device,
                automation_backend=backend,
                record_video=record_video,
                record_screenshots=record_screenshots,
                record_logs=real or index % 6 != 3,
                network_capture=index % 3 == 0,
                screenshots=tuple(
                    f"{number:04d}screenshot.png" for number in range(config.screenshots_per_job)
                )
                if record_screenshots
                else (),
            )
        )
    return tuple(jobs)


def _build_assets(config: SauceLabsSimConfig, job: SimJob) -> dict[str, SimAsset]:
    body = f"saucelabs/{config.seed}/{job.id}"
    found: list[SimAsset] = []

    def generated(name: str, size: int, content_type: str, redirected: bool = True) -> None:
        file = SimFile(
            execution_id=job.id,
            kind=name,
            filename=name,
            size=size,
            content_type=content_type,
            delivery="redirect" if redirected else "secure",
            body=f"{body}/{name}",
        )
        found.append(SimAsset(name=name, file=file, redirected=redirected))

    def text(name: str, content: bytes, content_type: str = "text/plain") -> None:
        file = TextFile(
            execution_id=job.id,
            kind=name,
            filename=name,
            size=len(content),
            content_type=content_type,
            delivery="secure",
            body=f"{body}/{name}",
            text=content,
        )
        found.append(SimAsset(name=name, file=file, redirected=False))

    if job.record_video:
        generated("video.mp4", config.video_size, "video/mp4")
    if job.network_capture:
        generated("network.har", config.har_size, "application/json")
    if job.cloud == REAL_DEVICES:
        text("deviceLogs", _log_text(config, job, "device"))
        if job.automation_backend == "APPIUM":
            text("appiumLogs", _log_text(config, job, "appium"))
        if job.screenshots:
            generated(
                "screenshots.zip", config.screenshot_size * len(job.screenshots), "application/zip"
            )
    else:
        if job.record_logs:
            text("log.json", _sauce_log(job), "application/json")
        text("selenium-server.log", _log_text(config, job, "selenium"))
        for shot in job.screenshots:
            generated(shot, config.screenshot_size, "image/png")
    return {asset.name: asset for asset in found}


def _log_text(config: SauceLabsSimConfig, job: SimJob, kind: str) -> bytes:
    """A deterministic log of about ``log_size`` bytes."""
    rng = random.Random(f"saucelabs:{config.seed}:log:{job.id}:{kind}")
    moment = datetime.fromtimestamp(job.start, UTC)
    lines: list[str] = []
    if kind == "appium":
        capabilities = {
            "platformName": job.platform,
            "appium:deviceName": job.device,
            "sauce:options": {"username": config.username, "accessKey": config.access_key},
        }
        lines.append(f"{moment:%Y-%m-%d %H:%M:%S} [Appium] Welcome to Appium v2.2.1")
        lines.append(
            f"{moment:%Y-%m-%d %H:%M:%S} [HTTP] --> POST /wd/hub/session "
            + json.dumps({"capabilities": {"alwaysMatch": capabilities}})
        )
    size = sum(len(line) + 1 for line in lines)
    while size < config.log_size:
        moment += timedelta(milliseconds=rng.randint(5, 900))
        tag = rng.choice(("ActivityManager", "WindowManager", "SimApp", "WebDriver"))
        line = f"{moment:%Y-%m-%d %H:%M:%S.%f} {kind} {tag}: event {rng.random():.6f}"
        lines.append(line)
        size += len(line) + 1
    return ("\n".join(lines) + "\n").encode()


def _sauce_log(job: SimJob) -> bytes:
    commands = [
        {"method": "POST", "path": "session", "between_commands": None, "duration": 1.2,
         "start_time": job.start, "in_video_timeline": 0.0},
        {"method": "GET", "path": f"session/{job.id}/title", "between_commands": 0.3,
         "duration": 0.1, "start_time": job.start + 2, "in_video_timeline": 2.0},
    ]  # fmt: skip
    return (json.dumps(commands, indent=1) + "\n").encode()
