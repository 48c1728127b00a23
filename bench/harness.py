"""Processes the benchmark starts and measures: the simulator, the archiver, the baselines.

Every measured program runs in a process of its own, so its peak RSS (from ``wait4``) is
its own, and the simulator's work never runs on the measured event loop.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # written once every body is on disk
        if not line:
            raise RuntimeError("the simulator process did not start")
        os.sync()  # the bodies just written must not be flushed during a measured run
        yield Vendor(api_url=json.loads(line)["api"], urls_file=urls_file)
    finally:
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=10)
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
    env = {**os.environ, "PERFECTO_TOKEN": SIM_TOKEN, "AWS_ACCESS_KEY_ID": "bench-key"}
    if as_deployed:
        env.update(service_environment())
    env.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    _, stderr, peak = measure(
        [str(ARCHIVER), "--config", str(config), "run", "--once"], env=_without_archiver(env)
    )
    for line in stderr.splitlines():
        if '"pass_finished"' in line:
            event = json.loads(line)
            if event["failed"] or event["source_errors"]:
                raise RuntimeError(f"the archiver pass failed: {stderr[-3000:]}")
            return Measured(
                seconds=event["seconds"],
                files=event["artifacts"],
                bytes=event["bytes"],
                peak_rss_mib=peak,
                sessions=event["archived"],
            )
    raise RuntimeError(f"no pass_finished event in the archiver's log:\n{stderr[-3000:]}")


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
) -> Path:
    """An archiver config: the simulator as Perfecto, a file store and SQLite in ``folder``."""
    tables = {
        "store": store or {"url": f"file://{folder}/evidence"},
        "state": {"url": f"sqlite:///{folder}/state.db"},
        "engine": engine or {},
        "log": {"format": "json"},
        "sources.perfecto": {
            "base_url": vendor.api_url,
            "token_env": "PERFECTO_TOKEN",
            "backfill_days": 2,
            "pdf_report": False,
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
