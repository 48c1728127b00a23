"""The daemon's passes, its shutdown grace, and its reaction to a broken store or a bug."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest

from archiver.daemon import run_daemon
from archiver.engine import PassReport
from archiver.errors import StoreBroken


class FakeEngine:
    """Just what the daemon uses of an engine: ``sources``, ``stopping`` and ``run_once``."""

    def __init__(self) -> None:
        self.sources = {"fake": object()}
        self.stopping = asyncio.Event()
        self.passes = 0


class BrokenStoreEngine(FakeEngine):
    """Its second pass finds the store broken."""

    async def run_once(self) -> PassReport:
        self.passes += 1
        if self.passes == 2:
            raise StoreBroken("file:///evidence: writing back failed")
        return PassReport()


class HeldPassEngine(FakeEngine):
    """Its pass runs until ``release`` is set, as a pass with sessions in flight does."""

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.finished = 0
        self.cancelled = 0

    async def run_once(self) -> PassReport:
        self.passes += 1
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1
        return PassReport(archived=1)


class CrashingEngine(FakeEngine):
    """Its first pass hits a bug; the second one works."""

    def __init__(self) -> None:
        super().__init__()
        self.second_pass = asyncio.Event()

    async def run_once(self) -> PassReport:
        self.passes += 1
        if self.passes == 1:
            raise RuntimeError("a bug in one pass")
        self.second_pass.set()
        return PassReport()


def scheduler_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("apscheduler")]


async def test_a_broken_store_stops_the_daemon_with_its_error() -> None:
    engine = BrokenStoreEngine()
    daemon = run_daemon(engine, interval_seconds=0.05, grace_seconds=1)  # type: ignore[arg-type]
    with pytest.raises(StoreBroken, match="writing back failed"):
        await asyncio.wait_for(daemon, timeout=10)
    assert engine.passes == 2 and engine.stopping.is_set()


async def test_sigterm_lets_the_pass_in_flight_finish_within_the_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = HeldPassEngine()
    daemon = asyncio.create_task(
        run_daemon(engine, interval_seconds=3600, grace_seconds=60)  # type: ignore[arg-type]
    )
    await asyncio.wait_for(engine.started.wait(), 10)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(engine.stopping.wait(), 10)
    assert not daemon.done()  # still waiting for the pass, not cancelling it
    engine.release.set()
    await asyncio.wait_for(daemon, 10)
    assert (engine.finished, engine.cancelled) == (1, 0)
    assert scheduler_errors(caplog) == []


async def test_the_pass_is_cancelled_when_the_grace_period_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = HeldPassEngine()
    daemon = asyncio.create_task(
        run_daemon(engine, interval_seconds=3600, grace_seconds=0.1)  # type: ignore[arg-type]
    )
    await asyncio.wait_for(engine.started.wait(), 10)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(daemon, 10)  # returns: a stop after the grace is still clean
    assert (engine.finished, engine.cancelled) == (0, 1)
    assert scheduler_errors(caplog) == []


async def test_a_pass_that_crashes_is_logged_and_the_next_pass_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    engine = CrashingEngine()
    daemon = asyncio.create_task(
        run_daemon(engine, interval_seconds=0.05, grace_seconds=1)  # type: ignore[arg-type]
    )
    await asyncio.wait_for(engine.second_pass.wait(), 10)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(daemon, 10)
    assert [m for m in scheduler_errors(caplog) if "raised an exception" in m] == []
