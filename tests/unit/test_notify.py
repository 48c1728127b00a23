"""systemd notifications over a real datagram socket, as systemd would receive them."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archiver.daemon import status_line
from archiver.engine import PassReport
from archiver.notify import MAX_STATUS, SystemdNotifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        yield path, sock


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_messages_reach_the_socket(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    notifier.ready("started")
    notifier.status("last pass\nwith a newline")
    notifier.watchdog()
    notifier.stopping("stopping")
    assert [received(sock) for _ in range(4)] == [
        "READY=1\nSTATUS=started",
        "STATUS=last pass with a newline",
        "WATCHDOG=1",
        "STOPPING=1\nSTATUS=stopping",
    ]


def test_an_abstract_socket_name_starts_with_a_nul_byte() -> None:
    name = f"archiver-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
        assert received(sock) == "WATCHDOG=1"


def test_a_long_status_is_cut_to_one_short_line(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    SystemdNotifier({"NOTIFY_SOCKET": path}).status("x" * 1000)
    assert received(sock) == "STATUS=" + "x" * MAX_STATUS


def test_without_systemd_nothing_is_sent_and_nothing_fails(tmp_path: Path) -> None:
    assert not SystemdNotifier({}).enabled
    SystemdNotifier({}).ready("started")
    SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).ready("started")  # dropped


@pytest.mark.parametrize(
    ("environ", "seconds"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_period_is_systemd_s(environ: dict[str, str], seconds: float | None) -> None:
    assert SystemdNotifier(environ).watchdog_seconds == seconds


def test_the_status_line_names_the_failing_sources() -> None:
    report = PassReport(archived=3, pending=1)
    report.failed.append("perfecto session x: HTTP 404")
    report.source_errors += ["devrev: HTTP 401 from DevRev", "ekran: cannot connect"]
    line = status_line(report, datetime(2026, 12, 2, 9, 41, 2, tzinfo=UTC))
    assert line == (
        "last pass 2026-12-02 09:41:02Z: 3 archived, 1 failed, 1 held back; "
        "failing sources: devrev, ekran"
    )
