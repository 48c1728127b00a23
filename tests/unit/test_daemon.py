"""The daemon's reaction to a store that can make nothing durable any more."""

from __future__ import annotations

import asyncio

import pytest

from archiver.daemon import run_daemon
from archiver.engine import PassReport
from archiver.errors import StoreBroken


class BrokenStoreEngine:
    """Just what the daemon uses of an engine; its second pass finds the store broken."""

    def __init__(self) -> None:
        self.sources = {"fake": object()}
        self.stopping = asyncio.Event()
        self.passes = 0

    async def run_once(self) -> PassReport:
        self.passes += 1
        if self.passes == 2:
            raise StoreBroken("file:///evidence: writing back failed")
        return PassReport()


async def test_a_broken_store_stops_the_daemon_with_its_error() -> None:
    engine = BrokenStoreEngine()
    daemon = run_daemon(engine, interval_seconds=0.05, grace_seconds=1)  # type: ignore[arg-type]
    with pytest.raises(StoreBroken, match="writing back failed"):
        await asyncio.wait_for(daemon, timeout=10)
    assert engine.passes == 2 and engine.stopping.is_set()
