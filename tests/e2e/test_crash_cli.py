"""End to end: ``archiver`` killed with SIGKILL at random moments, restarted each time.

Whatever moment the kill lands on (start-up, listing, mid-download, between the manifest
and the state row, idle in the daemon), the next start carries on: in the end every
complete session is archived exactly once, every manifest lists only objects stored with
their exact bytes, and no temp file outlives the next start.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.test_faults_cli import assert_no_duplicates, state_rows
from tests.e2e.test_perfecto_cli import assert_matches_simulator
from tests.support.cli import ARCHIVER, TOKEN, archiver_env, run_archiver, write_config
from tests.support.secrets import SecretScan
from tests.support.simulators import PerfectoFactory

KIB = 1024
KILLS = 20
TIME_BUDGET = 90.0


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    rng = random.Random(20240611)
    sim = perfecto_sim_factory(
        token=TOKEN,
        executions=64,
        unfinished=2,
        video_size=1536 * KIB,
        artifact_size=128 * KIB,
        screenshot_size=32 * KIB,
    )
    processing = {execution.id for execution in sim.executions[:2]}
    complete = {execution.id for execution in sim.executions} - processing
    deployment = write_config(
        tmp_path,
        perfecto_url=sim.api_url,
        engine={
            "download_concurrency": 1,
            "interval_seconds": 1,
            "cleanup_incomplete_after_seconds": 0,
        },
        perfecto={"session_concurrency": 1},
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    first_seen: dict[str, bytes] = {}  # a manifest, once written, never changes
    kills = runs = kills_mid_work = 0
    deadline = time.monotonic() + TIME_BUDGET
    while kills < KILLS and time.monotonic() < deadline:
        command = [str(ARCHIVER), "--config", str(deployment.config), "run"]
        if runs % 2 == 0:
            command.append("--once")
        with (logs / f"{runs:03d}.log").open("w") as log:
            process = subprocess.Popen(
                command, env=archiver_env(), stdout=log, stderr=subprocess.STDOUT
            )
            try:
                code = process.wait(timeout=rng.uniform(0.3, 1.5))
                assert code in (0, 1), (logs / f"{runs:03d}.log").read_text()[-2000:]
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                kills_mid_work += len(deployment.manifests()) < len(complete)
        runs += 1
        for path in deployment.evidence.glob("perfecto/*/manifest.json"):
            data = path.read_bytes()
            assert first_seen.setdefault(path.parent.name, data) == data, path

    assert kills >= KILLS, f"only {kills} kills in {runs} runs"
    final = run_archiver("run", "--once", config=deployment.config)

    assert final.returncode == 0, final.stderr[-3000:]
    manifests = deployment.manifests()
    assert set(manifests) == complete
    assert kills_mid_work >= KILLS // 4, kills_mid_work  # kills landed mid-work too
    for session_id, manifest in manifests.items():
        deployment.verify_manifest(manifest)
        assert_matches_simulator(sim, manifest)
        if session_id in first_seen:
            assert (
                deployment.evidence / "perfecto" / session_id / "manifest.json"
            ).read_bytes() == first_seen[session_id]
    assert_no_duplicates(deployment)  # includes: no temp file left in .incoming
    rows = state_rows(deployment)
    assert {rows[("perfecto", s)] for s in complete} == {"archived"}
    assert {rows[("perfecto", s)] for s in processing} == {"pending"}
    scan = SecretScan()
    scan.add_result("final", final)
    scan.add_tree(tmp_path)
    scan.assert_clean()
