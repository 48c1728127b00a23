"""The installed daemon with ``[metrics] listen``, and the HTTP helpers to read its endpoints
(and any other local HTTP server's, such as Prometheus's)."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.cli import ARCHIVER, Deployment, archiver_env


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


@contextmanager
def running_daemon(deployment: Deployment, port: int, log: Path) -> Iterator[RunningDaemon]:
    """``archiver run`` with ``deployment``'s config (which listens for metrics on ``port``),
    its output in ``log``; stopped with SIGTERM (then killed) on the way out."""
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(ARCHIVER), "run", "--config", str(deployment.config)],
            env=archiver_env(),
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        yield RunningDaemon(process, f"http://127.0.0.1:{port}", deployment, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
