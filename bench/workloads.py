"""The eight workloads. Each returns table rows measured in this run, never constants.

Throughput is always computed over the same payload for the archiver and its baseline:
the artifact files the simulator serves. The archiver also stores each execution's JSON
record and commands report, a manifest and a state row, and makes the API calls that find
the files; the parallel baseline gets the list of file URLs for free.
"""

from __future__ import annotations

import contextlib
import functools
import os
import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3

from archiver.config import EngineSettings
from bench import replicas
from bench.harness import (
    MIB,
    SIM_TOKEN,
    DaemonPass,
    Measured,
    Vendor,
    free_port,
    run_archiver,
    run_baseline,
    run_daemon_pass,
    s3_server,
    simulator,
    write_config,
)
from tests.support import postgres

MB = 1000 * 1000
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each workload is; ``tiny`` only proves the benchmark runs."""

    large_files: int = 40
    large_size: int = 50 * MB
    small_sessions: int = 2000
    small_size: int = 20 * 1000
    naive_sessions: int = 40
    naive_latency: float = 0.05
    memory_fs_big: int = 2 * 1024 * MIB
    memory_s3_big: int = 1024 * MIB
    memory_small: int = 100 * MB
    scale_small: int = 1000
    scale_big: int = 10_000
    s3_files: int = 8
    s3_size: int = 100 * MB
    replica_sessions: int = 600
    replica_latency: float = 0.05
    budget_sessions: int = 600
    budget_rate: float = 40.0
    repeat: int = 3


TINY = Sizes(
    large_files=3,
    large_size=MB,
    small_sessions=6,
    naive_sessions=3,
    naive_latency=0.005,
    memory_fs_big=8 * MIB,
    memory_s3_big=8 * MIB,
    memory_small=2 * MB,
    scale_small=10,
    scale_big=30,
    replica_sessions=6,
    replica_latency=0.005,
    budget_sessions=6,
    budget_rate=50.0,
    s3_files=2,
    s3_size=6 * MB,
    repeat=1,
)
SMALL_LAYOUT = {"videos": 1, "artifact_types": ["NETWORK", "VITALS"], "screenshots": 2}
CONCURRENCY = EngineSettings().download_concurrency  # the baselines use the same


@dataclass(frozen=True, slots=True)
class Row:
    workload: str
    metric: str
    archiver: float
    baseline: float | None
    ratio: float
    target: str
    met: bool


class Bench:
    def __init__(self, workdir: Path, sizes: Sizes) -> None:
        self.workdir = workdir
        self.sizes = sizes

    @contextmanager
    def folder(self) -> Iterator[Path]:
        """A fresh folder for one run; afterwards its files are emptied, not deleted.

        Deleting a run's thousands of files would slow the next run down: ext4 without a
        journal skips, one by one, inodes freed in the last minutes when it allocates new
        ones. Emptying frees the space and keeps the inodes; the work folder goes at the end.
        """
        path = Path(tempfile.mkdtemp(prefix="run-", dir=self.workdir))
        try:
            yield path
        finally:
            _empty_files(path)
            os.sync()  # dirty pages of one run must not slow the next one down

    def archive(
        self, vendor: Vendor, *, store: dict[str, Any] | None = None, as_deployed: bool = True
    ) -> Measured:
        with self.folder() as folder:
            config = write_config(folder, vendor, store=store)
            return run_archiver(config, as_deployed=as_deployed)

    def download(self, vendor: Vendor, *, fsync: bool = False) -> Measured:
        with self.folder() as folder:
            return _download(vendor, folder, fsync=fsync)

    def best_of_rounds(self, *measures: Callable[[], Measured]) -> list[Measured]:
        """The best run of each, measured in rounds of one run each, every round in the
        reverse order of the one before.

        So each program runs as often early as late, and after each of the others: the
        first runs after the simulator has written its bodies are slower, and a run can
        be slowed by what the one before left to the disk, whichever program it is.
        """
        return [min(runs, key=lambda m: m.seconds) for runs in self.rounds(*measures)]

    def rounds(self, *measures: Callable[[], T]) -> list[list[T]]:
        """Every run of each, in ``repeat`` rounds of one run each, every round in the
        reverse order of the one before (see :meth:`best_of_rounds`)."""
        runs: list[list[T]] = [[] for _ in measures]
        order = list(range(len(measures)))
        for _ in range(self.sizes.repeat):
            for index in order:
                runs[index].append(measures[index]())
            order.reverse()
        return runs

    # -- 1 and 2: against a plain parallel downloader --------------------------------------

    def large(self) -> list[Row]:
        spec = {"executions": self.sizes.large_files, "video_size": self.sizes.large_size}
        with self.folder() as folder, simulator(folder, **spec) as vendor:
            payload = self.sizes.large_files * self.sizes.large_size
            ours, theirs, durable = self.best_of_rounds(
                lambda: self.archive(vendor),
                lambda: self.download(vendor),
                lambda: self.download(vendor, fsync=True),
            )
        mine = payload / MB / ours.seconds
        base, synced = payload / MB / theirs.seconds, payload / MB / durable.seconds
        label = f"large: {self.sizes.large_files} x {self.sizes.large_size // MB} MB, file store"
        return [
            _row(label, "MB/s", mine, base, ">= 0.85 x", mine / base >= 0.85),
            _row(f"{label}, baseline fsyncs too", "MB/s", mine, synced, "", True),
        ]

    def small(self) -> list[Row]:
        sessions, size = self.sizes.small_sessions, self.sizes.small_size
        spec = {"executions": sessions, "video_size": size, **SMALL_LAYOUT}
        with self.folder() as folder, simulator(folder, **spec) as vendor:
            files = len(vendor.urls)
            ours, theirs, durable = self.best_of_rounds(
                lambda: self.archive(vendor),
                lambda: self.download(vendor),
                lambda: self.download(vendor, fsync=True),
            )
        mine, base, synced = (files / m.seconds for m in (ours, theirs, durable))
        label = f"small: {sessions} sessions x {files // sessions} x {size // 1000} KB"
        return [
            _row(label, "artifacts/s", mine, base, ">= 0.7 x", mine / base >= 0.7),
            _row(f"{label}, baseline fsyncs too", "artifacts/s", mine, synced, "", True),
            _row(label, "sessions/s", sessions / ours.seconds, None, "", True),
        ]

    # -- 3: against the sequential scripts users replace --------------------------------------

    def naive(self) -> list[Row]:
        sessions, latency = self.sizes.naive_sessions, self.sizes.naive_latency
        spec = {
            "executions": sessions,
            "video_size": self.sizes.small_size,
            "latency_seconds": latency,
            **SMALL_LAYOUT,
        }
        with self.folder() as folder, simulator(folder, **spec) as vendor:
            ours = self.archive(vendor)
            with self.folder() as out:
                theirs = run_baseline("sequential", vendor.api_url, str(out), "--token", SIM_TOKEN)
        mine, base = sessions / ours.seconds, sessions / theirs.seconds
        label = f"vs sequential script: {sessions} sessions, {latency * 1000:g} ms per request"
        return [_row(label, "sessions/s", mine, base, ">= 8 x", mine / base >= 8)]

    # -- 4: memory ---------------------------------------------------------------------------

    def memory(self) -> list[Row]:
        rows = []
        small = self.sizes.memory_small
        runs = (
            ("file store", self.sizes.memory_fs_big, True),
            ("S3", self.sizes.memory_s3_big, True),
            ("S3, glibc's default malloc arenas", self.sizes.memory_s3_big, False),
        )
        with s3_server() as endpoint:
            for store, big, as_deployed in runs:
                peaks = {}
                for size in (small, big):
                    spec = {"executions": 1, "video_size": size}
                    with self.folder() as folder, simulator(folder, **spec) as vendor:
                        config = self._s3_store(endpoint) if store.startswith("S3") else None
                        measured = self.archive(vendor, store=config, as_deployed=as_deployed)
                    peaks[size] = measured.peak_rss_mib
                label = f"memory: one {_human(big)} video, {store}"
                ratio = peaks[big] / peaks[small]
                target = f"<= 150 MiB, <= 1.1 x the {_human(small)} run" if as_deployed else ""
                met = peaks[big] <= 150 and ratio <= 1.1
                rows.append(_row(label, "peak RSS MiB", peaks[big], peaks[small], target, met))
        return rows

    # -- 5: scale ----------------------------------------------------------------------------

    def scale(self) -> list[Row]:
        counts = (self.sizes.scale_small, self.sizes.scale_big)
        with contextlib.ExitStack() as stack:
            vendors = []
            for sessions in counts:
                folder = stack.enter_context(self.folder())
                spec = {"executions": sessions, "video_size": 1000}
                vendors.append(stack.enter_context(simulator(folder, **spec)))
            # In rounds, as the other workloads: a single short run can be caught by a
            # burst of noise (CPU steal on a VM) that a long one averages out.
            measured = self.best_of_rounds(*(functools.partial(self.archive, v) for v in vendors))
        for sessions, run in zip(counts, measured, strict=True):
            assert run.sessions == sessions, run
        small, big = (run.seconds / run.sessions * 1000 for run in measured)
        label = f"scale: ms per session at {self.sizes.scale_big:,} vs {self.sizes.scale_small:,}"
        return [_row(label, "ms/session", big, small, "<= 1.2 x", big / small <= 1.2)]

    # -- 6: S3 ---------------------------------------------------------------------------------

    def s3(self) -> list[Row]:
        files, size = self.sizes.s3_files, self.sizes.s3_size
        payload = files * size
        with s3_server() as endpoint, self.folder() as folder:
            downloaded = folder / "files"

            def upload() -> Measured:
                bucket = _bucket(endpoint)
                return run_baseline(
                    "upload",
                    str(downloaded),
                    "--endpoint",
                    endpoint,
                    "--bucket",
                    bucket,
                    "--concurrency",
                    str(CONCURRENCY),
                )

            with simulator(folder, executions=files, video_size=size) as vendor:
                _download(vendor, downloaded)  # the files upload_file is given
                ours, theirs = self.best_of_rounds(
                    lambda: self.archive(vendor, store=self._s3_store(endpoint)), upload
                )
        mine, base = payload / MB / ours.seconds, payload / MB / theirs.seconds
        label = f"S3: {files} x {_human(size)} to the S3 API server vs upload_file"
        return [_row(label, "MB/s", mine, base, ">= 0.8 x", mine / base >= 0.8)]

    def _s3_store(self, endpoint: str) -> dict[str, Any]:
        return {"url": f"s3://{_bucket(endpoint)}/evidence", "endpoint_url": endpoint}

    # -- 7: what the Prometheus metrics cost --------------------------------------------------

    def metrics(self) -> list[Row]:
        """The small workload's first pass in the daemon, ``[metrics]`` off and on.

        Only the daemon (``archiver run``) attaches the observers and serves ``/metrics``;
        ``run --once`` does neither, so both sides run the daemon, with a long interval,
        until its first pass ends. With metrics on, ``/metrics`` is read every second
        during the pass, as Prometheus would, so the exposition's cost counts too. The
        median of the rounds: a noisy run on either side moves it less than it moves a
        mean, and unlike the best run it does not reward the side that got one lucky run.
        """
        sessions, size = self.sizes.small_sessions, self.sizes.small_size
        spec = {"executions": sessions, "video_size": size, **SMALL_LAYOUT}
        with self.folder() as folder, simulator(folder, **spec) as vendor:
            files = len(vendor.urls)
            off, on = self.rounds(
                lambda: self.daemon_pass(vendor, metrics=False),
                lambda: self.daemon_pass(vendor, metrics=True),
            )
        for run in (*off, *on):
            assert run.measured.sessions == sessions, run
        for run in on:  # the observers were attached, and /metrics was read during the pass
            assert run.scrapes >= 1 and run.artifacts_counted == run.measured.files, run
        without, with_ = (
            files / statistics.median(run.measured.seconds for run in runs) for runs in (off, on)
        )
        scrapes = statistics.median(run.scrapes for run in on)
        label = (
            f"metrics: small, {sessions} sessions, in the daemon: on (/metrics read every 1 s, "
            f"{scrapes:g} reads a pass) vs off, median of {self.sizes.repeat}"
        )
        ratio = with_ / without
        # The CPU the daemon used, start-up and shutdown included, per artifact: what the
        # observers and the reads of /metrics add, less hidden by the disk's waits.
        cpu_off, cpu_on = (
            statistics.median(run.cpu_seconds for run in runs) / files * 1000 for runs in (off, on)
        )
        return [
            _row(label, "artifacts/s", with_, without, ">= 0.95 x", ratio >= 0.95),
            _row(f"{label}, daemon's CPU", "CPU ms/artifact", cpu_on, cpu_off, "", True),
        ]

    # -- 8: replicas on one PostgreSQL state ------------------------------------------------

    def replicas(self) -> list[Row]:
        if (reason := replicas.unavailable()) is not None:
            print(f"  replicas: skipped: {reason}", file=sys.stderr, flush=True)
            return []
        sessions, latency = self.sizes.replica_sessions, self.sizes.replica_latency
        one, two, three = replicas.throughput(self.folder, sessions, latency, SMALL_LAYOUT)
        rate = {run.replicas: sessions / run.seconds for run in (one, two, three)}
        label = f"replicas: {sessions} sessions, {latency * 1000:g} ms a request, no rate limit"
        cpu = f"CPU {three.cpu_share:.0%} of the machine with 3"
        used, refused = replicas.budget(
            self.folder, self.sizes.budget_sessions, self.sizes.budget_rate, SMALL_LAYOUT
        )
        budget_label = (
            f"replicas: 3 sharing a vendor limit of {self.sizes.budget_rate:g} requests/s"
        )
        per_session = self._state_cost()
        return [
            _row(f"{label}: 2 vs 1", "sessions/s", rate[2], rate[1], "", True),
            _row(
                f"{label}: 3 vs 1 ({cpu})",
                "sessions/s",
                rate[3],
                rate[1],
                ">= 2.5 x",
                rate[3] / rate[1] >= 2.5,
            ),
            _row(
                f"{budget_label}: share of it used", "%", used * 100, None, ">= 90 %", used >= 0.9
            ),
            _row(f"{budget_label}: 429s answered", "429s", refused, None, "0", refused == 0),
            *per_session,
        ]

    def _state_cost(self) -> list[Row]:
        """One process, ``scale_big`` sessions: PostgreSQL's state against SQLite's."""
        sessions = self.sizes.scale_big
        spec = {"executions": sessions, "video_size": 1000}
        with self.folder() as folder, simulator(folder, **spec) as vendor:
            on_sqlite = self.archive(vendor)
            database = postgres.create_database()
            try:
                state = {"url": postgres.database_url(database)}
                with self.folder() as run_folder:
                    on_postgres = run_archiver(write_config(run_folder, vendor, state=state))
            finally:
                postgres.drop_database(database)
        pg, lite = (run.seconds / sessions * 1000 for run in (on_postgres, on_sqlite))
        label = f"replicas: state on PostgreSQL vs SQLite, one process, {sessions:,} sessions"
        return [_row(label, "ms/session", pg, lite, "", True)]

    def daemon_pass(self, vendor: Vendor, *, metrics: bool) -> DaemonPass:
        with self.folder() as folder:
            listen = f"127.0.0.1:{free_port()}"
            config = write_config(
                folder,
                vendor,
                engine={"interval_seconds": 24 * 3600},
                metrics={"listen": listen} if metrics else None,
            )
            url = f"http://{listen}/metrics" if metrics else None
            run = run_daemon_pass(config, metrics_url=url)
        # Every run on stderr: the table keeps the medians, the spread shows the noise.
        print(
            f"  metrics {'on ' if metrics else 'off'}: first pass {run.measured.seconds:.2f} s, "
            f"daemon's CPU {run.cpu_seconds:.2f} s"
            + (f", {run.scrapes} reads of /metrics" if metrics else ""),
            file=sys.stderr,
            flush=True,
        )
        return run


def _download(vendor: Vendor, folder: Path, *, fsync: bool = False) -> Measured:
    """The plain parallel downloader fetches every file the vendor serves into ``folder``."""
    args = ["parallel", str(vendor.urls_file), str(folder), "--concurrency", str(CONCURRENCY)]
    return run_baseline(*args, *(["--fsync"] if fsync else []))


def _empty_files(folder: Path) -> None:
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                os.truncate(path, 0)


def _bucket(endpoint: str) -> str:
    name = f"bench-{uuid.uuid4().hex[:12]}"
    client = boto3.session.Session().client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=name)
    client.close()
    return name


def _row(
    workload: str, metric: str, archiver: float, baseline: float | None, target: str, met: bool
) -> Row:
    ratio = archiver / baseline if baseline else 0.0
    return Row(workload, metric, archiver, baseline, ratio, target, met)


def _human(size: int) -> str:
    if size % (1024 * MIB) == 0:
        return f"{size // (1024 * MIB)} GiB"
    if size % MB == 0:
        return f"{size // MB} MB"
    return f"{size / MIB:.1f} MiB"


WORKLOADS = ("large", "small", "naive", "memory", "scale", "s3", "metrics", "replicas")
