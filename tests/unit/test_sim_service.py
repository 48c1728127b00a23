"""``python -m archiver_sim.service``: the simulators as a service of their own, on fixed
ports, with links that name the host the clients reach them by (contrib/compose)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archiver_sim.perfecto import EXECUTIONS_PATH
from archiver_sim.service import api_ports

PERFECTO_TOKEN = "perfecto-service-token"
DEVREV_TOKEN = "devrev-service-token"
STARTUP_SECONDS = 30


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports free on loopback right now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first + count > 65535:
            continue
        sockets = []
        try:
            for port in range(first, first + count):
                held = socket.socket()
                sockets.append(held)
                held.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for held in sockets:
                held.close()
    raise RuntimeError(f"no {count} consecutive free ports")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    first = free_ports(4)
    expected = tmp_path / "expected.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "archiver_sim.service",
            "--host",
            "127.0.0.1",
            "--public-host",
            "localhost",
            "--port",
            str(first),
            "--perfecto-executions",
            "5",
            "--devrev-sessions",
            "9",
            "--latency",
            "0",
            "--expected",
            str(expected),
        ],
        env={**os.environ, "PERFECTO_TOKEN": PERFECTO_TOKEN, "DEVREV_TOKEN": DEVREV_TOKEN},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once every origin listens
        assert line.startswith("serving Perfecto at http://localhost:"), line
        yield first, expected
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STARTUP_SECONDS) == 0
        if process.stdout is not None:
            process.stdout.close()


def get_json(url: str, headers: dict[str, str], body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=STARTUP_SECONDS) as response:
        return json.load(response)


def test_it_serves_both_vendors_on_their_ports_with_their_tokens(
    service: tuple[int, Path],
) -> None:
    first, expected_file = service
    ports = api_ports(first)
    expected = json.loads(expected_file.read_text())
    perfecto = f"http://127.0.0.1:{ports['perfecto']}"

    listed = get_json(perfecto + EXECUTIONS_PATH, {"Perfecto-Authorization": PERFECTO_TOKEN})
    assert sorted(item["id"] for item in listed["resources"]) == expected["perfecto"]
    videos = [video for item in listed["resources"] for video in item["videos"]]
    assert videos, "the simulated executions have videos"
    for video in videos:  # the files origin, by the public host name
        assert video["downloadUrl"].startswith(f"http://localhost:{ports['perfecto'] + 1}/")
    with pytest.raises(urllib.error.HTTPError) as refused:
        get_json(perfecto + EXECUTIONS_PATH, {"Perfecto-Authorization": DEVREV_TOKEN})
    refused.value.close()
    assert refused.value.code == 401

    devrev = f"http://127.0.0.1:{ports['devrev']}/observability.sessions.list"
    query = {"version_key": "com.example.shop", "type": "mobile", "limit": 100}
    sessions = get_json(devrev, {"Authorization": f"Bearer {DEVREV_TOKEN}"}, query)
    listed_ids = sorted(session["session_id"] for session in sessions["sessions"])
    assert listed_ids == expected["devrev"]
    assert 0 < len(expected["devrev"]) < 9, "only the mobile sessions of the one app"
