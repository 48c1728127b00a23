"""End to end: ``archiver status`` through the installed CLI, with no vendor token in its
environment, after a pass and beside a running daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from archiver_sim.faults import FaultPlan
from tests.support.cli import (
    ARCHIVER,
    TOKEN,
    Deployment,
    archiver_env,
    run_archiver,
    write_config,
)
from tests.support.simulators import PerfectoFactory

KIB = 1024
EXECUTIONS = 6
PROCESSING = 2


def without_tokens() -> dict[str, str]:
    """The environment of an operator's shell: no ARCHIVER_* and no vendor token."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ARCHIVER_") and not key.endswith("_TOKEN")
    }


def status(deployment: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return run_archiver("status", *args, config=deployment.config, env=without_tokens())


def ledger_entries(deployment: Deployment) -> list[Path]:
    return sorted((deployment.evidence / "ledger").glob("*.json"))


def test_status_shows_archived_held_back_failing_and_the_retention_race(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    probe = perfecto_sim_factory(token=TOKEN, executions=EXECUTIONS)
    # The oldest execution's video never downloads: it fails on every pass.
    oldest = probe.executions[-1]
    video = next(file for file in probe.files(oldest.id) if file.kind == "video")
    broken_path = urlsplit(probe.url(video)).path
    sim = perfecto_sim_factory(
        token=TOKEN,
        executions=EXECUTIONS,
        unfinished=PROCESSING,
        video_size=8 * KIB,
        artifact_size=2 * KIB,
        faults=FaultPlan(rate=1.0, kinds={"503"}, paths=(broken_path,), max_in_a_row=10**6),
    )
    deployment = write_config(
        tmp_path,
        perfecto_url=sim.api_url,
        http={"attempts": 2},
        # Six hours at most since the oldest started: fewer than 0.9 of 1 day left.
        perfecto={"retention_days": 1, "retention_warn_days": 0.9},
    )
    assert run_archiver("run", "--once", config=deployment.config).returncode == 1

    text = status(deployment)
    as_json = status(deployment, "--json")

    assert text.returncode == 1, text.stderr
    assert as_json.returncode == 1, as_json.stderr
    report: dict[str, Any] = json.loads(as_json.stdout)
    archived = len(deployment.manifests())
    assert archived == EXECUTIONS - PROCESSING - 1
    assert report["healthy"] is False
    (perfecto,) = report["sources"]
    assert perfecto["enabled"] is True
    assert perfecto["archived"] == {"total": archived, "last_24h": archived}
    assert perfecto["held_back"] == PROCESSING
    assert perfecto["failing"]["count"] == 1
    assert oldest.id in perfecto["failing"]["newest_error"]
    assert "503" in perfecto["failing"]["newest_error"]
    assert perfecto["last_pass"]["ok"] is True
    assert perfecto["watermark"] is not None
    waiting = perfecto["oldest_unarchived"]
    assert waiting["session_id"] == oldest.id
    age_days = (time.time() - oldest.start_ms / 1000) / 86400
    assert abs(waiting["days_left"] - (1 - age_days)) < 0.01
    entries = ledger_entries(deployment)
    assert report["ledger_head"]["seq"] == len(entries) - 1
    verified = run_archiver("verify", config=deployment.config, env=without_tokens())
    assert f"head {len(entries) - 1}:{report['ledger_head']['sha256']}" in verified.stdout
    assert any("1 session(s) failing" in reason for reason in report["attention"])
    assert any(f"session {oldest.id} is not archived" in reason for reason in report["attention"])

    assert "perfecto  enabled" in text.stdout
    assert f"{archived:,} in all, {archived:,} in the last 24 h" in text.stdout
    assert f"{oldest.id}, started" in text.stdout and "WARNING" in text.stdout
    assert "needs attention:" in text.stdout
    assert TOKEN not in text.stdout + as_json.stdout + text.stderr


def test_status_beside_a_running_daemon_is_healthy_once_everything_is_archived(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    sim = perfecto_sim_factory(
        token=TOKEN, executions=EXECUTIONS, video_size=8 * KIB, artifact_size=2 * KIB
    )
    deployment = write_config(tmp_path, perfecto_url=sim.api_url, engine={"interval_seconds": 3600})
    log = tmp_path / "daemon.log"
    with log.open("w") as output:
        daemon = subprocess.Popen(
            [str(ARCHIVER), "run", "--config", str(deployment.config)],
            env=archiver_env(),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        report: dict[str, Any] = {}
        while time.monotonic() < deadline:
            assert daemon.poll() is None, log.read_text()[-2000:]
            answer = status(deployment, "--json")
            if answer.returncode == 0:
                report = json.loads(answer.stdout)
                break
            time.sleep(0.2)
        assert report, "status never said healthy"
        assert daemon.poll() is None  # status took no lock the daemon needs

        text = status(deployment)
        assert text.returncode == 0, text.stdout + text.stderr
        assert "healthy: nothing needs attention" in text.stdout
        assert "none: every complete session is archived" in text.stdout
        (perfecto,) = report["sources"]
        assert perfecto["archived"]["total"] == EXECUTIONS == len(deployment.manifests())
        assert perfecto["oldest_unarchived"] is None and perfecto["failing"]["count"] == 0
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0


def test_status_without_a_state_says_so(tmp_path: Path) -> None:
    deployment = write_config(tmp_path, perfecto_url="http://127.0.0.1:9")

    result = status(deployment)

    assert result.returncode == 1
    assert "does not exist: the archiver has not run with this state yet" in result.stderr
    assert not (tmp_path / "state.db").exists()
