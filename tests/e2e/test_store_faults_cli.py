"""End to end: a filesystem store that fills up or cannot be written.

Either way the sessions hit fail with an error that says why and where, no manifest is
written for them, no temp file stays behind, and once the store is usable again the next
pass archives them.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.test_faults_cli import assert_no_duplicates, state_rows
from tests.e2e.test_perfecto_cli import assert_matches_simulator
from tests.support.cli import ARCHIVER, TOKEN, Deployment, archiver_env, run_archiver, write_config
from tests.support.secrets import SecretScan
from tests.support.simulators import PerfectoFactory

KIB = 1024
CLEAN_AT_START = {"cleanup_incomplete_after_seconds": 0}
PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def run_limited(
    deployment: Deployment, preexec: Callable[[], None]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ARCHIVER), "--config", str(deployment.config), "run", "--once"],
        env=archiver_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        preexec_fn=preexec,
    )


def file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def without_dac_override() -> None:
    """Root ignores file modes; dropped from the bounding set, the exec'd child does not."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs at tmp_path/evidence; skipped where mounting is not allowed."""
    mountpoint = tmp_path / "evidence"
    mountpoint.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: the ENOSPC test needs a small tmpfs")
    mounted = subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=1m,mode=0750",
            f"archiver-{uuid.uuid4().hex[:8]}",
            str(mountpoint),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def events(output: str, name: str) -> list[dict[str, object]]:
    found = []
    for line in output.splitlines():
        if f'"{name}"' in line:
            found.append(json.loads(line))
    return found


def assert_failed_cleanly(
    deployment: Deployment, result: subprocess.CompletedProcess[str], reason: str
) -> set[str]:
    """Exit 1, the reason and the store named; a failed session has no manifest, or (its
    ledger entry found no room after the manifest did) a manifest whose every object is
    stored: the next pass records it."""
    assert result.returncode == 1, result.stderr[-3000:]
    failures = events(result.stderr, "session_failed")
    assert failures, result.stderr[-3000:]
    for failure in failures:
        assert reason in str(failure["error"]), failure
        assert f"file://{deployment.evidence}" in str(failure["error"]), failure
    failed = {str(failure["session_id"]) for failure in failures}
    assert failed - set(deployment.manifests()), "every failed session has a manifest"
    for manifest in deployment.manifests().values():
        deployment.verify_manifest(manifest)
    # A temp file may outlive a write cut short by a full disk; the next start removes it
    # (assert_all_archived_later checks .incoming is empty then).
    rows = state_rows(deployment)
    assert {rows[("perfecto", session_id)] for session_id in failed} == {"failed"}
    return failed


def assert_all_archived_later(
    deployment: Deployment, sim_ids: set[str], result: subprocess.CompletedProcess[str]
) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(deployment.manifests()) == sim_ids
    assert_no_duplicates(deployment)


def test_store_full_fails_sessions_then_archives_when_space_returns(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path, tiny_tmpfs: Path
) -> None:
    sim = perfecto_sim_factory(
        token=TOKEN, executions=4, video_size=384 * KIB, artifact_size=8 * KIB
    )
    deployment = write_config(tmp_path, perfecto_url=sim.api_url, engine=CLEAN_AT_START)
    scan = SecretScan()

    first = run_archiver("run", "--once", config=deployment.config)
    scan.add_result("full", first)

    assert_failed_cleanly(deployment, first, "no space left on device (the store is full)")
    subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_tmpfs)], check=True)
    second = run_archiver("run", "--once", config=deployment.config)
    scan.add_result("freed", second)
    assert_all_archived_later(deployment, {e.id for e in sim.executions}, second)
    for manifest in deployment.manifests().values():
        deployment.verify_manifest(manifest)
        assert_matches_simulator(sim, manifest)
    scan.add_tree(tmp_path)
    scan.assert_clean()


def test_file_size_limit_fails_sessions_then_archives_without_it(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    # Works without privileges: RLIMIT_FSIZE makes writes past 256 KiB fail (EFBIG).
    sim = perfecto_sim_factory(
        token=TOKEN, executions=4, video_size=384 * KIB, artifact_size=8 * KIB
    )
    deployment = write_config(tmp_path, perfecto_url=sim.api_url, engine=CLEAN_AT_START)

    first = run_limited(deployment, file_size_limit(256 * KIB))

    failed = assert_failed_cleanly(deployment, first, "file too large")
    assert failed == {e.id for e in sim.executions}  # every execution has a video
    second = run_archiver("run", "--once", config=deployment.config)
    assert_all_archived_later(deployment, {e.id for e in sim.executions}, second)


def test_unwritable_store_folder_fails_sessions_then_archives_once_writable(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    sim = perfecto_sim_factory(token=TOKEN, executions=3, video_size=8 * KIB, artifact_size=8 * KIB)
    deployment = write_config(tmp_path, perfecto_url=sim.api_url, engine=CLEAN_AT_START)
    (deployment.evidence / ".incoming").mkdir(parents=True)
    for folder in (deployment.evidence / ".incoming", deployment.evidence):
        folder.chmod(0o500)
    try:
        first = run_limited(deployment, without_dac_override)
    finally:
        for folder in (deployment.evidence, deployment.evidence / ".incoming"):
            folder.chmod(0o700)

    failed = assert_failed_cleanly(deployment, first, "permission denied")
    assert failed == {e.id for e in sim.executions}
    second = run_archiver("run", "--once", config=deployment.config)
    assert_all_archived_later(deployment, {e.id for e in sim.executions}, second)
