"""The ``replicas`` workload: several archivers on one PostgreSQL state.

* **Throughput with 1, 2 and 3 replicas** against a vendor that answers every request after
  ``replica_latency`` seconds (50 ms) and has no rate limit: sessions a second from the
  first replica's start to the last one's end, and the CPU all of them used, as a share of
  the machine's. Each replica archives ``LATENCY_BOUND`` sessions at a time, so that the
  vendor's latency, not this machine's two CPUs (shared with the simulator), bounds it:
  with the defaults (8 sessions, 16 downloads) one replica alone already keeps both CPUs
  busy here, and a second one adds little.
* **One vendor budget**: three replicas, each configured to send at most ``rate`` requests a
  second to a vendor that answers 429 beyond that rate: the share of the allowed rate they
  used together, and the 429s they got.
* **PostgreSQL's cost per session** against SQLite, one process, ``scale_big`` sessions.

It needs the PostgreSQL server of :mod:`tests.support.postgres` (a database of its own per
run); without one it says so and gives no rows.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import ARCHIVER, Vendor, archiver_environment, simulator, write_config
from tests.support import postgres

REPLICAS = (1, 2, 3)
# Per replica: few enough sessions and downloads at once that waiting on the vendor
# dominates (see the module's docstring).
LATENCY_BOUND = {"session_concurrency": 2}
LATENCY_BOUND_ENGINE = {"download_concurrency": 4}


@dataclass(frozen=True, slots=True)
class ReplicaRun:
    replicas: int
    seconds: float
    cpu_seconds: float

    @property
    def cpu_share(self) -> float:
        """The CPU the replicas used, as a share of all the machine's CPUs."""
        return self.cpu_seconds / (self.seconds * (os.cpu_count() or 1))


def unavailable() -> str | None:
    return postgres.unavailable()


def run_replicas(
    folder: Path,
    vendor: Vendor,
    replicas: int,
    *,
    source: dict[str, Any] | None = None,
    engine: dict[str, Any] | None = None,
) -> ReplicaRun:
    """``replicas`` processes of ``archiver run --once`` on a new database, side by side."""
    database = postgres.create_database()
    try:
        url = postgres.database_url(database)
        configs = [
            _config(folder / f"replica-{number}", vendor, url, f"replica-{number}", source, engine)
            for number in range(replicas)
        ]
        # The schema first, so that the replicas' start-ups do not wait for each other.
        subprocess.run(
            [str(ARCHIVER), "--config", str(configs[0]), "state", "migrate"],
            env=archiver_environment(True),
            check=True,
            capture_output=True,
        )
        # Logs go to files: a replica must never wait for the benchmark to read a pipe.
        logs = [config.with_name("stderr.log") for config in configs]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        processes = []
        for config, log in zip(configs, logs, strict=True):
            with log.open("w") as stderr:
                processes.append(
                    subprocess.Popen(
                        [str(ARCHIVER), "--config", str(config), "run", "--once"],
                        env=archiver_environment(True),
                        stdout=subprocess.DEVNULL,
                        stderr=stderr,
                    )
                )
        for process, log in zip(processes, logs, strict=True):
            if process.wait() != 0:
                tail = log.read_text()[-3000:]
                raise RuntimeError(f"a replica exited with {process.returncode}:\n{tail}")
        seconds = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        postgres.drop_database(database)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return ReplicaRun(replicas=replicas, seconds=seconds, cpu_seconds=cpu)


def _config(
    folder: Path,
    vendor: Vendor,
    state_url: str,
    replica: str,
    source: dict[str, Any] | None,
    engine: dict[str, Any] | None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_config(
        folder,
        vendor,
        store={"url": f"file://{folder.parent}/evidence"},
        state={"url": state_url, "replica": replica},
        source=source,
        engine=engine,
    )


def throughput(
    folder_for: Callable[[], Any], sessions: int, latency: float, layout: dict[str, Any]
) -> list[ReplicaRun]:
    spec = {"executions": sessions, "video_size": 1000, "latency_seconds": latency, **layout}
    runs = []
    with folder_for() as folder, simulator(folder, **spec) as vendor:
        for replicas in REPLICAS:
            with folder_for() as run_folder:
                runs.append(
                    run_replicas(
                        run_folder,
                        vendor,
                        replicas,
                        source=LATENCY_BOUND,
                        engine=LATENCY_BOUND_ENGINE,
                    )
                )
            print(
                f"  {replicas} replica(s): {sessions / runs[-1].seconds:.1f} sessions/s, "
                f"CPU {runs[-1].cpu_share:.0%} of the machine",
                file=sys.stderr,
                flush=True,
            )
    return runs


def budget(
    folder_for: Callable[[], Any], sessions: int, rate: float, layout: dict[str, Any]
) -> tuple[float, int]:
    """Three replicas at ``rate`` requests/s against a vendor allowing ``rate``: the share of
    the allowed rate used between the vendor's first and last API request (start-up and the
    last downloads, which take no turn, are not the budget's), and the 429s answered."""
    spec = {"executions": sessions, "video_size": 1000, "api_requests_per_second": rate, **layout}
    with folder_for() as folder:
        with simulator(folder, **spec) as vendor, folder_for() as run_folder:
            run_replicas(run_folder, vendor, 3, source={"requests_per_second": rate})
        used = vendor.seen["api_requests"] / vendor.seen["api_seconds"] / rate
        return used, int(vendor.seen["rate_limited"])
