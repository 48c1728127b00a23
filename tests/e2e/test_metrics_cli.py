"""End to end: the installed daemon with ``[metrics] listen`` serves /metrics, /healthz and
/readyz while it archives from the Perfecto simulator."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import ARCHIVER, TOKEN, Deployment, archiver_env, write_config
from tests.support.simulators import PerfectoFactory

KIB = 1024
EXECUTIONS = 5


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get(url: str) -> Answer:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return Answer(response.status, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read())


def sample(exposition: str, name: str, **labels: str) -> float | None:
    """The value of one sample, e.g. ``sample(text, "x_total", source="perfecto")``."""
    for line in exposition.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        found_name, _, label_text = series.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if found_name == name and found == labels:
            return float(value)
    return None


@dataclass
class RunningDaemon:
    process: subprocess.Popen[str]
    base_url: str
    deployment: Deployment
    log: Path

    def scrape(self) -> str:
        answer = get(f"{self.base_url}/metrics")
        assert answer.status == 200
        return answer.body.decode()

    def wait_for(self, name: str, value: float, timeout: float = 120, **labels: str) -> str:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                text = self.scrape()
            except OSError:
                text = ""  # not listening yet
            if sample(text, name, **labels) == value:
                return text
            assert time.monotonic() < deadline, f"{name}{{{labels}}} never became {value}"
            time.sleep(0.1)


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
    log = tmp_path / "daemon.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(ARCHIVER), "run", "--config", str(deployment.config)],
            env=archiver_env(),
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    running = RunningDaemon(process, f"http://127.0.0.1:{port}", deployment, log)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


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
    assert {check["name"] for check in ready.json()["checks"]} == {"startup", "source:perfecto"}

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
