"""Processes the benchmark starts and measures: the simulator, the archiver, the baselines.

Every measured program runs in a process of its own, so its peak RSS (from ``wait4``) is
its own, and the simulator's work never runs on the measured event loop.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.simserver import simulator_for

ARCHIVER = Path(sys.executable).with_name("archiver")
UNIT_FILE = Path(__file__).resolve().parents[1] / "systemd" / "archiver.service"
SIM_TOKEN = simulator_for({"executions": 0, "video_size": 0}).config.token
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Measured:
    """One measured process: its own timing figures and its peak resident memory."""

    seconds: float
    files: int
    bytes: int
    peak_rss_mib: float
    sessions: int = 0


@dataclass(frozen=True, slots=True)
class Vendor:
    api_url: str
    urls_file: Path
    seen: dict[str, float] = field(default_factory=dict)
    """Once the simulator has stopped, what it counted (API requests, 429s answered)."""

    @property
    def urls(self) -> list[str]:
        return self.urls_file.read_text().split()


@contextmanager
def simulator(workdir: Path, **spec: Any) -> Iterator[Vendor]:
    """A Perfecto simulator process serving ``spec`` (see :mod:`bench.simserver`)."""
    urls_file = workdir / "urls.txt"
    spec_file = workdir / "sim.json"
    bodies = workdir / "bodies"
    bodies.mkdir(exist_ok=True)
    spec = {**spec, "urls_file": str(urls_file), "body_dir": str(bodies)}
    spec_file.write_text(json.dumps(spec))
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.simserver", str(spec_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    vendor: Vendor | None = None
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # written once every body is on disk
        if not line:
            raise RuntimeError("the simulator process did not start")
        os.sync()  # the bodies just written must not be flushed during a measured run
        vendor = Vendor(api_url=json.loads(line)["api"], urls_file=urls_file)
        yield vendor
    finally:
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=10)
            summary = process.stdout.readline().strip() if process.stdout else ""
            if vendor is not None and summary:
                vendor.seen.update(json.loads(summary))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def s3_server() -> Iterator[str]:
    """The S3 API server the tests use (moto standalone), in a subprocess."""
    from tests.support.s3server import running_server

    with (
        tempfile.TemporaryDirectory(prefix="archiver-bench-moto-") as folder,
        running_server(Path(folder) / "server.log") as endpoint,
    ):
        yield endpoint


def measure(command: list[str], env: dict[str, str] | None = None) -> tuple[str, str, float]:
    """Run ``command`` to the end; its stdout, stderr and peak RSS in MiB."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command[:3])}... exited with {process.returncode}:\n{stderr[-3000:]}"
        )
    return stdout, stderr, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def service_environment() -> dict[str, str]:
    """The tuning variables the systemd unit (and the Docker image) give the daemon."""
    found = {}
    for line in UNIT_FILE.read_text().splitlines():
        name, _, value = line.removeprefix("Environment=").partition("=")
        if line.startswith("Environment=") and name != "ARCHIVER_CONFIG":
            found[name] = value
    return found


def run_archiver(config: Path, *, as_deployed: bool = True) -> Measured:
    """One ``archiver run --once``; timing from its own ``pass_finished`` event.

    ``as_deployed``: with the environment the systemd unit sets (see ``service_environment``).
    """
    _, stderr, peak = measure(
        [str(ARCHIVER), "--config", str(config), "run", "--once"],
        env=archiver_environment(as_deployed),
    )
    for line in stderr.splitlines():
        if '"pass_finished"' in line:
            return _pass_measured(json.loads(line), peak, stderr)
    raise RuntimeError(f"no pass_finished event in the archiver's log:\n{stderr[-3000:]}")


@dataclass(frozen=True, slots=True)
class DaemonPass:
    """The daemon's first pass, and what /metrics said while it ran."""

    measured: Measured
    scrapes: int
    artifacts_counted: float | None  # archiver_artifacts_archived_total once the pass ended
    cpu_seconds: float  # the daemon's, user and system, from its start to its exit


def run_daemon_pass(
    config: Path,
    *,
    metrics_url: str | None = None,
    scrape_every: float = 1.0,
    timeout: float = 900.0,
) -> DaemonPass:
    """One ``archiver run`` (the daemon, as deployed) until its first pass ends; then SIGTERM.

    The config must give a long ``engine.interval_seconds``: only the first pass, which
    starts at once, is measured, from its own ``pass_finished`` event. With
    ``metrics_url``, ``/metrics`` is read every ``scrape_every`` seconds, as Prometheus
    would, from the moment the daemon listens until the pass ends, and once more after it.
    """
    with tempfile.TemporaryFile("w+b") as err:
        process = subprocess.Popen(
            [str(ARCHIVER), "--config", str(config), "run"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=archiver_environment(True),
        )
        read, pending, scrapes = 0, b"", 0
        next_scrape: float | None = None
        finished: dict[str, Any] | None = None
        deadline = time.monotonic() + timeout
        try:
            while finished is None:
                chunk = os.pread(err.fileno(), 1 << 20, read)
                read += len(chunk)
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    event = json.loads(line) if line.startswith(b"{") else {}
                    if event.get("event") == "endpoints_listening" and metrics_url:
                        next_scrape = time.monotonic()
                    elif event.get("event") == "pass_finished":
                        finished = event
                if finished is not None:
                    break
                if process.poll() is not None:
                    raise RuntimeError(
                        f"the daemon exited with {process.returncode} before its first pass "
                        f"ended:\n{_tail(err)}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the daemon's first pass took over {timeout:g} s")
                if metrics_url and next_scrape is not None and time.monotonic() >= next_scrape:
                    scrape(metrics_url)
                    scrapes += 1
                    next_scrape += scrape_every
                time.sleep(0.01)
            counted = metric_sum(scrape(metrics_url), ARTIFACTS_COUNTER) if metrics_url else None
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"the daemon exited with {process.returncode}:\n{_tail(err)}")
        measured = _pass_measured(finished, usage.ru_maxrss / 1024, _tail(err))
    return DaemonPass(measured, scrapes, counted, usage.ru_utime + usage.ru_stime)


ARTIFACTS_COUNTER = "archiver_artifacts_archived_total"


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback http)
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")
        text: str = response.read().decode()
    return text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def metric_sum(exposition: str, name: str) -> float | None:
    """The sum of a metric's samples over its labels, None when it has none."""
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith((f"{name} ", f"{name}{{"))
    ]
    return sum(values) if values else None


def _tail(file: Any) -> str:
    file.seek(0)
    text: str = file.read().decode(errors="replace")
    return text[-3000:]


def _pass_measured(event: dict[str, Any], peak: float, log: str) -> Measured:
    if event["failed"] or event["source_errors"]:
        raise RuntimeError(f"the archiver pass failed: {log[-3000:]}")
    return Measured(
        seconds=event["seconds"],
        files=event["artifacts"],
        bytes=event["bytes"],
        peak_rss_mib=peak,
        sessions=event["archived"],
    )


def archiver_environment(as_deployed: bool) -> dict[str, str]:
    """The archiver's environment: the simulator's token, S3 credentials for the S3 API
    server and, ``as_deployed``, the tuning variables of the systemd unit."""
    env = {**os.environ, "PERFECTO_TOKEN": SIM_TOKEN, "AWS_ACCESS_KEY_ID": "bench-key"}
    if as_deployed:
        env.update(service_environment())
    env.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return _without_archiver(env)


def run_baseline(*args: str) -> Measured:
    env = {**os.environ}
    env.setdefault("AWS_ACCESS_KEY_ID", "bench-key")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    stdout, _, peak = measure([sys.executable, "-m", "bench.baselines", *args], env=env)
    result = json.loads(stdout.strip().splitlines()[-1])
    return Measured(
        seconds=result["seconds"], files=result["files"], bytes=result["bytes"], peak_rss_mib=peak
    )


def write_config(
    folder: Path,
    vendor: Vendor,
    *,
    store: dict[str, Any] | None = None,
    engine: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    source: dict[str, Any] | None = None,
) -> Path:
    """An archiver config: the simulator as Perfecto (with ``source``'s extra keys), a file
    store and SQLite in ``folder`` unless ``store`` and ``state`` say otherwise; ``[metrics]``
    only when ``metrics`` is given."""
    tables = {
        "store": store or {"url": f"file://{folder}/evidence"},
        "state": state or {"url": f"sqlite:///{folder}/state.db"},
        "engine": engine or {},
        "log": {"format": "json"},
        **({"metrics": metrics} if metrics is not None else {}),
        "sources.perfecto": {
            "base_url": vendor.api_url,
            "token_env": "PERFECTO_TOKEN",
            "backfill_days": 2,
            "pdf_report": False,
            **(source or {}),
        },
    }
    text = "".join(
        f"[{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())
        for name, values in tables.items()
    )
    config = folder / "archiver.toml"
    config.write_text(text)
    return config


def _without_archiver(env: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in env.items() if not key.startswith("ARCHIVER_")}
