"""The Perfecto simulator's dataset: the tenant's executions and the files they link to.

Built once from :class:`PerfectoSimConfig`, newest first, with the start times kept
ascending beside them for :mod:`bisect`, so a time window is found in O(log n) with 10 or
100,000 executions. The same config gives the same ids, file names and bytes (only start
times follow the clock, unless ``newest_start_ms`` is set). The state is which executions
are still processing (:attr:`PerfectoData.unfinished`, or finished early in
:attr:`PerfectoData.finished`) and how often each PDF report was asked for. Nothing here
knows of HTTP: :mod:`archiver_sim.perfecto` serves it.
"""

from __future__ import annotations

import hashlib
import random
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Literal

from archiver_sim import content
from archiver_sim.base import SessionIds, lookup

KIB = 1024

Delivery = Literal["signed", "secure", "redirect"]


@dataclass(frozen=True, slots=True, kw_only=True)
class UniformLayout:
    """Every execution links to the same files: for benchmarks that need exact counts."""

    videos: int = 1
    artifact_types: tuple[str, ...] = ()
    screenshots: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PerfectoSimConfig:
    """The simulated tenant. Defaults suit a demo: a dozen executions, small files.

    ``unfinished``: the first K executions (newest first) stay PROCESSING until a test
    calls ``finish`` or ``finish_all``. ``latency_seconds`` delays every answer, as a vendor
    far away does. With ``body_dir`` the bodies are written to files once and sent with
    ``sendfile``: a vendor whose work costs the client's machine nothing, for benchmarks.
    ``secure_types`` are served from the API origin with the token; ``redirect_types``
    answer there with a 302 to the artifact origin.
    """

    seed: int = 7
    executions: int = 12
    span: timedelta = timedelta(hours=6)
    newest_start_ms: int | None = None  # None: five minutes before the simulator is built
    token: str = "perfecto-sim-token"  # noqa: S105 (the simulator's own)
    user_id: str = "reporting@example.com"
    tenant_id: str = "sim-tenant"
    page_size: int = 500
    max_window: timedelta = timedelta(days=31)
    video_size: int = 256 * KIB
    artifact_size: int = 64 * KIB
    screenshot_size: int = 16 * KIB
    pdf_size: int = 32 * KIB
    pdf_not_ready_requests: int = 1
    processing_seconds: float = 0.0
    unfinished: int = 0
    secure_types: frozenset[str] = frozenset({"DEVICE_LOGS", "expected_image"})
    redirect_types: frozenset[str] = frozenset({"VITALS"})
    uniform: UniformLayout | None = None  # None: a varied mix, as in real tenants
    latency_seconds: float = 0.0  # added to every request on both origins
    body_dir: str | None = None  # serve bodies from files written there (see materialize)
    request_log_limit: int = 50_000  # oldest entries drop first; ~1 KiB each

    def __post_init__(self) -> None:
        sizes = (self.video_size, self.artifact_size, self.screenshot_size, self.pdf_size)
        if self.executions < 0 or self.page_size < 1 or min(sizes) < 0:
            raise ValueError("executions and sizes must be >= 0, page_size >= 1")
        if self.latency_seconds < 0:
            raise ValueError("latency_seconds must be >= 0")
        unknown = set(self.uniform.artifact_types) - set(ARTIFACT_FILES) if self.uniform else set()
        if unknown:
            raise ValueError(f"unknown artifact types {sorted(unknown)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SimExecution:
    """One simulated test execution; ``index`` is its position in the newest-first listing."""

    index: int
    id: str
    external_id: str
    name: str
    owner: str
    start_ms: int
    end_ms: int
    status: str
    platform: int
    tags: tuple[str, ...]
    job: tuple[str, int] | None
    project: tuple[str, str] | None
    videos: int
    artifact_types: tuple[str, ...]
    screenshots: tuple[tuple[str, ...], ...]  # file names, one tuple per command
    visual_checks: tuple[VisualCheck, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class VisualCheck:
    """A command comparing a screen with a baseline: its expected and its result image."""

    command: int  # the command's position in the commands report
    expected: str  # file names; two checks may share one baseline
    result: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SimFile:
    """A downloadable file; its bytes come from :mod:`archiver_sim.content` by ``body``."""

    execution_id: str
    kind: str  # "video", "screenshot", "expected_image", "result_image", "pdf", or the
    # artifact type ("DEVICE_LOGS"...)
    filename: str
    size: int
    content_type: str
    delivery: Delivery
    body: str

    def chunks(self, chunk_size: int = content.DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        return content.iter_chunks(self.body, self.size, chunk_size, magic=self._magic())

    def digest(self) -> str:
        return content.digest(self.body, self.size, magic=self._magic())

    def _magic(self) -> bytes:
        return content.magic_for(self.content_type)


class PerfectoData:
    """The executions (newest first), their files, and which are still processing."""

    def __init__(self, config: PerfectoSimConfig, newest_ms: int) -> None:
        self.config = config
        self.executions: tuple[SimExecution, ...] = _build_executions(config, newest_ms)
        self._by_id = {execution.id: execution for execution in self.executions}
        self._by_external_id: dict[str, list[SimExecution]] = {}
        for execution in self.executions:
            self._by_external_id.setdefault(execution.external_id, []).append(execution)
        self._starts_ascending = [execution.start_ms for execution in reversed(self.executions)]
        self.unfinished: SessionIds[str] = SessionIds(
            execution.id for execution in self.executions[: config.unfinished]
        )
        self.finished: SessionIds[str] = SessionIds()  # finished before processing_seconds
        self._pdf_requests: dict[str, int] = {}
        self._lock = threading.Lock()

    # -- lookups -----------------------------------------------------------------------

    def session(self, execution_id: str) -> SimExecution:
        return lookup(self._by_id, execution_id, "execution")

    def find(self, execution_id: str) -> SimExecution | None:
        return self._by_id.get(execution_id)

    def window(self, start_ms: int, end_ms: int) -> tuple[int, int]:
        """The newest-first index range ``[low, high)`` of executions started in the window."""
        count = len(self.executions)
        low = bisect_left(self._starts_ascending, start_ms)
        high = bisect_right(self._starts_ascending, end_ms)
        return count - high, count - low

    def with_external_ids(
        self, external_ids: Collection[str], low: int, high: int
    ) -> list[SimExecution]:
        """The executions of those driver sessions within ``[low, high)``, newest first."""
        found = (ex for value in external_ids for ex in self._by_external_id.get(value, []))
        return sorted(
            {ex.index: ex for ex in found if low <= ex.index < high}.values(),
            key=lambda ex: ex.index,
        )

    # -- PDF reports ---------------------------------------------------------------------

    def count_pdf_request(self, execution_id: str) -> int:
        """Count one more request for the execution's PDF; returns how many came before."""
        with self._lock:
            earlier = self._pdf_requests.get(execution_id, 0)
            self._pdf_requests[execution_id] = earlier + 1
        return earlier

    def pdf_requests(self, execution_id: str) -> int:
        with self._lock:
            return self._pdf_requests.get(execution_id, 0)

    # -- files ---------------------------------------------------------------------------

    def files(self, execution_id: str) -> tuple[SimFile, ...]:
        """Every file a complete execution links to, each once.

        Videos, artifacts, screenshots, and the expected and result images of visual checks.
        """
        execution = self.session(execution_id)
        return (
            *self.videos(execution),
            *self.artifacts(execution),
            *self._shots(execution),
            *self._visual_images(execution),
        )

    def file(self, execution_id: str, filename: str) -> SimFile | None:
        if execution_id not in self._by_id:
            return None
        return next((file for file in self.files(execution_id) if file.filename == filename), None)

    def videos(self, execution: SimExecution) -> list[SimFile]:
        return [
            self._new_file(
                execution, "video", f"video-{n}.mp4", self.config.video_size, "video/mp4"
            )
            for n in range(execution.videos)
        ]

    def artifacts(self, execution: SimExecution) -> list[SimFile]:
        files = []
        for kind in execution.artifact_types:
            filename, content_type = ARTIFACT_FILES[kind]
            if kind == "VITALS" and execution.index % 2:
                filename, content_type = "vitals.csv", "text/csv"
            filename = filename.format(owner=execution.owner)
            size = self.config.artifact_size
            files.append(self._new_file(execution, kind, filename, size, content_type))
        return files

    def shot(self, execution: SimExecution, filename: str) -> SimFile:
        content_type = "image/png" if filename.endswith(".png") else "image/jpeg"
        size = self.config.screenshot_size
        return self._new_file(execution, "screenshot", filename, size, content_type)

    def expected_image(self, execution: SimExecution, check: VisualCheck) -> SimFile:
        size = self.config.screenshot_size
        return self._new_file(execution, "expected_image", check.expected, size, "image/png")

    def result_image(self, execution: SimExecution, check: VisualCheck) -> SimFile:
        size = self.config.screenshot_size
        return self._new_file(execution, "result_image", check.result, size, "image/jpeg")

    def pdf_file(self, execution: SimExecution) -> SimFile:
        size = self.config.pdf_size
        file = self._new_file(execution, "pdf", "report.pdf", size, "application/pdf")
        return replace(file, delivery="secure")

    def _shots(self, execution: SimExecution) -> list[SimFile]:
        return [self.shot(execution, name) for shots in execution.screenshots for name in shots]

    def _visual_images(self, execution: SimExecution) -> list[SimFile]:
        files: dict[str, SimFile] = {}
        for check in execution.visual_checks:
            for file in (
                self.expected_image(execution, check),
                self.result_image(execution, check),
            ):
                files.setdefault(file.filename, file)
        return list(files.values())

    def _delivery(self, kind: str) -> Delivery:
        if kind in self.config.redirect_types:
            return "redirect"
        return "secure" if kind in self.config.secure_types else "signed"

    def _new_file(
        self, execution: SimExecution, kind: str, filename: str, size: int, content_type: str
    ) -> SimFile:
        return SimFile(
            execution_id=execution.id,
            kind=kind,
            filename=filename,
            size=size,
            content_type=content_type,
            delivery=self._delivery(kind),
            body=f"perfecto/{self.config.seed}/{execution.id}/{filename}",
        )


# -- generation ------------------------------------------------------------------------------

JSONDict = dict[str, Any]

NAMES = (
    "com.example.playground",
    "Login: valid credentials",
    "Checkout / pay with saved card",
    "Search ../results pagination",
    "Überprüfung der Anmeldung (ログイン)",
    "CHECK",
    "Profile: edit name & avatar",
)
OWNERS = ("instrumentedtest@devtools.com", "saes@example.com", "qa.lead@example.com")
TAGS = ("regression", "smoke", "nightly", "Native", "Java", "Sample")
JOBS = ("nightly-regression", "release pipeline")
COMMAND_NAMES = (
    "Open application",
    "Click element",
    "Set text",
    "Swipe",
    "Take screenshot",
    "Wait for element",
    "Check text",
)
ARTIFACT_FILES = {
    "DEVICE_LOGS": ("{owner}_device-logs.zip", "application/zip"),
    "NETWORK": ("network.pcap", "application/vnd.tcpdump.pcap"),
    "VITALS": ("vitals.json", "application/json"),
    "APP_CRASH_REPORT": ("crash-report.txt", "text/plain"),
    "HAR_CAPTURE": ("capture.har", "application/octet-stream"),
}
# (deviceId, os, osVersion, screenResolution, location, mobile or browser details)
PLATFORMS: tuple[tuple[str, str, str, str, str, tuple[str, ...]], ...] = (
    ("R58M42ABCDE", "ANDROID", "13", "1080*2340", "US-BOS",
     ("Samsung", "Galaxy S21 SM-G991U", "ATT-US", "Central-vod",
      "o1quew-user 13 TP1A release-keys", "AT&T-United States of America")),
    ("00008110-001A2B3C4D5E6F7A", "IOS", "17.4", "1170*2532", "NA-US-BOS",
     ("Apple", "iPhone-14", "", "", "21E219", "Verizon")),
    ("1_2548D-CA0F-420F-B013-B3456E6B64", "WINDOWS", "11", "1920x1080", "US East",
     ("CHROME", "124")),
    ("2_8C1F-4D2E-9A7B-MACOS", "MAC", "macOS Sonoma", "1440x900", "EU Frankfurt",
     ("SAFARI", "17")),
)  # fmt: skip


def platform_json(number: int) -> JSONDict:
    device_id, os_name, version, resolution, location, details = PLATFORMS[number]
    platform: JSONDict = {
        "deviceId": device_id,
        "deviceType": "MOBILE" if len(details) > 2 else "DESKTOP",
        "os": os_name,
        "osVersion": version,
        "screenResolution": resolution,
        "location": location,
    }
    if len(details) > 2:
        keys = ("manufacturer", "model", "distributor", "description", "firmware", "operator")
        platform["mobileInfo"] = dict(zip(keys, details, strict=True))
        platform["selectionCriteria"] = {"platformName": os_name.title()}
    else:
        platform["browserInfo"] = {"browserType": details[0], "browserVersion": details[1]}
        platform["selectionCriteria"] = {
            "platformName": os_name.title(),
            "browserName": details[0].title(),
            "resolution": resolution,
            "location": location,
        }
    platform["customFields"] = []
    return platform


def _build_executions(config: PerfectoSimConfig, newest_ms: int) -> tuple[SimExecution, ...]:
    """The dataset, newest first. Start times strictly decrease with the index."""
    rng = random.Random(f"perfecto:{config.seed}")
    span_ms = int(config.span / timedelta(milliseconds=1))
    step = max(1, span_ms // max(1, config.executions))
    executions = []
    group, left_in_group, external_id = 0, 0, ""
    for index in range(config.executions):
        if left_in_group == 0:  # one driver session runs one to three tests
            group, left_in_group = group + 1, rng.choice((1, 1, 2, 3))
            external_id = f"{OWNERS[group % 3]}_RemoteWebDriver_{_hex(config, 'driver', group, 5)}"
        left_in_group -= 1
        start_ms = newest_ms - index * step - rng.randrange(step)
        executions.append(_execution(config, rng, index, group, external_id, start_ms))
    return tuple(executions)


def _execution(
    config: PerfectoSimConfig,
    rng: random.Random,
    index: int,
    group: int,
    external_id: str,
    start_ms: int,
) -> SimExecution:
    status = "FAILED" if index % 3 == 1 else "BLOCKED" if index % 11 == 10 else "PASSED"
    videos = 2 if index % 4 == 0 else 1
    kinds = (
        ("DEVICE_LOGS", index % 4 != 3),
        ("NETWORK", index % 2 == 0),
        ("VITALS", True),
        ("APP_CRASH_REPORT", status == "FAILED"),
        ("HAR_CAPTURE", index % 5 == 2),
    )
    artifact_types = tuple(kind for kind, present in kinds if present)
    # Drawn in this order (end, tags, screenshots) so a seed keeps giving the same dataset.
    end_ms = start_ms + rng.randint(5_000, 300_000)
    tags = tuple(rng.sample(TAGS, rng.randint(1, 3)))
    screenshots = _screenshot_plan(rng)
    visual_checks = _visual_plan(config, index, len(screenshots))
    if config.uniform is not None:
        videos = config.uniform.videos
        artifact_types = config.uniform.artifact_types
        screenshots = tuple(
            (f"screenshots/{number:03d}-0.png",) for number in range(config.uniform.screenshots)
        ) or ((),)
        visual_checks = ()
    return SimExecution(
        index=index,
        id=_hex(config, "execution", index, 12),
        external_id=external_id,
        name=NAMES[index % len(NAMES)],
        owner=OWNERS[group % len(OWNERS)],
        start_ms=start_ms,
        end_ms=end_ms,
        status=status,
        platform=index % len(PLATFORMS),
        tags=tags,
        job=(JOBS[group % 2], 100 + group) if group % 3 else None,
        project=("Sample Script", f"1.{group % 4}") if index % 4 != 3 else None,
        videos=videos,
        artifact_types=artifact_types,
        screenshots=screenshots,
        visual_checks=visual_checks,
    )


def _screenshot_plan(rng: random.Random) -> tuple[tuple[str, ...], ...]:
    """Screenshot file names per command; the first command always has one."""
    plan = []
    for number in range(rng.randint(3, 8)):
        count = 1 if number == 0 else rng.choice((0, 0, 1, 2))
        plan.append(
            tuple(
                f"screenshots/{number:03d}-{shot}.{'png' if (number + shot) % 2 == 0 else 'jpeg'}"
                for shot in range(count)
            )
        )
    return tuple(plan)


def _visual_plan(config: PerfectoSimConfig, index: int, commands: int) -> tuple[VisualCheck, ...]:
    """Visual checks on the second and the last command, now and then one between.

    The last check compares against the first one's baseline: one URL, linked twice.
    Drawn from a generator of its own, so the rest of the dataset stays as it was.
    """
    rng = random.Random(f"perfecto:{config.seed}:{index}:visual")
    numbers = [1, *(n for n in range(2, commands - 1) if rng.random() < 1 / 3), commands - 1]
    checks = [
        VisualCheck(
            command=number,
            expected=f"visual/baseline-{number:03d}.png",
            result=f"visual/capture-{number:03d}.jpeg",
        )
        for number in sorted(set(numbers))
        if 0 < number < commands
    ]
    if len(checks) > 1:
        checks[-1] = replace(checks[-1], expected=checks[0].expected)
    return tuple(checks)


def _hex(config: PerfectoSimConfig, kind: str, number: int, size: int) -> str:
    return hashlib.blake2b(f"{config.seed}:{kind}:{number}".encode(), digest_size=size).hexdigest()
