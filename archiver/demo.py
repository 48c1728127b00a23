"""``archiver demo``: the whole product on one machine, no account, no network.

Starts the built-in Perfecto and DevRev simulators on loopback (each with an API origin
and a separate artifact origin), archives both into one local folder with SQLite state,
and prints what happened:

1. the first pass archives every complete session and holds back those still processing
   (Perfecto) or still recording (DevRev);
2. the simulators finish them; the second pass archives them;
3. the third pass finds nothing new and downloads nothing.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

from archiver.app import open_app
from archiver.config import (
    Config,
    DevRevSettings,
    EngineSettings,
    PerfectoSettings,
    Secret,
    StateSettings,
    StoreSettings,
)
from archiver.engine import PassReport
from archiver.errors import ConfigError
from archiver.sim.devrev import DevRevSimConfig, DevRevSimulator
from archiver.sim.perfecto import PerfectoSimConfig, PerfectoSimulator
from archiver.sim.runner import running

MARKER = ".archiver-demo"
STILL_PROCESSING = 2


@dataclass(frozen=True, slots=True)
class _Pass:
    report: PassReport
    seconds: float


async def run_demo(directory: Path, *, executions: int) -> int:
    root = _prepare(directory)
    held_back = min(STILL_PROCESSING, executions)
    perfecto = PerfectoSimulator(
        PerfectoSimConfig(executions=executions, stay_processing=held_back)
    )
    devrev = DevRevSimulator(DevRevSimConfig(sessions=executions, still_recording=held_back))
    # open_app's argument is evaluated after both simulators are up and know their ports.
    async with running(perfecto), running(devrev), open_app(_config(root, perfecto, devrev)) as app:
        first = await _timed(app.engine.run_once())
        perfecto.finish_all_processing()
        devrev.finish_all_recording()
        second = await _timed(app.engine.run_once())
        third = await _timed(app.engine.run_once())
    _print_summary(root, perfecto, devrev, [first, second, third])
    return 0 if all(run.report.ok for run in (first, second, third)) else 1


def _prepare(directory: Path) -> Path:
    root = directory.expanduser().resolve()
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).exists():
            raise ConfigError(
                f"{root} exists and is not an earlier demo folder; pass another --dir"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, mode=0o750)
    (root / MARKER).write_text("created by `archiver demo`; safe to delete\n")
    return root


def _config(root: Path, perfecto: PerfectoSimulator, devrev: DevRevSimulator) -> Config:
    return Config(
        path="(built-in demo configuration)",
        store=StoreSettings(url=f"file://{root}/evidence"),
        state=StateSettings(url=f"sqlite:///{root}/state.db"),
        engine=EngineSettings(not_ready_delay_seconds=0.2, cleanup_incomplete_after_seconds=0),
        sources={
            "perfecto": PerfectoSettings(
                base_url=perfecto.api_url,
                token=Secret(perfecto.config.token),
                backfill_days=1,
            ),
            "devrev": DevRevSettings(
                base_url=devrev.api_url,
                token=Secret(devrev.config.token),
                version_keys=devrev.config.version_keys[:1],
                session_type="mobile",
                backfill_days=1,
            ),
        },
    )


async def _timed(pass_run: Awaitable[PassReport]) -> _Pass:
    started = time.monotonic()
    report = await pass_run
    return _Pass(report=report, seconds=time.monotonic() - started)


def _print_summary(
    root: Path, perfecto: PerfectoSimulator, devrev: DevRevSimulator, passes: list[_Pass]
) -> None:
    evidence = root / "evidence"
    manifests = sorted(evidence.glob("*/*/manifest.json"))
    total_artifacts = sum(run.report.artifacts for run in passes)
    total_bytes = sum(run.report.bytes for run in passes)
    total_seconds = sum(run.seconds for run in passes)
    print("archiver demo: built-in vendor simulators on loopback")
    print(f"  Perfecto API {perfecto.api_url}   artifacts {perfecto.files_url}")
    print(f"  DevRev   API {devrev.api_url}   media     {devrev.files_url}")
    for number, run in enumerate(passes, start=1):
        print(f"  pass {number}: {_describe(run)}")
    rate = total_artifacts / total_seconds if total_seconds else 0.0
    per_source = ", ".join(
        f"{source.name} {len(list(source.glob('*/manifest.json')))}"
        for source in sorted(evidence.iterdir())
        if source.is_dir() and not source.name.startswith(".")
    )
    print(
        f"  total: {len(manifests)} sessions ({per_source}), {total_artifacts} artifacts, "
        f"{_mib(total_bytes)} in {total_seconds:.2f} s ({rate:.0f} artifacts/s)"
    )
    print(f"  evidence: {evidence}")
    if manifests:
        print(f"  e.g.      {manifests[0]}")
    print(f"  state:    {root / 'state.db'}")
    failures = [message for run in passes for message in run.report.failed]
    for message in failures + [m for run in passes for m in run.report.source_errors]:
        print(f"  FAILED: {message}")


def _describe(run: _Pass) -> str:
    report = run.report
    if report.archived == 0 and report.pending == 0 and report.ok:
        return f"nothing new; {report.skipped} already archived, 0 downloads ({run.seconds:.2f} s)"
    parts = [
        f"{report.archived} sessions archived ({report.artifacts} artifacts, "
        f"{_mib(report.bytes)}) in {run.seconds:.2f} s"
    ]
    if report.pending:
        parts.append(f"{report.pending} still processing, held back")
    if report.failed:
        parts.append(f"{len(report.failed)} failed")
    return "; ".join(parts)


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
