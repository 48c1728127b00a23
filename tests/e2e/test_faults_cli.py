"""End to end under faults: vendors that fail in every way seen in the wild.

The simulators answer a seeded share of requests with 500/502/503, 429 with Retry-After,
bodies cut off (reset or short of their Content-Length), stalls longer than the read
timeout, HTML error pages and broken JSON where JSON was asked for, and (Perfecto) empty
pages that say more follow. A few passes of ``archiver run --once`` must archive every
complete session exactly once, with every stored byte matching the simulator's, nothing
still processing archived, and no secret anywhere in what the runs left behind.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from archiver_sim.faults import ALL_KINDS, FaultPlan
from tests.e2e.test_devrev_cli import (
    assert_matches_simulator as assert_devrev_matches,
)
from tests.e2e.test_devrev_cli import (
    mobile_sessions,
    verify_recording_json,
)
from tests.e2e.test_perfecto_cli import assert_matches_simulator, small_sim
from tests.support.cli import DEVREV_TOKEN, Deployment, run_archiver, write_config
from tests.support.secrets import SecretScan
from tests.support.simulators import DevRevFactory, PerfectoFactory

# The client gives up on a silent server after 1 s; the simulators stall for 2.5 s.
FAULTY_HTTP = {"read_timeout": 1.0, "api_timeout": 20.0}
MAX_PASSES = 6


def faults(seed: int, **overrides: Any) -> FaultPlan:
    values: dict[str, Any] = {
        "seed": seed,
        "rate": 0.3,
        "max_in_a_row": 2,
        "retry_after": 1,
        "stall_seconds": 2.5,
    }
    return FaultPlan(**{**values, **overrides})


def archived_events(output: str) -> list[tuple[str, str]]:
    events = []
    for line in output.splitlines():
        if '"session_archived"' in line:
            event = json.loads(line)
            events.append((event["source"], event["session_id"]))
    return events


def state_rows(deployment: Deployment) -> dict[tuple[str, str], str]:
    connection = sqlite3.connect(deployment.root / "state.db")
    try:
        rows = connection.execute("SELECT source, session_id, status FROM sessions").fetchall()
    finally:
        connection.close()
    return {(source, session_id): status for source, session_id, status in rows}


def run_passes(
    deployment: Deployment, scan: SecretScan, done: Any, *, passes: int = MAX_PASSES
) -> list[tuple[str, str]]:
    """``run --once`` until ``done()`` and a pass exits 0; every session_archived event."""
    events: list[tuple[str, str]] = []
    for number in range(passes):
        result = run_archiver("run", "--once", config=deployment.config, timeout=240)
        scan.add_result(f"pass {number}", result)
        assert result.returncode in (0, 1), result.stderr[-3000:]
        events += archived_events(result.stdout + result.stderr)
        if result.returncode == 0 and done():
            return events
    raise AssertionError(f"not everything archived after {passes} passes")


def assert_no_duplicates(deployment: Deployment) -> None:
    """One manifest per session, nothing re-archived, no temp file left."""
    manifests = sorted(deployment.evidence.rglob("manifest.json"))
    assert len(manifests) == len({path.parent for path in manifests})
    assert not [path for path in deployment.evidence.rglob("*") if path.name == "rearchived"]
    assert list((deployment.evidence / ".incoming").iterdir()) == []


@pytest.mark.slow
def test_perfecto_and_devrev_archive_everything_through_faults(
    perfecto_sim_factory: PerfectoFactory,
    devrev_sim_factory: DevRevFactory,
    tmp_path: Path,
) -> None:
    perfecto_faults = faults(20240601, rate=0.35)
    devrev_faults = faults(77, kinds=ALL_KINDS - {"empty_page"})
    perfecto = small_sim(
        perfecto_sim_factory, executions=10, page_size=3, unfinished=2, faults=perfecto_faults
    )
    devrev = devrev_sim_factory(token=DEVREV_TOKEN, sessions=12, unfinished=2, faults=devrev_faults)
    processing = {execution.id for execution in perfecto.executions[:2]}
    complete = {execution.id for execution in perfecto.executions} - processing
    recording = {s for s in mobile_sessions(devrev) if devrev.is_unfinished(s)}
    devrev_complete = mobile_sessions(devrev) - recording
    assert recording and devrev_complete
    deployment = write_config(
        tmp_path,
        perfecto_url=perfecto.api_url,
        devrev_url=devrev.api_url,
        devrev={"limit": 4},
        http=FAULTY_HTTP,
    )
    scan = SecretScan()

    def done() -> bool:
        return (
            set(deployment.manifests()) == complete
            and set(deployment.manifests("devrev")) == devrev_complete
        )

    events = run_passes(deployment, scan, done)

    injected = perfecto_faults.counts() + devrev_faults.counts()
    assert len(injected) >= 6, injected  # each kind alone: test_each_fault_kind_alone
    # Exactly once: one session_archived event and one manifest per complete session.
    assert sorted(events) == sorted(
        [("perfecto", s) for s in complete] + [("devrev", s) for s in devrev_complete]
    )
    for manifest in deployment.manifests().values():
        deployment.verify_manifest(manifest)
        assert_matches_simulator(perfecto, manifest)
    for manifest in deployment.manifests("devrev").values():
        deployment.verify_manifest(manifest)
        assert_devrev_matches(devrev, manifest)
        verify_recording_json(deployment.root, devrev, manifest)
    assert_no_duplicates(deployment)
    rows = state_rows(deployment)
    assert {rows[("perfecto", s)] for s in processing} == {"pending"}
    assert {rows[("devrev", s)] for s in recording} == {"pending"}
    scan.add_tree(tmp_path)
    scan.assert_clean()

    # Once the held-back sessions finish they are archived too, still through faults.
    perfecto.finish_all()
    devrev.finish_all()
    events = run_passes(
        deployment,
        scan,
        lambda: (
            set(deployment.manifests()) == complete | processing
            and set(deployment.manifests("devrev")) == mobile_sessions(devrev)
        ),
    )
    assert sorted(events) == sorted(
        [("perfecto", s) for s in processing] + [("devrev", s) for s in recording]
    )
    for manifest in deployment.manifests().values():
        deployment.verify_manifest(manifest)
    assert_no_duplicates(deployment)
    scan.add_tree(tmp_path)
    scan.assert_clean()


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(ALL_KINDS))
def test_each_fault_kind_alone(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path, kind: str
) -> None:
    plan = faults(len(kind), rate=0.5, kinds={kind})
    sim = small_sim(perfecto_sim_factory, executions=4, page_size=2, unfinished=1, faults=plan)
    complete = {execution.id for execution in sim.executions[1:]}
    deployment = write_config(tmp_path, perfecto_url=sim.api_url, http=FAULTY_HTTP)
    scan = SecretScan()

    # Listing requests carry the pass's time window, so which of them draw a fault changes
    # from run to run: passes go on until the fault has been served at least once.
    events = run_passes(
        deployment,
        scan,
        lambda: set(deployment.manifests()) == complete and plan.counts()[kind] > 0,
    )

    assert plan.counts()[kind] > 0
    assert sorted(events) == sorted(("perfecto", s) for s in complete)
    for manifest in deployment.manifests().values():
        deployment.verify_manifest(manifest)
        assert_matches_simulator(sim, manifest)
    assert_no_duplicates(deployment)
    assert state_rows(deployment)[("perfecto", sim.executions[0].id)] == "pending"
    scan.add_tree(tmp_path)
    scan.assert_clean()


@pytest.mark.slow
def test_faults_beyond_the_retry_budget_heal_over_later_passes(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    # Up to 8 failures in a row: more than one call's 3 attempts, so some sessions and
    # some listings fail in a pass and are picked up again by the next.
    plan = faults(5, rate=0.3, max_in_a_row=8, kinds=ALL_KINDS - {"stall"})
    sim = small_sim(perfecto_sim_factory, executions=6, page_size=2, faults=plan)
    deployment = write_config(
        tmp_path,
        perfecto_url=sim.api_url,
        http={**FAULTY_HTTP, "attempts": 3},
        engine={"max_attempts": 20},
    )
    scan = SecretScan()
    outcomes: list[int] = []

    def done() -> bool:
        return set(deployment.manifests()) == {e.id for e in sim.executions}

    events: list[tuple[str, str]] = []
    for number in range(10):
        result = run_archiver("run", "--once", config=deployment.config, timeout=240)
        scan.add_result(f"pass {number}", result)
        outcomes.append(result.returncode)
        events += archived_events(result.stdout + result.stderr)
        if result.returncode == 0 and done():
            break
    assert done(), outcomes
    assert 1 in outcomes, "the faults never got through a call's retries"
    assert sorted(events) == sorted(("perfecto", e.id) for e in sim.executions)
    for manifest in deployment.manifests().values():
        deployment.verify_manifest(manifest)
        assert_matches_simulator(sim, manifest)
    assert_no_duplicates(deployment)
    scan.add_tree(tmp_path)
    scan.assert_clean()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: connections to it are refused


def test_refused_port_fails_that_source_only(
    devrev_sim_factory: DevRevFactory, tmp_path: Path
) -> None:
    devrev = devrev_sim_factory(token=DEVREV_TOKEN, sessions=5)
    deployment = write_config(
        tmp_path,
        perfecto_url=f"http://127.0.0.1:{closed_port()}",
        devrev_url=devrev.api_url,
        http={"attempts": 3},
    )

    result = run_archiver("run", "--once", config=deployment.config)

    assert result.returncode == 1
    failure = next(
        json.loads(line) for line in result.stderr.splitlines() if "source_pass_failed" in line
    )
    assert failure["source"] == "perfecto"
    assert "Perfecto: request to http://127.0.0.1:" in failure["error"]
    assert "Cannot connect" in failure["error"] or "refused" in failure["error"]
    assert set(deployment.manifests("devrev")) == mobile_sessions(devrev)
    assert not (deployment.evidence / "perfecto").exists()
    assert list((deployment.evidence / ".incoming").iterdir()) == []
    scan = SecretScan()
    scan.add_result("run", result)
    scan.add_tree(tmp_path)
    scan.assert_clean()
