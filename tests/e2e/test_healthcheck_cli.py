"""End to end: ``archiver healthcheck`` (the image's HEALTHCHECK) asks the running daemon."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.cli import ARCHIVER, TOKEN, Deployment, archiver_env, run_archiver, write_config
from tests.support.simulators import PerfectoFactory


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running(deployment: Deployment, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("w") as output:
        daemon = subprocess.Popen(
            [str(ARCHIVER), "run", "--config", str(deployment.config)],
            env=archiver_env(),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield daemon
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)


def until(deployment: Deployment, *args: str, code: int) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + 30
    while True:
        result = run_archiver("healthcheck", *args, config=deployment.config)
        if result.returncode == code or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_healthcheck_follows_the_daemon(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path
) -> None:
    sim = perfecto_sim_factory(token=TOKEN, executions=3)
    port = free_port()
    deployment = write_config(
        tmp_path,
        perfecto_url=sim.api_url,
        engine={"interval_seconds": 3600},
        # A wildcard address, as in a container: the check asks loopback.
        extra=f'\n[metrics]\nlisten = "0.0.0.0:{port}"\n',
    )
    with running(deployment, tmp_path / "daemon.log"):
        healthy = until(deployment, code=0)
        assert (healthy.returncode, healthy.stdout.strip()) == (0, "ok"), healthy.stderr
        ready = until(deployment, "--ready", code=0)
        assert (ready.returncode, ready.stdout.strip()) == (0, "ready"), ready.stderr

    gone = run_archiver("healthcheck", config=deployment.config)
    assert gone.returncode == 1
    assert f"http://127.0.0.1:{port}/healthz: no answer" in gone.stderr


def test_ready_fails_naming_the_check_while_a_source_cannot_pass(tmp_path: Path) -> None:
    port = free_port()
    deployment = write_config(
        tmp_path,
        perfecto_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        engine={"interval_seconds": 3600},
        http={"attempts": 1},
        extra=f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n',
    )
    with running(deployment, tmp_path / "daemon.log"):
        assert until(deployment, code=0).returncode == 0
        not_ready = run_archiver("healthcheck", "--ready", config=deployment.config)

    assert not_ready.returncode == 1
    assert "HTTP 503 not ready (failed: source:perfecto)" in not_ready.stderr


def test_healthcheck_without_endpoints_fails_and_says_why(tmp_path: Path) -> None:
    deployment = write_config(tmp_path, perfecto_url="http://127.0.0.1:9")

    result = run_archiver("healthcheck", config=deployment.config, env={"PATH": "/usr/bin"})

    assert result.returncode == 1
    assert "[metrics] listen is not set" in result.stderr
