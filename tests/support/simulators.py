"""Fixtures: the built-in vendor simulators on loopback, four per source of the registry.

For each source ``NAME`` (``perfecto``, ``devrev``...), from its spec's ``fixture``:

* ``NAME_sim_factory``: ``start(config=None, faults=None, **overrides)`` starts a simulator
  in a thread of its own, for synchronous tests (e.g. running the ``archiver`` command in a
  subprocess); ``NAME_sim``: one started with the small default dataset;
* ``NAME_sim_async_factory``: ``await start(config=None, faults=None, **overrides)`` starts
  one in the test's event loop; ``NAME_sim_async``: one with the default dataset.

``config`` is the simulator's configuration (default: its own defaults), ``overrides``
replace some of its fields, and ``faults`` is a :class:`~archiver_sim.faults.FaultPlan`.
Every simulator started is stopped at the end of the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from archiver.sources.registry import SOURCES
from archiver.sources.spec import SimulatorFixture, SourceSpec
from archiver_sim.devrev import DevRevSimulator
from archiver_sim.ekran import EkranSimulator
from archiver_sim.faults import FaultPlan
from archiver_sim.perfecto import PerfectoSimulator
from archiver_sim.runner import SimulatorThread, running
from archiver_sim.testmo import TestmoSimulator
from archiver_sim.testobject import TestObjectSimulator

SimulatorT = TypeVar("SimulatorT")

SimFactory = Callable[..., SimulatorT]
AsyncSimFactory = Callable[..., Awaitable[SimulatorT]]

PerfectoFactory = SimFactory[PerfectoSimulator]
AsyncPerfectoFactory = AsyncSimFactory[PerfectoSimulator]
DevRevFactory = SimFactory[DevRevSimulator]
AsyncDevRevFactory = AsyncSimFactory[DevRevSimulator]
TestmoFactory = SimFactory[TestmoSimulator]
AsyncTestmoFactory = AsyncSimFactory[TestmoSimulator]
EkranFactory = SimFactory[EkranSimulator]
AsyncEkranFactory = AsyncSimFactory[EkranSimulator]
TestObjectFactory = SimFactory[TestObjectSimulator]
AsyncTestObjectFactory = AsyncSimFactory[TestObjectSimulator]


def _thread_starter(kind: SimulatorFixture[Any, Any], stack: ExitStack) -> SimFactory[Any]:
    def start(config: Any = None, faults: FaultPlan | None = None, **overrides: Any) -> Any:
        simulator = kind.build(config, **overrides)
        return stack.enter_context(SimulatorThread(simulator, faults=faults))

    return start


def _loop_starter(kind: SimulatorFixture[Any, Any], stack: AsyncExitStack) -> AsyncSimFactory[Any]:
    async def start(config: Any = None, faults: FaultPlan | None = None, **overrides: Any) -> Any:
        simulator = kind.build(config, **overrides)
        return await stack.enter_async_context(running(simulator, faults=faults))

    return start


def _fixtures(spec: SourceSpec) -> dict[str, Any]:
    """The four fixtures of one source's simulator, by name."""
    kind = spec.fixture()
    name, title = spec.name, spec.title

    def sim_factory() -> Iterator[SimFactory[Any]]:
        with ExitStack() as stack:
            yield _thread_starter(kind, stack)

    def sim() -> Iterator[Any]:
        with ExitStack() as stack:
            yield _thread_starter(kind, stack)()

    async def sim_async_factory() -> AsyncIterator[AsyncSimFactory[Any]]:
        async with AsyncExitStack() as stack:
            yield _loop_starter(kind, stack)

    async def sim_async() -> AsyncIterator[Any]:
        async with AsyncExitStack() as stack:
            yield await _loop_starter(kind, stack)()

    sim_factory.__doc__ = f"``start(config=None, **overrides)``: a {title} simulator in a thread."
    sim.__doc__ = f"A running {title} simulator (thread variant) with the small default dataset."
    sim_async_factory.__doc__ = (
        f"``await start(config=None, **overrides)``: a {title} simulator in the test's loop."
    )
    sim_async.__doc__ = f"A {title} simulator with the small default dataset, in the test's loop."
    return {
        f"{name}_sim_factory": pytest.fixture(name=f"{name}_sim_factory")(sim_factory),
        f"{name}_sim": pytest.fixture(name=f"{name}_sim")(sim),
        f"{name}_sim_async_factory": pytest_asyncio.fixture(name=f"{name}_sim_async_factory")(
            sim_async_factory
        ),
        f"{name}_sim_async": pytest_asyncio.fixture(name=f"{name}_sim_async")(sim_async),
    }


for _spec in SOURCES:
    globals().update(_fixtures(_spec))
