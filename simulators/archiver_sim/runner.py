"""Run simulators on loopback: in the current event loop, or in a thread of their own.

A simulator is a handful of aiohttp applications, one per origin (Perfecto has an API
origin and a separate artifact origin, as signed object-store URLs are in real life).
Each origin gets its own ephemeral port on 127.0.0.1; the simulator learns its base URLs
through :meth:`Simulator.bind` before the first request can arrive.

Either runner can put a :class:`~archiver_sim.faults.FaultPlan` on every origin: the same
seeded faults (5xx, 429, cut bodies, stalls, HTML and broken JSON) for every vendor.

The thread variant exists for synchronous tests that run the installed ``archiver``
command in a subprocess: the servers need an event loop that keeps running while the
test thread blocks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Generic, Protocol, TypeVar

from aiohttp import web

from archiver_sim.faults import FaultPlan

LOOPBACK = "127.0.0.1"
# In-flight downloads are cut after this when a simulator stops; tests should not wait
# a minute for a client that stopped reading.
SHUTDOWN_SECONDS = 0.5
STARTUP_SECONDS = 30.0


class Simulator(Protocol):
    """What the runners need from a vendor simulator."""

    def applications(self) -> Mapping[str, web.Application]:
        """One application per origin, by origin name (``"api"``, ``"files"``)."""
        ...

    def bind(self, base_urls: Mapping[str, str]) -> None:
        """Learn each origin's base URL (``http://127.0.0.1:PORT``), by origin name."""
        ...


SimulatorT = TypeVar("SimulatorT", bound=Simulator)


@asynccontextmanager
async def serve(app: web.Application, *, host: str = LOOPBACK) -> AsyncIterator[str]:
    """Serve ``app`` on an ephemeral port of ``host``; yields its base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, 0).start()
        address = runner.addresses[0]
        yield f"http://{host}:{address[1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running(
    simulator: SimulatorT, *, faults: FaultPlan | None = None
) -> AsyncIterator[SimulatorT]:
    """Start every origin of ``simulator`` in the current loop; yields it, bound.

    With ``faults``, every origin answers some requests with the plan's faults.
    """
    async with AsyncExitStack() as stack:
        applications = simulator.applications()
        if faults is not None:
            for origin, app in applications.items():
                faults.install(origin, app)
        urls = {
            origin: await stack.enter_async_context(serve(app))
            for origin, app in applications.items()
        }
        simulator.bind(urls)
        yield simulator


class SimulatorThread(Generic[SimulatorT]):
    """``with SimulatorThread(sim) as sim:`` runs ``sim`` in a daemon thread's event loop.

    The simulator's own methods (``finish``, ``finish_all``...) are thread-safe, so the
    test thread calls them directly.
    """

    def __init__(
        self,
        simulator: SimulatorT,
        *,
        faults: FaultPlan | None = None,
        startup_seconds: float = STARTUP_SECONDS,
    ):
        self.simulator = simulator
        self.faults = faults
        self._startup_seconds = startup_seconds
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"simulator-{type(simulator).__name__}", daemon=True
        )

    def __enter__(self) -> SimulatorT:
        self._thread.start()
        if not self._ready.wait(self._startup_seconds):
            raise RuntimeError(f"simulator did not start within {self._startup_seconds} s")
        if self._error is not None:
            self._thread.join()
            raise RuntimeError("simulator failed to start") from self._error
        return self.simulator

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=STARTUP_SECONDS)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with running(self.simulator, faults=self.faults):
                self._ready.set()
                await self._stop.wait()
        except Exception as exc:  # reported to the thread that waits in __enter__
            self._error = exc
        finally:
            self._ready.set()
