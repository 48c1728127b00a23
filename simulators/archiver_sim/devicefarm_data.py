"""The Device Farm simulator's dataset: projects, runs, jobs, suites, tests and artifacts.

Built once from :class:`DeviceFarmSimConfig` (:class:`DeviceFarmDataset`, the immutable
tables, with every item by ARN), as Device Farm's reports lay it out: project → run → job
→ suite → test, and per test its files, logs and screenshots. Runs are newest first. The
state is which runs are still running (:attr:`DeviceFarmData.unfinished`). Nothing here
knows of HTTP: :mod:`archiver_sim.devicefarm` serves it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from archiver_sim import content
from archiver_sim.base import SessionIds, lookup

CATEGORIES = ("FILE", "LOG", "SCREENSHOT")
FILES_PREFIX = "/devicefarm-artifacts"
DEVICES = (
    ("Google Pixel 7", "Google", "ANDROID", "13"),
    ("Apple iPhone 14", "Apple", "IOS", "16.4"),
    ("Samsung Galaxy S23", "Samsung", "ANDROID", "14"),
)

JSONDict = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceFarmSimConfig:
    """The simulated account. Defaults suit a demo: two projects, six runs of two jobs.

    Runs are spread over the projects in turn, created ``run_spacing_s`` apart up to
    ``newest_created_s`` (None: 30 minutes before the simulator is built). Every job has a
    setup suite, a tests suite of ``tests_per_job`` tests and a teardown suite, as Device
    Farm's reports show them.
    """

    seed: int = 23
    account: str = "123456789012"
    region: str = "us-west-2"
    projects: int = 2
    runs: int = 6
    unfinished: int = 0
    jobs_per_run: int = 2
    tests_per_job: int = 2
    screenshots_per_test: int = 2
    video_disabled_every: int = 3
    page_size: int = 3
    run_spacing_s: int = 3600
    newest_created_s: int | None = None
    file_size: int = 24 * 1024
    video_size: int = 256 * 1024
    url_lifetime_s: int = 3600
    expired_issues: int = 0
    throttle_every: int = 0
    access_key_id: str = "AKIASIMULATEDDEVFARM"
    secret_access_key: str = "devicefarm-sim-secret-key"  # noqa: S105 (the simulator's own)
    request_log_limit: int = 50_000

    def __post_init__(self) -> None:
        counts = (self.runs, self.unfinished, self.expired_issues, self.throttle_every)
        if min(counts) < 0 or self.unfinished > self.runs:
            raise ValueError("runs, unfinished, expired_issues, throttle_every must be >= 0")
        if min(self.projects, self.jobs_per_run, self.tests_per_job, self.page_size) < 1:
            raise ValueError("projects, jobs_per_run, tests_per_job, page_size must be >= 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class SimArtifact:
    arn: str
    name: str
    type: str
    category: str
    extension: str
    size: int
    content_type: str
    path: str  # on the files origin

    def chunks(self) -> Iterator[bytes]:
        return content.iter_chunks(self.path, self.size, magic=self._magic())

    def digest(self) -> str:
        return content.digest(self.path, self.size, magic=self._magic())

    def _magic(self) -> bytes:
        return content.magic_for(self.content_type)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimTest:
    arn: str
    name: str
    artifacts: tuple[SimArtifact, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SimSuite:
    arn: str
    name: str
    tests: tuple[SimTest, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SimJob:
    arn: str
    device: tuple[str, str, str, str]
    video_capture: bool
    suites: tuple[SimSuite, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SimRun:
    arn: str
    project_arn: str
    name: str
    platform: str
    created: int
    jobs: tuple[SimJob, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SimProject:
    arn: str
    name: str
    created: int


@dataclass(frozen=True, slots=True)
class DeviceFarmDataset:
    """Every project, run (newest first), job, suite, test and artifact, by ARN."""

    projects: tuple[SimProject, ...]
    runs: tuple[SimRun, ...]
    by_arn: Mapping[str, Any]
    by_path: Mapping[str, SimArtifact]
    run_of: Mapping[str, SimRun]  # the run each job, suite and test belongs to

    @classmethod
    def build(cls, config: DeviceFarmSimConfig, newest_s: int) -> DeviceFarmDataset:
        ids = _Ids(config.seed)
        base = f"arn:aws:devicefarm:{config.region}:{config.account}"
        projects = tuple(
            SimProject(
                arn=f"{base}:project:{ids.next()}",
                name=f"Shop app {number + 1}",
                created=newest_s - 90 * 86400 + number,
            )
            for number in range(config.projects)
        )
        runs = []
        for index in range(config.runs):  # index 0 is the newest
            project = projects[index % len(projects)]
            project_id = project.arn.rsplit(":", 1)[1]
            run_path = f"{project_id}/{ids.next()}"
            jobs = tuple(
                _job(config, base, f"{run_path}/{number:05d}", index * 7 + number)
                for number in range(config.jobs_per_run)
            )
            runs.append(
                SimRun(
                    arn=f"{base}:run:{run_path}",
                    project_arn=project.arn,
                    name=f"nightly-{config.runs - index:04d}",
                    platform=jobs[0].device[2],
                    created=newest_s - index * config.run_spacing_s,
                    jobs=jobs,
                )
            )
        by_arn: dict[str, Any] = {project.arn: project for project in projects}
        by_arn.update((run.arn, run) for run in runs)
        by_path: dict[str, SimArtifact] = {}
        run_of: dict[str, SimRun] = {}
        for run in runs:
            for job in run.jobs:
                by_arn[job.arn], run_of[job.arn] = job, run
                for suite in job.suites:
                    by_arn[suite.arn], run_of[suite.arn] = suite, run
                    for test in suite.tests:
                        by_arn[test.arn], run_of[test.arn] = test, run
                        for artifact in test.artifacts:
                            by_arn[artifact.arn] = artifact
                            by_path[artifact.path] = artifact
        return cls(projects, tuple(runs), by_arn, by_path, run_of)


class DeviceFarmData:
    """The tables of a :class:`DeviceFarmDataset` and which runs still run (thread-safe)."""

    def __init__(self, config: DeviceFarmSimConfig, newest_s: int) -> None:
        tables = DeviceFarmDataset.build(config, newest_s)
        self.projects = tables.projects
        self.runs = tables.runs
        self.by_arn = tables.by_arn
        self.by_path = tables.by_path
        self.run_of = tables.run_of
        self.unfinished: SessionIds[str] = SessionIds(
            run.arn for run in self.runs[: config.unfinished]
        )

    def session(self, run_arn: str) -> SimRun:
        """The run ``run_arn`` (a run is what the archive calls a session)."""
        found = lookup(self.by_arn, run_arn, "run")
        if not isinstance(found, SimRun):
            raise KeyError(f"no simulated run {run_arn!r}")
        return found

    def runs_of(self, project_arn: str) -> list[SimRun]:
        return [run for run in self.runs if run.project_arn == project_arn]


class _Ids:
    """Deterministic UUIDs from the seed."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._count = 0

    def next(self) -> str:
        self._count += 1
        digest = hashlib.sha256(f"{self._seed}:{self._count}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16]))


def _job(config: DeviceFarmSimConfig, base: str, path: str, number: int) -> SimJob:
    device = DEVICES[number % len(DEVICES)]
    every = config.video_disabled_every
    video = not (every and number % every == every - 1)
    suites = []
    for suite_number, suite_name in enumerate(("Setup Suite", "Tests Suite", "Teardown Suite")):
        suite_path = f"{path}/{suite_number:05d}"
        if suite_name == "Tests Suite":
            names = [f"Tests.CheckoutTest.test{n + 1:02d}" for n in range(config.tests_per_job)]
        else:
            names = [suite_name.replace("Suite", "Test")]
        tests = tuple(
            SimTest(
                arn=f"{base}:test:{suite_path}/{test_number:05d}",
                name=name,
                artifacts=_artifacts(
                    config, base, f"{suite_path}/{test_number:05d}", suite_name, video
                ),
            )
            for test_number, name in enumerate(names)
        )
        suites.append(SimSuite(arn=f"{base}:suite:{suite_path}", name=suite_name, tests=tests))
    return SimJob(
        arn=f"{base}:job:{path}", device=device, video_capture=video, suites=tuple(suites)
    )


def _artifacts(
    config: DeviceFarmSimConfig, base: str, test_path: str, suite: str, video: bool
) -> tuple[SimArtifact, ...]:
    """What Device Farm keeps for one test: files (logcat, test spec output, the video,
    customer artifacts at teardown), logs (the message log) and screenshots."""
    kinds: list[tuple[str, str, str, str, str]] = [  # category, type, name, extension, mime
        ("FILE", "DEVICE_LOG", "Logcat", "logcat", "text/plain"),
        ("FILE", "TESTSPEC_OUTPUT", "Test spec output", "txt", "text/plain"),
        ("LOG", "MESSAGE_LOG", "Message log", "txt", "text/plain"),
    ]
    if suite == "Tests Suite":
        if video:
            kinds.append(("FILE", "VIDEO", "Video", "mp4", "video/mp4"))
        kinds += [
            ("SCREENSHOT", "SCREENSHOT", f"screen-{n + 1:02d}", "png", "image/png")
            for n in range(config.screenshots_per_test)
        ]
    if suite == "Teardown Suite":
        kinds.append(("FILE", "CUSTOMER_ARTIFACT", "Customer Artifacts", "zip", "application/zip"))
    return tuple(
        SimArtifact(
            arn=f"{base}:artifact:{test_path}/{number:05d}",
            name=name,
            type=kind,
            category=category,
            extension=extension,
            size=config.video_size if kind == "VIDEO" else config.file_size + number,
            content_type=mime,
            path=f"{FILES_PREFIX}/{config.account}/{test_path}/{number:05d}.{extension}",
        )
        for number, (category, kind, name, extension, mime) in enumerate(kinds)
    )


def artifacts_under(item: SimRun | SimJob | SimSuite) -> Iterator[SimArtifact]:
    """Every artifact of the tests below ``item``."""
    if isinstance(item, SimRun):
        for job in item.jobs:
            yield from artifacts_under(job)
    elif isinstance(item, SimJob):
        for suite in item.suites:
            yield from artifacts_under(suite)
    else:
        for test in item.tests:
            yield from test.artifacts
