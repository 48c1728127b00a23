"""``archiver demo``: the whole product on one machine, no account, no network.

Starts every registered source's simulator on loopback (through its spec's ``demo`` hook;
some have a separate artifact origin beside their API), archives them all into one local
folder with SQLite state, and prints what happened:

1. the first pass archives every complete session and holds back those still processing,
   recording, open or live;
2. the simulators finish them; the second pass archives them;
3. the third pass finds nothing new and downloads nothing.

The simulators are a distribution of their own (``archiver-simulators``, in ``simulators/``),
not part of the archiver's: without them the demo says so in one line and exits 78, the
code of everything that needs someone to change the installation first.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import time
from collections.abc import Awaitable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from archiver.app import open_app
from archiver.config import Config, EngineSettings, StateSettings, StoreSettings
from archiver.engine import PassReport
from archiver.errors import ConfigError
from archiver.ledger import LEDGER_PREFIX, LedgerEntry
from archiver.sources.registry import SOURCES
from archiver.sources.spec import DemoRun

MARKER = ".archiver-demo"
STILL_PROCESSING = 2
SIMULATORS = "archiver_sim"
NO_SIMULATORS = (
    "archiver: the demo needs the vendor simulators: pip install ./simulators (make demo does)"
)
EXIT_NO_SIMULATORS = 78  # EX_CONFIG, as for a wrong configuration: nothing to retry


@dataclass(frozen=True, slots=True)
class _Pass:
    report: PassReport
    seconds: float


async def run_demo(directory: Path, *, executions: int) -> int:
    if importlib.util.find_spec(SIMULATORS) is None:
        print(NO_SIMULATORS, file=sys.stderr)
        return EXIT_NO_SIMULATORS
    root = _prepare(directory)
    held_back = min(STILL_PROCESSING, executions)  # per vendor, for the second pass
    async with AsyncExitStack() as stack:
        runs: dict[str, DemoRun] = {
            spec.name: await stack.enter_async_context(spec.demo(executions, held_back))
            for spec in SOURCES
        }
        app = await stack.enter_async_context(open_app(_config(root, runs)))
        first = await _timed(app.engine.run_once())
        for demo in runs.values():
            demo.finish()
        second = await _timed(app.engine.run_once())
        third = await _timed(app.engine.run_once())
    _print_summary(root, runs, [first, second, third])
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


def _config(root: Path, runs: Mapping[str, DemoRun]) -> Config:
    return Config(
        path="(built-in demo configuration)",
        store=StoreSettings(url=f"file://{root}/evidence"),
        state=StateSettings(url=f"sqlite:///{root}/state.db"),
        engine=EngineSettings(not_ready_delay_seconds=0.2, cleanup_incomplete_after_seconds=0),
        sources={name: run.settings for name, run in runs.items()},
    )


async def _timed(pass_run: Awaitable[PassReport]) -> _Pass:
    started = time.monotonic()
    report = await pass_run
    return _Pass(report=report, seconds=time.monotonic() - started)


def _print_summary(root: Path, runs: Mapping[str, DemoRun], passes: list[_Pass]) -> None:
    evidence = root / "evidence"
    manifests = sorted(evidence.glob("*/*/manifest.json"))
    total_artifacts = sum(run.report.artifacts for run in passes)
    total_bytes = sum(run.report.bytes for run in passes)
    total_seconds = sum(run.seconds for run in passes)
    print("archiver demo: built-in vendor simulators on loopback")
    for name, demo in runs.items():
        print(f"  {name:<12} " + "   ".join(f"{what} {url}" for what, url in demo.urls.items()))
    for number, run in enumerate(passes, start=1):
        print(f"  pass {number}: {_describe(run)}")
    rate = total_artifacts / total_seconds if total_seconds else 0.0
    per_source = ", ".join(
        f"{name} {len(list((evidence / name).glob('*/manifest.json')))}" for name in sorted(runs)
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
