"""End to end: the installed daemon speaks systemd's notify protocol to a real socket.

READY=1 only once the start-up checks have passed (a bad configuration never says it),
STATUS after each pass, WATCHDOG=1 at the pace systemd asks for, STOPPING=1 on SIGTERM.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import ARCHIVER, TOKEN, archiver_env, run_archiver, write_config
from tests.support.simulators import PerfectoFactory

KIB = 1024


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(30)
        yield path, sock


def next_message(sock: socket.socket, wanted: str) -> str:
    """The next message containing ``wanted``, skipping others (watchdog pings)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        message = sock.recv(4096).decode()
        if wanted in message:
            return message
    raise AssertionError(f"no {wanted!r} message")


def test_the_daemon_notifies_ready_status_watchdog_and_stopping(
    perfecto_sim_factory: PerfectoFactory, tmp_path: Path, notify_socket: tuple[str, socket.socket]
) -> None:
    path, sock = notify_socket
    sim = perfecto_sim_factory(token=TOKEN, executions=3, video_size=8 * KIB, artifact_size=KIB)
    deployment = write_config(tmp_path, perfecto_url=sim.api_url, engine={"interval_seconds": 3600})
    env = archiver_env(NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")  # a ping every 0.2 s
    daemon = subprocess.Popen(
        [str(ARCHIVER), "run", "--config", str(deployment.config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert next_message(sock, "READY=1").startswith("READY=1\nSTATUS=started")
        status = next_message(sock, "STATUS=last pass")
        assert "3 archived, 0 failed" in status
        pings = 0
        while pings < 3:  # the loop keeps feeding the watchdog between passes
            pings += next_message(sock, "WATCHDOG=1") == "WATCHDOG=1"
        daemon.send_signal(signal.SIGTERM)
        assert next_message(sock, "STOPPING=1").startswith("STOPPING=1\nSTATUS=stopping")
        _, stderr = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    assert daemon.returncode == 0, stderr


def test_a_bad_configuration_never_says_ready(
    tmp_path: Path, notify_socket: tuple[str, socket.socket]
) -> None:
    path, sock = notify_socket
    config = tmp_path / "bad.toml"
    config.write_text('[store]\nurl = "file://evidence/x"\n[state]\nurl = "sqlite:///s.db"\n')
    result = run_archiver("run", config=config, env=archiver_env(NOTIFY_SOCKET=path))
    assert result.returncode == 78
    sock.settimeout(0.5)
    with pytest.raises(TimeoutError):
        sock.recv(4096)
