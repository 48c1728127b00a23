"""End to end: SIGTERM to the installed daemon in the middle of a pass against a slow vendor.

The sessions under way when the signal arrives finish within the grace period; nothing
half-archived is left; the process exits 0 with structured log lines only.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from archiver_sim.requestlog import SimRequest
from tests.support.cli import ARCHIVER, TOKEN, archiver_env, run_archiver, write_config
from tests.support.simulators import PerfectoFactory

KIB = 1024
GRACE_SECONDS = 30
EXECUTIONS = 12


def test_sigterm_mid_pass_lets_sessions_in_flight_finish(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    sim = perfecto_sim_factory(
        token=TOKEN,
        executions=EXECUTIONS,
        video_size=48 * KIB,
        artifact_size=8 * KIB,
        latency_seconds=0.5,  # every answer, API and files alike
    )
    deployment = write_config(
        tmp_path,
        perfecto_url=sim.api_url,
        engine={"interval_seconds": 3600, "shutdown_grace_seconds": GRACE_SECONDS},
        perfecto={"session_concurrency": 2},
    )
    daemon = subprocess.Popen(
        [str(ARCHIVER), "run", "--config", str(deployment.config)],
        env=archiver_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not downloading(sim.requests("files")):
            assert daemon.poll() is None, daemon.communicate()[1]
            assert time.monotonic() < deadline, "no download started"
            time.sleep(0.05)
        in_flight = downloading(sim.requests("files"))
        daemon.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        _, stderr = daemon.communicate(timeout=GRACE_SECONDS + 30)
        stopped_after = time.monotonic() - signalled
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()

    assert daemon.returncode == 0, stderr
    assert stopped_after < GRACE_SECONDS, stopped_after
    events = [json.loads(line) for line in stderr.splitlines()]  # JSON lines, no traceback
    names = [event["event"] for event in events]
    assert "stopping" in names and "daemon_stopped" in names
    assert "grace_period_over" not in names and "pass_cancelled" not in names

    manifests = deployment.manifests()
    assert in_flight <= set(manifests), (in_flight, sorted(manifests))
    assert len(manifests) < EXECUTIONS  # the daemon stopped starting sessions
    for manifest in manifests.values():
        deployment.verify_manifest(manifest)
    verified = run_archiver("verify", config=deployment.config)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def downloading(requests: list[SimRequest]) -> set[str]:
    """The executions whose files have been asked for: ``/files/<execution id>/<name>``."""
    found = set()
    for request in requests:
        parts = request.path.split("/")
        if len(parts) > 3 and parts[1] == "files":
            found.add(parts[2])
    return found
