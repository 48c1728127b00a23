"""End to end: the installed daemon with ``[metrics] listen`` serves /metrics, /healthz and
/readyz while it archives from the Perfecto simulator."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import TOKEN, write_config
from tests.support.endpoints import RunningDaemon, free_port, get, running_daemon, sample
from tests.support.simulators import PerfectoFactory

KIB = 1024
EXECUTIONS = 5


@pytest.fixture
def daemon(perfecto_sim_factory: PerfectoFactory, tmp_path: Path) -> Iterator[RunningDaemon]:
    sim = perfecto_sim_factory(
        token=TOKEN, executions=EXECUTIONS, video_size=16 * KIB, artifact_size=4 * KIB
    )
    port = free_port()
    deployment = write_config(
        tmp_path,
        perfecto_url=sim.api_url,
        engine={"interval_seconds": 3600},
        extra=f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n',
    )
    with running_daemon(deployment, port, tmp_path / "daemon.log") as running:
        yield running


def test_metrics_count_the_sessions_archived(daemon: RunningDaemon) -> None:
    text = daemon.wait_for("archiver_passes_total", 1, source="perfecto", result="ok")

    archived = len(daemon.deployment.manifests())
    assert archived == EXECUTIONS
    assert sample(text, "archiver_sessions_archived_total", source="perfecto") == archived
    ledger = sorted((daemon.deployment.evidence / "ledger").glob("*.json"))
    assert sample(text, "archiver_ledger_head_sequence") == int(ledger[-1].stem)
    assert (sample(text, "archiver_artifacts_archived_total", source="perfecto") or 0) > archived
    assert (
        sample(text, "archiver_vendor_requests_total", vendor="perfecto", status_class="2xx") or 0
    ) > archived
    assert (
        sample(text, "archiver_last_pass_success_timestamp_seconds", source="perfecto") or 0
    ) > time.time() - 120
    assert sample(text, "archiver_store_bytes_in_flight") == 0
    assert "session_id" not in text


def test_health_and_readiness_answer_json(daemon: RunningDaemon) -> None:
    daemon.wait_for("archiver_passes_total", 1, source="perfecto", result="ok")

    health = get(f"{daemon.base_url}/healthz")
    assert health.status == 200
    assert health.json()["status"] == "ok"
    ready = get(f"{daemon.base_url}/readyz")
    assert ready.status == 200, ready.body
    assert ready.json()["failed"] == []
    assert {check["name"] for check in ready.json()["checks"]} == {
        "startup",
        "store",
        "source:perfecto",
    }

    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=30) == 0


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_metrics(daemon: RunningDaemon) -> None:
    text = daemon.wait_for("archiver_passes_total", 1, source="perfecto", result="ok")

    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""
