"""Fixtures: the built-in vendor simulators on loopback.

Every factory's ``start`` also takes ``faults=FaultPlan(...)`` (see :mod:`archiver.sim.faults`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio

from archiver.sim.devrev import DevRevSimConfig, DevRevSimulator
from archiver.sim.ekran import EkranSimConfig, EkranSimulator
from archiver.sim.faults import FaultPlan
from archiver.sim.perfecto import PerfectoSimConfig, PerfectoSimulator
from archiver.sim.runner import SimulatorThread, running
from archiver.sim.testmo import TestmoSimConfig, TestmoSimulator
from archiver.sim.testobject import TestObjectSimConfig, TestObjectSimulator

PerfectoFactory = Callable[..., PerfectoSimulator]
AsyncPerfectoFactory = Callable[..., Awaitable[PerfectoSimulator]]
DevRevFactory = Callable[..., DevRevSimulator]
AsyncDevRevFactory = Callable[..., Awaitable[DevRevSimulator]]
TestmoFactory = Callable[..., TestmoSimulator]
AsyncTestmoFactory = Callable[..., Awaitable[TestmoSimulator]]
EkranFactory = Callable[..., EkranSimulator]
AsyncEkranFactory = Callable[..., Awaitable[EkranSimulator]]
TestObjectFactory = Callable[..., TestObjectSimulator]
AsyncTestObjectFactory = Callable[..., Awaitable[TestObjectSimulator]]


def _config(config: PerfectoSimConfig | None, overrides: dict[str, Any]) -> PerfectoSimConfig:
    return replace(config or PerfectoSimConfig(), **overrides)


@pytest.fixture
def perfecto_sim_factory() -> Iterator[PerfectoFactory]:
    """``start(config=None, **overrides)``: a Perfecto simulator running in its own thread.

    For synchronous tests (e.g. running the ``archiver`` command in a subprocess); every
    simulator started is stopped at the end of the test.
    """
    with ExitStack() as stack:

        def start(
            config: PerfectoSimConfig | None = None,
            faults: FaultPlan | None = None,
            **overrides: Any,
        ) -> PerfectoSimulator:
            simulator = PerfectoSimulator(_config(config, overrides))
            return stack.enter_context(SimulatorThread(simulator, faults=faults))

        yield start


@pytest.fixture
def perfecto_sim(perfecto_sim_factory: PerfectoFactory) -> PerfectoSimulator:
    """A running Perfecto simulator (thread variant) with the small default dataset."""
    return perfecto_sim_factory()


@pytest_asyncio.fixture
async def perfecto_sim_async_factory() -> AsyncIterator[AsyncPerfectoFactory]:
    """``await start(config=None, **overrides)``: a simulator in the test's event loop."""
    async with AsyncExitStack() as stack:

        async def start(
            config: PerfectoSimConfig | None = None,
            faults: FaultPlan | None = None,
            **overrides: Any,
        ) -> PerfectoSimulator:
            simulator = PerfectoSimulator(_config(config, overrides))
            return await stack.enter_async_context(running(simulator, faults=faults))

        yield start


@pytest_asyncio.fixture
async def perfecto_sim_async(
    perfecto_sim_async_factory: AsyncPerfectoFactory,
) -> PerfectoSimulator:
    """A Perfecto simulator with the small default dataset, in the test's event loop."""
    return await perfecto_sim_async_factory()


def _devrev_config(config: DevRevSimConfig | None, overrides: dict[str, Any]) -> DevRevSimConfig:
    return replace(config or DevRevSimConfig(), **overrides)


@pytest.fixture
def devrev_sim_factory() -> Iterator[DevRevFactory]:
    """``start(config=None, **overrides)``: a DevRev simulator running in its own thread."""
    with ExitStack() as stack:

        def start(
            config: DevRevSimConfig | None = None, faults: FaultPlan | None = None, **overrides: Any
        ) -> DevRevSimulator:
            simulator = DevRevSimulator(_devrev_config(config, overrides))
            return stack.enter_context(SimulatorThread(simulator, faults=faults))

        yield start


@pytest.fixture
def devrev_sim(devrev_sim_factory: DevRevFactory) -> DevRevSimulator:
    """A running DevRev simulator (thread variant) with the small default dataset."""
    return devrev_sim_factory()


@pytest_asyncio.fixture
async def devrev_sim_async_factory() -> AsyncIterator[AsyncDevRevFactory]:
    """``await start(config=None, **overrides)``: a DevRev simulator in the test's loop."""
    async with AsyncExitStack() as stack:

        async def start(
            config: DevRevSimConfig | None = None, faults: FaultPlan | None = None, **overrides: Any
        ) -> DevRevSimulator:
            simulator = DevRevSimulator(_devrev_config(config, overrides))
            return await stack.enter_async_context(running(simulator, faults=faults))

        yield start


@pytest_asyncio.fixture
async def devrev_sim_async(devrev_sim_async_factory: AsyncDevRevFactory) -> DevRevSimulator:
    """A DevRev simulator with the small default dataset, in the test's event loop."""
    return await devrev_sim_async_factory()


def _testmo_config(config: TestmoSimConfig | None, overrides: dict[str, Any]) -> TestmoSimConfig:
    return replace(config or TestmoSimConfig(), **overrides)


@pytest.fixture
def testmo_sim_factory() -> Iterator[TestmoFactory]:
    """``start(config=None, **overrides)``: a Testmo simulator running in its own thread."""
    with ExitStack() as stack:

        def start(
            config: TestmoSimConfig | None = None, faults: FaultPlan | None = None, **overrides: Any
        ) -> TestmoSimulator:
            simulator = TestmoSimulator(_testmo_config(config, overrides))
            return stack.enter_context(SimulatorThread(simulator, faults=faults))

        yield start


@pytest.fixture
def testmo_sim(testmo_sim_factory: TestmoFactory) -> TestmoSimulator:
    """A running Testmo simulator (thread variant) with the small default dataset."""
    return testmo_sim_factory()


@pytest_asyncio.fixture
async def testmo_sim_async_factory() -> AsyncIterator[AsyncTestmoFactory]:
    """``await start(config=None, **overrides)``: a Testmo simulator in the test's loop."""
    async with AsyncExitStack() as stack:

        async def start(
            config: TestmoSimConfig | None = None, faults: FaultPlan | None = None, **overrides: Any
        ) -> TestmoSimulator:
            simulator = TestmoSimulator(_testmo_config(config, overrides))
            return await stack.enter_async_context(running(simulator, faults=faults))

        yield start


@pytest_asyncio.fixture
async def testmo_sim_async(testmo_sim_async_factory: AsyncTestmoFactory) -> TestmoSimulator:
    """A Testmo simulator with the small default dataset, in the test's event loop."""
    return await testmo_sim_async_factory()


def _ekran_config(config: EkranSimConfig | None, overrides: dict[str, Any]) -> EkranSimConfig:
    return replace(config or EkranSimConfig(), **overrides)


@pytest.fixture
def ekran_sim_factory() -> Iterator[EkranFactory]:
    """``start(config=None, **overrides)``: an Ekran simulator running in its own thread."""
    with ExitStack() as stack:

        def start(
            config: EkranSimConfig | None = None, faults: FaultPlan | None = None, **overrides: Any
        ) -> EkranSimulator:
            simulator = EkranSimulator(_ekran_config(config, overrides))
            return stack.enter_context(SimulatorThread(simulator, faults=faults))

        yield start


@pytest.fixture
def ekran_sim(ekran_sim_factory: EkranFactory) -> EkranSimulator:
    """A running Ekran simulator (thread variant) with the small default dataset."""
    return ekran_sim_factory()


@pytest_asyncio.fixture
async def ekran_sim_async_factory() -> AsyncIterator[AsyncEkranFactory]:
    """``await start(config=None, **overrides)``: an Ekran simulator in the test's loop."""
    async with AsyncExitStack() as stack:

        async def start(
            config: EkranSimConfig | None = None, faults: FaultPlan | None = None, **overrides: Any
        ) -> EkranSimulator:
            simulator = EkranSimulator(_ekran_config(config, overrides))
            return await stack.enter_async_context(running(simulator, faults=faults))

        yield start


@pytest_asyncio.fixture
async def ekran_sim_async(ekran_sim_async_factory: AsyncEkranFactory) -> EkranSimulator:
    """An Ekran simulator with the small default dataset, in the test's event loop."""
    return await ekran_sim_async_factory()


def _testobject_config(
    config: TestObjectSimConfig | None, overrides: dict[str, Any]
) -> TestObjectSimConfig:
    return replace(config or TestObjectSimConfig(), **overrides)


@pytest.fixture
def testobject_sim_factory() -> Iterator[TestObjectFactory]:
    """``start(config=None, **overrides)``: a TestObject simulator running in its own thread."""
    with ExitStack() as stack:

        def start(
            config: TestObjectSimConfig | None = None,
            faults: FaultPlan | None = None,
            **overrides: Any,
        ) -> TestObjectSimulator:
            simulator = TestObjectSimulator(_testobject_config(config, overrides))
            return stack.enter_context(SimulatorThread(simulator, faults=faults))

        yield start


@pytest.fixture
def testobject_sim(testobject_sim_factory: TestObjectFactory) -> TestObjectSimulator:
    """A running TestObject simulator (thread variant) with the small default dataset."""
    return testobject_sim_factory()


@pytest_asyncio.fixture
async def testobject_sim_async_factory() -> AsyncIterator[AsyncTestObjectFactory]:
    """``await start(config=None, **overrides)``: a TestObject simulator in the test's loop."""
    async with AsyncExitStack() as stack:

        async def start(
            config: TestObjectSimConfig | None = None,
            faults: FaultPlan | None = None,
            **overrides: Any,
        ) -> TestObjectSimulator:
            simulator = TestObjectSimulator(_testobject_config(config, overrides))
            return await stack.enter_async_context(running(simulator, faults=faults))

        yield start


@pytest_asyncio.fixture
async def testobject_sim_async(
    testobject_sim_async_factory: AsyncTestObjectFactory,
) -> TestObjectSimulator:
    """A TestObject simulator with the small default dataset, in the test's event loop."""
    return await testobject_sim_async_factory()
