"""End to end: several ``archiver`` replicas on one PostgreSQL state and one evidence folder.

Perfecto and DevRev answer every request after a delay, as vendors far away do. The
replicas list each source one at a time, share the queue of sessions, and every complete
session ends up archived exactly once: one manifest, one ledger record, one
``session_archived`` event among all the replicas' output, and ``archiver verify`` exits 0.
One replica is then killed (``SIGKILL``) at random moments, several times: its sessions
are taken over once their leases lapse, and nothing is lost or archived twice.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from archiver_sim.faults import FaultPlan
from tests.e2e.test_devrev_cli import mobile_sessions
from tests.e2e.test_verify_cli import verify_json
from tests.support.cli import ARCHIVER, DEVREV_TOKEN, TOKEN, Deployment, archiver_env, write_config
from tests.support.simulators import DevRevFactory, PerfectoFactory

pytestmark = pytest.mark.slow

KIB = 1024
LATENCY = FaultPlan(rate=0.0, latency_seconds=0.02)


def replica(
    root: Path, name: str, *, postgres_url: str, evidence: Path, lease_seconds: float, **urls: Any
) -> Deployment:
    return write_config(
        root / name,
        store={"url": f"file://{evidence}"},
        state={"url": postgres_url, "replica": name, "lease_seconds": lease_seconds},
        engine={"interval_seconds": 1, "download_concurrency": 8},
        **urls,
    )


def three_replicas(
    root: Path, *, postgres_url: str, lease_seconds: float, **urls: Any
) -> list[Deployment]:
    """Three replicas, ``archiver-1`` to ``archiver-3``, with one evidence folder."""
    return [
        replica(
            root,
            f"archiver-{number}",
            postgres_url=postgres_url,
            evidence=root / "evidence",
            lease_seconds=lease_seconds,
            **urls,
        )
        for number in (1, 2, 3)
    ]


def stop(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=60)


def start(deployment: Deployment, *args: str) -> subprocess.Popen[str]:
    with (deployment.root / "stderr.log").open("a") as log:  # the child keeps its own
        return subprocess.Popen(
            [str(ARCHIVER), "run", *args, "--config", str(deployment.config)],
            env=archiver_env(),
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )


def archived_events(deployments: list[Deployment]) -> Counter[tuple[str, str]]:
    """Every ``session_archived`` event the replicas logged, by (source, session)."""
    found: Counter[tuple[str, str]] = Counter()
    for deployment in deployments:
        for line in (deployment.root / "stderr.log").read_text().splitlines():
            if '"session_archived"' in line:
                event = json.loads(line)
                found[(event["source"], event["session_id"])] += 1
    return found


def manifests(evidence: Path) -> set[tuple[str, str]]:
    return {
        (path.parent.parent.name, path.parent.name) for path in evidence.glob("*/*/manifest.json")
    }


def test_three_replicas_archive_every_session_once(
    perfecto_sim_factory: PerfectoFactory,
    devrev_sim_factory: DevRevFactory,
    postgres_url: str,
    tmp_path: Path,
) -> None:
    perfecto = perfecto_sim_factory(
        faults=LATENCY,
        token=TOKEN,
        executions=600,
        unfinished=10,
        video_size=4 * KIB,
        artifact_size=KIB,
        screenshot_size=KIB,
        pdf_size=KIB,
        pdf_not_ready_requests=0,
    )
    devrev = devrev_sim_factory(
        faults=LATENCY, token=DEVREV_TOKEN, sessions=1800, media_size=2 * KIB
    )
    expected = {("perfecto", e.id) for e in perfecto.executions} | {
        ("devrev", session_id) for session_id in mobile_sessions(devrev)
    }
    assert len(expected) >= 1200
    evidence = tmp_path / "evidence"
    deployments = three_replicas(
        tmp_path,
        postgres_url=postgres_url,
        lease_seconds=30,
        perfecto_url=perfecto.api_url,
        devrev_url=devrev.api_url,
    )
    assert sum(perfecto.is_unfinished(e.id) for e in perfecto.executions) == 10

    for _ in range(2):  # the second time, the sessions held back the first time are done
        processes = [start(deployment, "--once") for deployment in deployments]
        for process in processes:
            assert process.wait(timeout=600) == 0, deployments[processes.index(process)].root
        perfecto.finish_all()

    archived = archived_events(deployments)
    assert set(archived) == expected
    assert max(archived.values()) == 1, "a session was archived twice"
    assert manifests(evidence) == expected
    by_replica = [len(archived_events([deployment])) for deployment in deployments]
    assert all(count > len(expected) // 10 for count in by_replica), by_replica
    code, report = verify_json(deployments[0])
    assert code == 0, report["problems"]
    assert report["sessions"] == report["manifests"] == len(expected)


def test_a_replica_killed_again_and_again_loses_nothing(
    perfecto_sim_factory: PerfectoFactory, postgres_url: str, tmp_path: Path
) -> None:
    perfecto = perfecto_sim_factory(
        faults=LATENCY,
        token=TOKEN,
        executions=300,
        video_size=64 * KIB,
        artifact_size=4 * KIB,
        pdf_not_ready_requests=0,
    )
    expected = {("perfecto", e.id) for e in perfecto.executions}
    evidence = tmp_path / "evidence"
    deployments = three_replicas(
        tmp_path, postgres_url=postgres_url, lease_seconds=3, perfecto_url=perfecto.api_url
    )
    processes = [start(deployment) for deployment in deployments]
    victim, kills = deployments[0], 0
    chance = random.Random(21)
    deadline = time.monotonic() + 300
    try:
        while manifests(evidence) != expected:
            assert time.monotonic() < deadline, f"{len(manifests(evidence))} archived"
            if kills < 4:
                time.sleep(chance.uniform(0.3, 1.5))
                processes[0].send_signal(signal.SIGKILL)
                processes[0].wait(timeout=30)
                kills += 1
                processes[0] = start(victim)
            else:
                time.sleep(0.5)
    finally:
        stop(processes)
    assert kills == 4
    archived = archived_events(deployments)
    assert set(archived) <= expected
    assert max(archived.values()) == 1, "a session was archived twice"
    code, report = verify_json(deployments[1])
    assert code == 0, report["problems"]
    assert report["sessions"] == report["manifests"] == len(expected)


def test_replicas_outlive_their_database_connections(
    perfecto_sim_factory: PerfectoFactory, postgres_url: str, tmp_path: Path
) -> None:
    perfecto = perfecto_sim_factory(
        faults=LATENCY, token=TOKEN, executions=300, pdf_not_ready_requests=0
    )
    expected = {("perfecto", e.id) for e in perfecto.executions}
    evidence = tmp_path / "evidence"
    deployments = three_replicas(
        tmp_path, postgres_url=postgres_url, lease_seconds=3, perfecto_url=perfecto.api_url
    )
    processes = [start(deployment) for deployment in deployments]
    chance = random.Random(5)
    terminated = cuts = 0
    deadline = time.monotonic() + 300
    try:
        while archived_rows(postgres_url) != {id for _, id in expected}:
            assert time.monotonic() < deadline, f"{len(archived_rows(postgres_url))} archived"
            time.sleep(chance.uniform(0.3, 1.2))
            if cuts < 3 and archived_rows(postgres_url):  # mid-pass: some archived, not all
                cut = terminate_connections(postgres_url)
                terminated += cut
                cuts += cut > 0
            for source, session_id in archived_states(postgres_url):
                manifest = evidence / source / session_id / "manifest.json"
                assert manifest.is_file(), f"{session_id} is archived without its manifest"
    finally:
        stop(processes)
    assert terminated >= 3
    assert manifests(evidence) == expected
    assert max(archived_events(deployments).values()) == 1, "a session was archived twice"
    code, report = verify_json(deployments[2])
    assert code == 0, report["problems"]


def terminate_connections(postgres_url: str) -> int:
    """Cut every connection of the replicas to their database; how many there were."""
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


def archived_states(postgres_url: str) -> list[tuple[str, str]]:
    with psycopg.connect(postgres_url) as connection:
        try:
            rows = connection.execute(
                "SELECT source, session_id FROM sessions WHERE status = 'archived'"
            ).fetchall()
        except psycopg.errors.UndefinedTable:
            return []  # no replica has created the schema yet
    return [(str(source), str(session_id)) for source, session_id in rows]


def archived_rows(postgres_url: str) -> set[str]:
    return {session_id for _, session_id in archived_states(postgres_url)}


def test_three_replicas_keep_to_one_vendor_rate(
    perfecto_sim_factory: PerfectoFactory, postgres_url: str, tmp_path: Path
) -> None:
    """The vendor answers 429 beyond 40 requests a second; each replica alone may send 30
    a second: together they do too, and none is refused."""
    vendor = FaultPlan(rate=0.0, origins=("api",), requests_per_second=40, latency_seconds=0.02)
    perfecto = perfecto_sim_factory(
        faults=vendor, token=TOKEN, executions=200, page_size=20, pdf_not_ready_requests=0
    )
    evidence = tmp_path / "evidence"
    deployments = [
        write_config(
            tmp_path / f"archiver-{number}",
            store={"url": f"file://{evidence}"},
            state={"url": postgres_url, "replica": f"archiver-{number}"},
            perfecto_url=perfecto.api_url,
            perfecto={"requests_per_second": 30},
        )
        for number in (1, 2, 3)
    ]
    started = time.monotonic()
    processes = [start(deployment, "--once") for deployment in deployments]
    for deployment, process in zip(deployments, processes, strict=True):
        assert process.wait(timeout=600) == 0, (deployment.root / "stderr.log").read_text()[-3000:]
    seconds = time.monotonic() - started
    api_requests = len(perfecto.requests("api"))
    assert vendor.counts()["429"] == 0
    assert manifests(evidence) == {("perfecto", e.id) for e in perfecto.executions}
    assert api_requests / seconds <= 30 * 1.1, (api_requests, seconds)
