"""``archiver demo``: the whole product on one machine, no account, no network.

Starts the built-in vendor simulators on loopback (Perfecto and DevRev with an API origin
and a separate artifact origin each), archives them all into one local folder with SQLite
state, and prints what happened:

1. the first pass archives every complete session and holds back those still processing,
   recording, open or live;
2. the simulators finish them; the second pass archives them;
3. the third pass finds nothing new and downloads nothing.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Awaitable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from archiver.app import open_app
from archiver.config import (
    Config,
    DevRevSettings,
    EkranSettings,
    EngineSettings,
    PerfectoSettings,
    Secret,
    SourceSettings,
    StateSettings,
    StoreSettings,
    TestmoSettings,
    TestObjectSettings,
)
from archiver.engine import PassReport
from archiver.errors import ConfigError
from archiver.ledger import LEDGER_PREFIX, LedgerEntry
from archiver.sim.devrev import DevRevSimConfig, DevRevSimulator
from archiver.sim.ekran import EkranSimConfig, EkranSimulator
from archiver.sim.perfecto import PerfectoSimConfig, PerfectoSimulator
from archiver.sim.runner import Simulator, running
from archiver.sim.testmo import TestmoSimConfig, TestmoSimulator
from archiver.sim.testobject import TestObjectSimConfig, TestObjectSimulator

MARKER = ".archiver-demo"
STILL_PROCESSING = 2


@dataclass(frozen=True, slots=True)
class _Pass:
    report: PassReport
    seconds: float


@dataclass(frozen=True, slots=True)
class _Simulators:
    """One simulator per vendor, each holding back a couple of unfinished sessions."""

    perfecto: PerfectoSimulator
    devrev: DevRevSimulator
    testobject: TestObjectSimulator
    testmo: TestmoSimulator
    ekran: EkranSimulator

    @classmethod
    def build(cls, sessions: int) -> _Simulators:
        held_back = min(STILL_PROCESSING, sessions)
        return cls(
            perfecto=PerfectoSimulator(
                PerfectoSimConfig(executions=sessions, stay_processing=held_back)
            ),
            devrev=DevRevSimulator(DevRevSimConfig(sessions=sessions, still_recording=held_back)),
            testobject=TestObjectSimulator(
                TestObjectSimConfig(sessions=sessions, still_running=held_back)
            ),
            testmo=TestmoSimulator(TestmoSimConfig(sessions=sessions, open_sessions=held_back)),
            ekran=EkranSimulator(EkranSimConfig(sessions=sessions, live_sessions=held_back)),
        )

    def all(self) -> tuple[Simulator, ...]:
        return (self.perfecto, self.devrev, self.testobject, self.testmo, self.ekran)

    def origins(self) -> list[tuple[str, str, str | None]]:
        return [
            ("perfecto", self.perfecto.api_url, self.perfecto.files_url),
            ("devrev", self.devrev.api_url, self.devrev.files_url),
            ("testobject", self.testobject.api_url, self.testobject.files_url),
            ("testmo", self.testmo.api_url, None),
            ("ekran", self.ekran.api_url, None),
        ]

    def finish_everything(self) -> None:
        self.perfecto.finish_all_processing()
        self.devrev.finish_all_recording()
        self.testobject.finish_all()
        self.testmo.close_all()
        self.ekran.finish_all()

    def settings(self) -> dict[str, SourceSettings]:
        return {
            "perfecto": PerfectoSettings(
                base_url=self.perfecto.api_url,
                token=Secret(self.perfecto.config.token),
                backfill_days=1,
            ),
            "devrev": DevRevSettings(
                base_url=self.devrev.api_url,
                token=Secret(self.devrev.config.token),
                version_keys=self.devrev.config.version_keys[:1],
                session_type="mobile",
                backfill_days=1,
            ),
            "testobject": TestObjectSettings(
                base_url=self.testobject.api_url,
                token=Secret(self.testobject.config.api_key),
                username=self.testobject.config.username,
                backfill_days=21,
            ),
            "testmo": TestmoSettings(
                base_url=self.testmo.api_url,
                token=Secret(self.testmo.config.token),
                project_ids=self.testmo.config.project_ids,
                backfill_days=8,
            ),
            "ekran": EkranSettings(
                base_url=self.ekran.api_url,
                token=Secret(self.ekran.config.token),
                auth_header=self.ekran.config.token_header,
                settle_minutes=0,
                backfill_days=8,
            ),
        }


async def run_demo(directory: Path, *, executions: int) -> int:
    root = _prepare(directory)
    simulators = _Simulators.build(executions)
    async with AsyncExitStack() as stack:
        for simulator in simulators.all():
            await stack.enter_async_context(running(simulator))
        app = await stack.enter_async_context(open_app(_config(root, simulators)))
        first = await _timed(app.engine.run_once())
        simulators.finish_everything()
        second = await _timed(app.engine.run_once())
        third = await _timed(app.engine.run_once())
    _print_summary(root, simulators, [first, second, third])
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


def _config(root: Path, simulators: _Simulators) -> Config:
    return Config(
        path="(built-in demo configuration)",
        store=StoreSettings(url=f"file://{root}/evidence"),
        state=StateSettings(url=f"sqlite:///{root}/state.db"),
        engine=EngineSettings(not_ready_delay_seconds=0.2, cleanup_incomplete_after_seconds=0),
        sources=simulators.settings(),
    )


async def _timed(pass_run: Awaitable[PassReport]) -> _Pass:
    started = time.monotonic()
    report = await pass_run
    return _Pass(report=report, seconds=time.monotonic() - started)


def _print_summary(root: Path, simulators: _Simulators, passes: list[_Pass]) -> None:
    evidence = root / "evidence"
    manifests = sorted(evidence.glob("*/*/manifest.json"))
    total_artifacts = sum(run.report.artifacts for run in passes)
    total_bytes = sum(run.report.bytes for run in passes)
    total_seconds = sum(run.seconds for run in passes)
    print("archiver demo: built-in vendor simulators on loopback")
    for name, api_url, files_url in simulators.origins():
        print(f"  {name:<10} API {api_url}" + (f"   files {files_url}" if files_url else ""))
    for number, run in enumerate(passes, start=1):
        print(f"  pass {number}: {_describe(run)}")
    rate = total_artifacts / total_seconds if total_seconds else 0.0
    per_source = ", ".join(
        f"{name} {len(list((evidence / name).glob('*/manifest.json')))}"
        for name, _, _ in sorted(simulators.origins())
    )
    print(
        f"  total: {len(manifests)} sessions ({per_source}), {total_artifacts} artifacts, "
        f"{_mib(total_bytes)} in {total_seconds:.2f} s ({rate:.0f} artifacts/s)"
    )
    print(f"  evidence: {evidence}")
    entries = [
        LedgerEntry.from_bytes(path.read_bytes())
        for path in sorted((evidence / LEDGER_PREFIX).glob("*.json"))
    ]
    recorded = sum(len(entry.records) for entry in entries)
    print(
        f"  ledger:   {recorded} manifests recorded in {len(entries)} hash-chained entries "
        "(archiver verify checks them)"
    )
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
